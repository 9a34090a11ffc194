"""Podman networks must resolve container names before any service starts (real Podman).

A platform without the DNS component is simulated with a containers.conf whose CNI plugin
directory lacks the ``dnsname`` plugin: Podman then creates networks with ``dns_enabled: false``,
exactly as on a Debian 12 host without golang-github-containernetworking-plugin-dnsname.

* the role's check stops before anything starts and names the network and the package (the
  package comes from the role's own platform lists, through its ``network_backend`` tasks);
* a project network created before the plugin was installed (no DNS, a container on it) is
  recreated once Podman can give it DNS, and then one service resolves another by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import uuid

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONTAINERS_CONF = os.path.join(REPO, "tests", "containers.conf")
PODMAN_COMPOSE = "/opt/failback-airflow/tools/podman-compose/bin/podman-compose"
IMAGE = "localhost/failback/debian:bookworm"
CNI_PLUGINS = "/usr/lib/cni"

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or not os.path.exists(os.path.join(CNI_PLUGINS, "dnsname")),
    reason="needs Podman with CNI and the dnsname plugin (make host-setup installs them)",
)


def podman(*args, conf=CONTAINERS_CONF, check=True):
    env = dict(os.environ, CONTAINERS_CONF=conf)
    return subprocess.run(["podman"] + list(args), env=env, capture_output=True, text=True, timeout=120, check=check)


def dns_enabled(network):
    return json.loads(podman("network", "inspect", network).stdout)[0]["dns_enabled"]


@pytest.fixture
def project(tmp_path):
    """A two-service compose project (a sleeps, b asks for a's address) and its clean-up."""
    name = "failback-dnstest-%s" % uuid.uuid4().hex[:8]
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump({
        "name": name,
        "services": {
            "a": {"image": IMAGE, "command": ["sleep", "300"]},
            "b": {"image": IMAGE, "command": ["sleep", "300"]},
        },
    }))
    yield name, tmp_path
    ids = podman("ps", "-aq", "--filter", "label=io.podman.compose.project=%s" % name, check=False).stdout.split()
    if ids:
        podman("rm", "--force", "--time", "0", *ids, check=False)
    # podman-compose puts the project's containers in a pod of its own: remove it too.
    podman("pod", "rm", "--force", "--ignore", "pod_" + name, check=False)
    for network in (name + "_default", name + "_failback_dns_probe"):
        podman("network", "rm", "--force", network, check=False)


@pytest.fixture
def no_dns_conf(tmp_path):
    """containers.conf of a host whose CNI plugins lack dnsname (what Debian 12 ships by default)."""
    plugins = tmp_path / "cni-without-dnsname"
    plugins.mkdir()
    for plugin in os.listdir(CNI_PLUGINS):
        if plugin != "dnsname":
            os.symlink(os.path.join(CNI_PLUGINS, plugin), str(plugins / plugin))
    conf = tmp_path / "containers-no-dns.conf"
    with open(CONTAINERS_CONF) as handle:
        conf.write_text(handle.read() + '\n[network]\ncni_plugin_dirs = ["%s"]\n' % plugins)
    return str(conf)


PLAY = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars:
        ansible_connection: local
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
        airflow_server_engine: podman
        airflow_server_engine_environment: {CONTAINERS_CONF: "%(conf)s"}
      tasks:
        - name: Load the role's platform lists and find the DNS package of Podman's backend
          ansible.builtin.include_role:
            name: failback.airflow.airflow_server
            tasks_from: "{{ item }}"
          loop: [platform, network_backend]

        - name: Start the project as the role does
          failback.airflow.airflow_podman_compose:
            project_src: "%(src)s"
            project_name: "%(name)s"
            podman_compose: ["%(podman_compose)s"]
            environment: "{{ airflow_server_engine_environment }}"
            order: [a, b]
            dns_packages: "{{ _airflow_server_dns_packages }}"
          register: started

        - name: Show what the module did
          ansible.builtin.debug:
            var: started
    """)


def start(playbook, tmp_path, name, src, conf):
    play = tmp_path / "start.yml"
    play.write_text(PLAY % {"conf": conf, "src": src, "name": name, "podman_compose": PODMAN_COMPOSE})
    return playbook(str(play), "localhost,")


def _module_result(run):
    for play in run.json["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Start the project as the role does":
                return task["hosts"]["localhost"]
    raise AssertionError(run)


def test_the_check_fires_before_anything_starts_and_names_the_package(playbook, project, no_dns_conf, tmp_path):
    name, src = project
    run = start(playbook, tmp_path, name, str(src), no_dns_conf)
    assert run.rc != 0, run
    result = _module_result(run)
    assert result["failed"]
    assert ("Podman network %s_default has no DNS (dns_enabled: false)" % name) in result["msg"], result["msg"]
    assert "install golang-github-containernetworking-plugin-dnsname and run again" in result["msg"], result["msg"]
    assert podman("ps", "-aq", "--filter", "label=io.podman.compose.project=%s" % name).stdout.strip() == "", \
        "no container may be created before the network resolves names"
    assert podman("network", "exists", name + "_default", check=False).returncode != 0, \
        "the network without DNS is not left behind for the next run"


def test_a_network_made_before_the_plugin_is_recreated_and_names_resolve(playbook, project, no_dns_conf, tmp_path):
    if not podman("image", "exists", IMAGE, check=False).returncode == 0:
        pytest.fail("%s is missing: run make host-setup (tests/images/build.sh)" % IMAGE)
    name, src = project
    network = name + "_default"
    # What an installation that failed once has: a network without DNS and a container on it.
    podman("network", "create", "--label", "io.podman.compose.project=" + name, network, conf=no_dns_conf)
    podman("run", "-d", "--name", name + "_a_1", "--network", network,
           "--label", "io.podman.compose.project=" + name, "--label", "com.docker.compose.service=a",
           IMAGE, "sleep", "300")
    assert dns_enabled(network) is False

    run = start(playbook, tmp_path, name, str(src), CONTAINERS_CONF)
    assert run.rc == 0, run
    result = _module_result(run)
    assert result["networks"] == [[network, "recreate"]]
    assert dns_enabled(network) is True
    resolved = podman("exec", name + "_b_1", "getent", "hosts", "a", check=False)
    assert resolved.returncode == 0 and resolved.stdout.split()[0].count(".") == 3, resolved

    again = start(playbook, tmp_path, name, str(src), CONTAINERS_CONF)
    assert again.rc == 0 and _module_result(again)["networks"] == [[network, "keep"]], again
    assert again.changed() == 0, again

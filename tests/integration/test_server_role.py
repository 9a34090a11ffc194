"""airflow_server without containers: settings are refused before anything is written, and the
compose project, control script and systemd unit render as the design says (secrets only through
_CMD and mounted files, ports on 127.0.0.1, the guard and map mounted read-only, the engine socket
only where tasks run, per-service config hashes that change only for the service that changed).

The real installations run in the Molecule scenarios (extensions/molecule/podman, docker)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "airflow_server")


def _inventory(tmp_path, host_vars=""):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(textwrap.dedent("""\
        all:
          children:
            airflow_installations:
              children:
                airflow_servers:
                  hosts:
                    server-a:
                      ansible_connection: local
                      ansible_python_interpreter: "{{ ansible_playbook_python }}"
        %s""") % host_vars)
    return inventory


def _failure_messages(run):
    return [result.get("msg", "") for play in run.json.get("plays", []) for task in play["tasks"]
            for result in task["hosts"].values() if result.get("failed")]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"airflow_server_engine": "lxc"}, "airflow_server_engine must be one of: podman, docker, got: lxc"),
        ({"airflow_server_project_name": "Bad Name"},
         'Bad airflow_server settings: airflow_server_project_name is "Bad Name" (allowed: lowercase letters, digits, - and _).'),
        ({"airflow_server_api_port": 70000}, "Bad airflow_server settings: airflow_server_api_port is 70000 (allowed: 1-65535)."),
        ({"airflow_server_environment": {"AIRFLOW__CORE__FERNET_KEY": "abc"}},
         "airflow_server_environment holds what looks like a secret (AIRFLOW__CORE__FERNET_KEY)"),
        ({"airflow_server_build_pip_packages": ["ok==1", "bad; rm -rf /"]},
         "must be a list of pip requirement specifiers"),
        ({"airflow_dag_bundles": [{"name": "dags", "repo_url": "https://bot:tok@git.example.com/d.git"}]},
         "airflow_dag_bundles[0] (dags): repo_url https://***@git.example.com/d.git carries a credential"),
        ({"airflow_dag_bundles": [{"name": "dags", "repo_url": "/srv/d.git", "branch": "main"}]},
         "unknown key(s) branch for a git bundle"),
        ({"airflow_server_remote_logging": True, "airflow_server_remote_log_folder": "/var/log/airflow",
          "airflow_server_remote_log_conn_id": "task_logs"},
         "airflow_server_remote_log_folder is '/var/log/airflow': give s3://BUCKET/PREFIX"),
    ],
)
def test_bad_settings_fail_before_anything_is_written(tmp_path, playbook, extra, expected):
    target = tmp_path / "install"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "airflow_servers", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "failback.airflow.airflow_server"},
                   "vars": dict({"airflow_server_dir": str(target)}, **extra)}],
    }]))
    run = playbook(str(play), _inventory(tmp_path))
    assert run.rc != 0, run
    messages = _failure_messages(run)
    assert len(messages) == 1 and expected in " ".join(messages[0].split()), messages
    assert not target.exists()


RENDER = """
- hosts: airflow_servers
  gather_facts: false
  vars_files:
    - {role}/defaults/main.yml
    - {role}/vars/main.yml
    - {role}/../airflow_auth/defaults/main.yml
    - {role}/../airflow_auth/vars/main.yml
  tasks:
    - name: Load what the auth role publishes for the containers (FAB, the default)
      ansible.builtin.set_fact:
        airflow_auth_env: "{{{{ _airflow_auth_env[airflow_auth_manager] }}}}"

    - name: Lay the installation out as the role does
      ansible.builtin.include_role:
        name: failback.airflow.airflow_server
        tasks_from: layout

    - name: Load what the credentials and placement roles publish for the containers
      ansible.builtin.include_role:
        name: "failback.airflow.{{{{ item }}}}"
        tasks_from: contract
      loop: [airflow_credentials, airflow_placement]

    - name: Render the variants
      ansible.builtin.template:
        src: {role}/templates/{{{{ item.0 }}}}
        dest: "{out}/{{{{ item.1.name }}}}-{{{{ item.0 | regex_replace('.j2$', '') }}}}"
        mode: "0644"
      vars:
        airflow_server_dir: {out}/install
        airflow_server_airflow_image: localhost/failback/airflow:3.3.2
        airflow_server_postgres_image: localhost/failback/postgres:15
        airflow_server_engine_environment: {{CONTAINERS_CONF: /etc/x.conf}}
        _airflow_server_guard_checksum: "{{{{ item.1.guard | default('g1') }}}}"
        airflow_server_api_port: "{{{{ item.1.port | default(8080) }}}}"
        airflow_server_engine: "{{{{ item.1.engine | default('podman') }}}}"
        airflow_server_postgres_enabled: "{{{{ item.1.postgres | default(true) }}}}"
        _airflow_server_socket_group_add: "{{{{ item.1.group_add | default([]) }}}}"
        _airflow_server_image_ids: "{{{{ item.1.image_ids | default(default_image_ids) }}}}"
        airflow_server_dag_bundles: "{{{{ item.1.bundles | default([]) }}}}"
        airflow_server_remote_logging: "{{{{ item.1.remote_logging | default(false) }}}}"
        airflow_server_remote_log_folder: s3://fleet-logs/fleet
        airflow_server_remote_log_conn_id: task_logs
      loop: "{{{{ ['compose.yaml.j2', 'airflow.service.j2', 'airflow-ctl.sh.j2'] | product(variants) | list }}}}"
      loop_control:
        label: "{{{{ item.1.name }}}} {{{{ item.0 }}}}"
"""

IMAGE_IDS = {"localhost/failback/airflow:3.3.2": "sha256:aaa", "localhost/failback/postgres:15": "sha256:ppp"}
VARIANTS = [
    {"name": "base"},
    {"name": "port", "port": 8099},
    {"name": "newimage", "image_ids": {"localhost/failback/airflow:3.3.2": "sha256:bbb",
                                       "localhost/failback/postgres:15": "sha256:ppp"}},
    {"name": "guard", "guard": "g2"},
    {"name": "docker", "engine": "docker", "postgres": False, "group_add": [998]},
    {"name": "bundles", "remote_logging": True, "bundles": [
        {"name": "dags", "repo_url": "file:///srv/git/dags.git", "subdir": "dags", "refresh_interval": 30},
        {"name": "dags-folder", "type": "local"}]},
]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render every template for every variant once (one ansible-playbook run)."""
    from failback_ansible import run_playbook

    out = tmp_path_factory.mktemp("render")
    play = out / "render.yml"
    play.write_text(RENDER.format(role=ROLE, out=out) + "\n")
    run = run_playbook(str(play), _inventory(out), extra_vars={"variants": VARIANTS, "default_image_ids": IMAGE_IDS})
    assert run.rc == 0, run
    return out


def _load(path):
    with open(str(path)) as handle:
        return yaml.safe_load(handle)


def _hashes(compose):
    return dict((name, spec["labels"]["org.failback.config-hash"]) for name, spec in compose["services"].items())


def test_rendered_project(rendered):
    out = rendered
    base = _load(out / "base-compose.yaml")
    services = base["services"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        assert env["AIRFLOW__FAB__CONFIG_FILE"] == "/opt/airflow/auth/webserver_config.py"
        assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS" not in env
    assert list(services) == ["postgres", "airflow-init", "airflow-api-server", "airflow-scheduler",
                              "airflow-dag-processor", "airflow-triggerer"]
    for name, spec in services.items():
        assert "healthcheck" in spec or name == "airflow-init", name
        assert spec["user"] == "50000:0", name
        assert spec["labels"]["org.failback.installation"] == "server-a"
        env = spec.get("environment", {})
        # no secret value in any environment: only _CMD options reading mounted files
        for key, value in env.items():
            if any(word in key for word in ("FERNET", "SQL_ALCHEMY_CONN", "SECRET_KEY", "JWT_SECRET")):
                assert key.endswith("_CMD") and str(value).startswith("cat /opt/airflow/secrets/airflow/"), key
        assert "POSTGRES_PASSWORD" not in env
        if name.startswith("airflow-"):
            assert env["FAILBACK_INSTALLATION"] == env["HOST_HOSTNAME"] == "server-a"
            assert env["FAILBACK_PLACEMENT_MAP"] == "/opt/airflow/placement/placement.yml"
            assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
            assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /opt/airflow/secrets/airflow/jwt_secret"
            volumes = spec["volumes"]
            assert "/opt/failback-airflow/placement:/opt/airflow/placement:ro" in volumes
            assert "/opt/failback-airflow/config:/opt/airflow/config:ro" in volumes
            socket = "/run/podman/podman.sock:/var/run/docker.sock"
            assert (socket in volumes) == (name == "airflow-scheduler"), name
            assert "depends_on" not in spec  # podman: the role starts services in order
    assert services["airflow-api-server"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/failback/db_password"
    assert len(set(_hashes(base).values())) == len(services)

    # A new port recreates the API server only; a new Airflow image every Airflow service.
    port, newimage = _hashes(_load(out / "port-compose.yaml")), _hashes(_load(out / "newimage-compose.yaml"))
    assert [s for s in services if port[s] != _hashes(base)[s]] == ["airflow-api-server"]
    assert [s for s in services if newimage[s] != _hashes(base)[s]] == [s for s in services if s != "postgres"]
    # A new guard (airflow_local_settings.py is read when Airflow starts) recreates the Airflow services.
    guard = _hashes(_load(out / "guard-compose.yaml"))
    assert [s for s in services if guard[s] != _hashes(base)[s]] == [s for s in services if s != "postgres"]

    docker = _load(out / "docker-compose.yaml")["services"]
    assert "postgres" not in docker
    assert docker["airflow-scheduler"]["group_add"] == ["998"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in docker["airflow-scheduler"]["volumes"]


def test_rendered_bundles_and_remote_logs(rendered):
    out = rendered
    base = _load(out / "base-compose.yaml")["services"]
    services = _load(out / "bundles-compose.yaml")["services"]
    for name in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        env, volumes = services[name]["environment"], services[name]["volumes"]
        assert json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]) == [
            {"name": "dags", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
             "kwargs": {"repo_url": "file:///srv/git/dags.git", "tracking_ref": "main", "subdir": "dags",
                        "refresh_interval": 30}},
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": "/opt/airflow/dags"}}], name
        assert env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH"] == "/opt/airflow/bundles/storage"
        assert env["GIT_CONFIG_GLOBAL"] == "/opt/airflow/bundles/git/gitconfig"
        assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
        assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://fleet-logs/fleet"
        assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "task_logs"
        # the clones are shared and writable; the repository on the server and git's settings read-only
        assert str(out / "install" / "bundles" / "storage") + ":/opt/airflow/bundles/storage" in volumes, volumes
        assert str(out / "install" / "bundles" / "git") + ":/opt/airflow/bundles/git:ro" in volumes, volumes
        assert "/srv/git/dags.git:/srv/git/dags.git:ro" in volumes, volumes
        for key in ("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", "AIRFLOW__LOGGING__REMOTE_LOGGING", "GIT_CONFIG_GLOBAL"):
            assert key not in base[name]["environment"], key
        assert not [v for v in base[name]["volumes"] if "bundles" in v]
    # new bundles recreate every Airflow service, not the database
    changed = _hashes({"services": services})
    assert [s for s in services if changed[s] != _hashes({"services": base})[s]] == [s for s in services if s != "postgres"]


def test_rendered_unit_and_control_script(rendered):
    out = rendered
    unit = (out / "base-airflow.service").read_text()
    assert "ExecStartPre=/usr/bin/python3 /opt/failback-airflow/config/failback_guard.py --map " \
           "/opt/failback-airflow/placement/placement.yml fence --reason" in unit
    assert "ExecStart=%s/install/bin/airflow-ctl start" % out in unit
    assert 'Environment="CONTAINERS_CONF=/etc/x.conf"' in unit
    assert "Requires=docker.service" in (out / "docker-airflow.service").read_text()
    for variant in ("base", "docker"):
        subprocess.run(["bash", "-n", str(out / ("%s-airflow-ctl.sh" % variant))], check=True)
    ctl = (out / "base-airflow-ctl.sh").read_text()
    # postgres first and healthy, then the Airflow services in order; never the init one-shot at boot
    assert ctl.index("up -d --no-deps postgres") < ctl.index("wait_healthy postgres") < ctl.index("airflow-api-server")
    assert "airflow-init" not in ctl

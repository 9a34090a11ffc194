#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_podman_compose
short_description: Start a compose project under Podman in order, changing only what changed
version_added: "0.1.0"
description:
  - Drives C(podman-compose) for a compose project service by service, in the order given,
    because podman-compose 1.x on Podman older than 4.6 ignores C(depends_on) conditions and
    C(--wait).
  - A service whose container is missing is created, one whose C(org.failback.config-hash) label
    differs from the compose file is recreated, a stopped one is started; nothing else is touched.
  - One-shot services (for example Airflow's database migration) are run to completion, with a
    bound, before the services after them; the module fails with the last log lines when one
    exits non-zero. Services in I(wait_healthy) must pass C(podman healthcheck run) before later
    services are started (Podman runs no health checks by itself without systemd).
  - Before any service starts, the project's networks must resolve container names. A missing
    network is created; a network created without DNS (before the CNI C(dnsname) plugin or
    C(aardvark-dns) was installed) is recreated when Podman can now give it DNS; otherwise the
    module stops and names the package to install (O(dns_packages)).
author:
  - Failback Airflow Maintainers (@failback)
options:
  project_src:
    description: Directory of the compose project.
    type: path
    required: true
  files:
    description: Compose files, relative to I(project_src).
    type: list
    elements: str
    default: [compose.yaml]
  project_name:
    description: Compose project name.
    type: str
    required: true
  state:
    description:
      - C(present) creates, recreates or starts what needs it, in order.
      - C(restarted) restarts the containers of I(services) (all of I(order) when empty), in order.
      - C(stopped) stops every container of the project; C(absent) removes them and the project network.
    type: str
    choices: [present, restarted, stopped, absent]
    default: present
  order:
    description: Services in start order. Required for C(present) and C(restarted).
    type: list
    elements: str
    default: []
  one_shot:
    description: Services of I(order) that run to completion (exit code 0) instead of staying up.
    type: list
    elements: str
    default: []
  wait_healthy:
    description: Services of I(order) that must be healthy before any later service is started.
    type: list
    elements: str
    default: []
  services:
    description: With I(state=restarted), the services to restart.
    type: list
    elements: str
    default: []
  podman_compose:
    description: Command (argv) that runs podman-compose.
    type: list
    elements: str
    default: [podman-compose]
  podman:
    description: The podman executable.
    type: str
    default: podman
  environment:
    description: Extra environment for every podman and podman-compose command (for example C(CONTAINERS_CONF)).
    type: dict
    default: {}
  timeout:
    description: Seconds allowed for each one-shot service and for each health wait.
    type: int
    default: 300
  logs_tail:
    description: Log lines of a failing service to show.
    type: int
    default: 40
  network_dns:
    description:
      - With O(state=present), make sure every network of the project has DNS before anything starts.
      - Recreating a network removes the project's containers attached to it; they are created again right after.
    type: bool
    default: true
  dns_packages:
    description: The packages that give this host's Podman networks DNS, named in the error when a network has none.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads the containers' state and reports the planned actions without running them.
  diff_mode:
    support: none
    description: No diff is returned; RV(actions) lists what changed.
  idempotent:
    support: full
    description: A second run with the same compose file finds every container current and running.
requirements:
  - podman-compose 1.x
  - coreutils C(timeout)
  - PyYAML on the managed host
"""

EXAMPLES = r"""
- name: Start an Airflow project in order
  failback.airflow.airflow_podman_compose:
    project_src: /opt/failback-airflow
    project_name: failback-server-1
    order: [postgres, airflow-init, airflow-api-server, airflow-scheduler, airflow-dag-processor, airflow-triggerer]
    one_shot: [airflow-init]
    wait_healthy: [postgres]
    podman_compose: [/opt/failback-airflow/tools/podman-compose/bin/podman-compose]

- name: Restart the scheduler only
  failback.airflow.airflow_podman_compose:
    project_src: /opt/failback-airflow
    project_name: failback-server-1
    state: restarted
    order: [postgres, airflow-init, airflow-api-server, airflow-scheduler, airflow-dag-processor, airflow-triggerer]
    services: [airflow-scheduler]
"""

RETURN = r"""
networks:
  description: What was (or in check mode would be) done to each project network, as C([network, action]) with action C(keep), C(create) or C(recreate).
  returned: with O(state=present) and O(network_dns)
  type: list
  elements: list
  sample: [[failback-server-1_default, recreate]]
actions:
  description: What was (or in check mode would be) done, in order, as C([service, action]).
  returned: always
  type: list
  elements: list
  sample: [[postgres, create], [airflow-init, run], [airflow-scheduler, recreate]]
containers:
  description: The project's containers by service after the run.
  returned: always
  type: dict
  sample: {airflow-scheduler: {name: failback-server-1_airflow-scheduler_1, state: running}}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_compose as compose

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False


class Runner(object):
    def __init__(self, module):
        self.module = module
        params = module.params
        self.params = params
        self.env = dict((str(k), str(v)) for k, v in params["environment"].items())
        self.base = list(params["podman_compose"]) + ["-p", params["project_name"]]
        for name in params["files"]:
            self.base += ["-f", os.path.join(params["project_src"], name)]

    def run(self, argv, check=True, timeout=None):
        if timeout:
            # coreutils timeout bounds the command (rc 124 when it ran out of time)
            argv = ["timeout", "--kill-after=10", str(int(timeout))] + list(argv)
        rc, out, err = self.module.run_command(argv, cwd=self.params["project_src"], environ_update=self.env)
        if timeout and rc in (124, 137):
            self.fail("%s did not finish within %d s" % (" ".join(argv[3:9]), timeout))
        if check and rc != 0:
            self.fail("%s failed (rc %s): %s" % (" ".join(argv), rc, (err or out).strip()[-2000:]))
        return rc, out, err

    def fail(self, msg, **kwargs):
        self.module.fail_json(msg=msg, **kwargs)

    def network_dns(self, name):
        """True/False: the network's dns_enabled; None when it does not exist."""
        rc, out, _err = self.run([self.params["podman"], "network", "inspect", name], check=False)
        if rc != 0:
            return None
        try:
            return compose.parse_network_inspect(out).get(name, False)
        except compose.ComposeError as exc:
            self.fail(str(exc))

    def create_network(self, name):
        project = self.params["project_name"]
        # The labels podman-compose puts on the networks it creates, so that it adopts this one.
        self.run([self.params["podman"], "network", "create", "--label", "%s=%s" % (compose.PROJECT_LABEL, project),
                  "--label", "com.docker.compose.project=%s" % project, name])

    def dns_available(self):
        """Whether a network created now gets DNS (the DNS component is installed)."""
        probe = "%s_failback_dns_probe" % self.params["project_name"]
        self.run([self.params["podman"], "network", "rm", "--force", probe], check=False)
        self.run([self.params["podman"], "network", "create", probe])
        try:
            return bool(self.network_dns(probe))
        finally:
            self.run([self.params["podman"], "network", "rm", "--force", probe], check=False)

    def ensure_networks(self, names):
        """Give every network DNS before anything starts; returns [(network, action)]."""
        done = []
        for name in names:
            dns = self.network_dns(name)
            available = None
            if dns is False:
                available = self.dns_available()
            action = compose.network_action(dns is not None, bool(dns), available)
            if action is None:
                self.fail(compose.no_dns_message(name, self.params["dns_packages"]), network=name)
            done.append((name, action))
            if action == compose.KEEP or self.module.check_mode:
                continue
            if action == compose.RECREATE:
                # --force also removes the project's containers on it; the plan creates them again.
                self.run([self.params["podman"], "network", "rm", "--force", name])
            self.create_network(name)
            if not self.network_dns(name):
                if action == compose.CREATE:  # leave nothing half-made behind for the next run
                    self.run([self.params["podman"], "network", "rm", "--force", name], check=False)
                self.fail(compose.no_dns_message(name, self.params["dns_packages"]), network=name)
        return done

    def containers(self):
        _rc, out, _err = self.run([self.params["podman"], "ps", "-a", "--format", "json", "--filter",
                                   "label=%s=%s" % (compose.PROJECT_LABEL, self.params["project_name"])])
        try:
            return compose.parse_ps(out)
        except compose.ComposeError as exc:
            self.fail(str(exc))

    def logs(self, container):
        _rc, out, err = self.run([self.params["podman"], "logs", "--tail", str(self.params["logs_tail"]), container],
                                 check=False)
        return (out + err).strip()

    def wait_healthy(self, service):
        container = self.containers().get(service)
        if container is None:
            self.fail("service %s has no container to wait for" % service)
        deadline = time.monotonic() + self.params["timeout"]
        while True:
            rc, _out, _err = self.run([self.params["podman"], "healthcheck", "run", container.name], check=False,
                                      timeout=60)
            if rc == 0:
                return
            if time.monotonic() > deadline:
                self.fail("service %s is not healthy after %d s; its last log lines:\n%s" % (
                    service, self.params["timeout"], self.logs(container.name)), failed_service=service)
            time.sleep(2)

    def run_one_shot(self, service):
        self.run(self.base + compose.up_args(service, compose.RUN))
        container = self.containers().get(service)
        if container is None:
            self.fail("one-shot service %s was not created" % service)
        rc, out, _err = self.run([self.params["podman"], "wait", container.name], check=False,
                                 timeout=self.params["timeout"])
        code = out.strip().splitlines()[-1] if out.strip() else ""
        if rc != 0 or code != "0":
            self.fail("one-shot service %s failed (exit code %s); its last log lines:\n%s" % (
                service, code or "unknown", self.logs(container.name)), failed_service=service)


def load_compose(module):
    """The compose files merged (services and networks; later files win)."""
    params = module.params
    if not HAS_YAML:
        module.fail_json(msg="PyYAML is required on the managed host to read the compose file")
    merged = {"services": {}, "networks": {}}
    for name in params["files"]:
        path = os.path.join(params["project_src"], name)
        try:
            with open(path) as handle:
                data = yaml.safe_load(handle) or {}
        except (IOError, OSError, yaml.YAMLError) as exc:
            module.fail_json(msg="cannot read compose file %s: %s" % (path, exc))
        merged["services"].update(data.get("services") or {})
        merged["networks"].update(data.get("networks") or {})
    return merged


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_src=dict(type="path", required=True),
            files=dict(type="list", elements="str", default=["compose.yaml"]),
            project_name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "restarted", "stopped", "absent"]),
            order=dict(type="list", elements="str", default=[]),
            one_shot=dict(type="list", elements="str", default=[]),
            wait_healthy=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            podman_compose=dict(type="list", elements="str", default=["podman-compose"]),
            podman=dict(type="str", default="podman"),
            environment=dict(type="dict", default={}),
            timeout=dict(type="int", default=300),
            logs_tail=dict(type="int", default=40),
            network_dns=dict(type="bool", default=True),
            dns_packages=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("state", "present", ("order",)), ("state", "restarted", ("order",))],
        supports_check_mode=True,
    )
    params = module.params
    runner = Runner(module)
    actions = []
    result = {}

    if params["state"] == "present":
        project = load_compose(module)
        try:
            desired = compose.desired_hashes(project)
            networks = compose.project_networks(project, params["project_name"])
        except compose.ComposeError as exc:
            module.fail_json(msg=str(exc))
        if params["network_dns"]:
            result["networks"] = [list(item) for item in runner.ensure_networks(networks)]
    current = runner.containers()

    if params["state"] == "present":
        try:
            actions = compose.plan(params["order"], desired, current, params["one_shot"])
        except compose.ComposeError as exc:
            module.fail_json(msg=str(exc))
        if not module.check_mode:
            pending = list(actions)
            for service in params["order"]:
                if not pending:
                    break
                step = [action for name, action in pending if name == service]
                if step:
                    if service in params["one_shot"]:
                        runner.run_one_shot(service)
                    else:
                        runner.run(runner.base + compose.up_args(service, step[0]))
                    pending = [item for item in pending if item[0] != service]
                if service in params["wait_healthy"] and pending:
                    runner.wait_healthy(service)
    elif params["state"] == "restarted":
        wanted = params["services"] or params["order"]
        unknown = [name for name in wanted if name not in params["order"]]
        if unknown:
            module.fail_json(msg="cannot restart %s: not in the start order %s" % (", ".join(unknown), ", ".join(params["order"])))
        for service in params["order"]:
            if service in wanted and service not in params["one_shot"] and service in current:
                actions.append((service, "restart"))
        if not module.check_mode:
            for service, _action in actions:
                runner.run([params["podman"], "restart", current[service].name], timeout=params["timeout"])
    elif params["state"] == "stopped":
        if any(c.running for c in current.values()):
            actions = [(c.service, "stop") for c in current.values() if c.running]
            if not module.check_mode:
                runner.run(runner.base + ["stop"], timeout=params["timeout"])
    else:
        if current:
            actions = [(c.service, "remove") for c in current.values()]
            if not module.check_mode:
                runner.run(runner.base + ["down"], timeout=params["timeout"])

    after = current if module.check_mode else runner.containers()
    changed_networks = [name for name, action in result.get("networks", []) if action != compose.KEEP]
    module.exit_json(changed=bool(actions or changed_networks), actions=[list(item) for item in actions],
                     containers=dict((name, c.as_dict()) for name, c in after.items()), **result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_podman_compose
short_description: Run a compose project under Podman in order
version_added: "0.1.0"
description:
  - Starts, restarts, stops or removes a compose project under Podman with C(podman-compose), service by service
    in a given order, and changes only the services whose containers are missing, outdated or stopped.
  - It exists because podman-compose 1.x on Podman older than 4.6 ignores C(depends_on) conditions and C(--wait),
    so an Airflow project cannot simply be started with C(podman-compose up).
author:
  - Failback Airflow Maintainers (@failback)
options:
  project_src:
    description: Directory of the compose project.
    type: path
    required: true
  files:
    description:
      - Compose files, relative to O(project_src).
      - They are read on the managed host; a later file's services and networks replace an earlier file's of the same name.
    type: list
    elements: str
    default: [compose.yaml]
  project_name:
    description: Compose project name.
    type: str
    required: true
  state:
    description:
      - V(present) brings the services of O(order) up one after the other (C(podman-compose up -d --no-deps SERVICE)).
        A service whose container is missing is created, one whose C(org.failback.config-hash) label differs from the
        compose file is recreated, a stopped one is started; nothing else is touched.
      - V(restarted) restarts the containers of O(services) (all of O(order) when empty) with C(podman restart), in order.
        One-shot services and services without a container are left alone.
      - V(stopped) stops every container of the project (C(podman-compose stop)) when one is running.
      - V(absent) removes the containers and the project network (C(podman-compose down)) when the project has containers.
    type: str
    choices: [present, restarted, stopped, absent]
    default: present
  order:
    description:
      - Services in start order. Required for O(state=present) and O(state=restarted).
      - Every service must be in the compose files.
    type: list
    elements: str
    default: []
  one_shot:
    description:
      - Services of O(order) that run to completion (exit code 0) instead of staying up, for example Airflow's database migration.
      - With O(state=present), such a service runs, bounded by O(timeout), before the services after it start; the module fails
        with its last log lines when it exits non-zero.
      - It runs again when its container is missing, outdated, still running or last failed, and whenever a long-running
        service of O(order) has to be created.
    type: list
    elements: str
    default: []
  wait_healthy:
    description:
      - Services of O(order) that must pass C(podman healthcheck run) before any later service is started (Podman runs no
        health checks by itself without systemd).
      - The wait, bounded by O(timeout), happens only when a later service has something to do.
    type: list
    elements: str
    default: []
  services:
    description: With O(state=restarted), the services to restart; each must be in O(order).
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
    description: Seconds allowed for each one-shot service, for each health wait, and for each restart, stop or removal command.
    type: int
    default: 300
  logs_tail:
    description: Log lines of a failing service to show.
    type: int
    default: 40
  network_dns:
    description:
      - With O(state=present), make sure every network of the project has DNS (so that containers resolve each other's names)
        before anything starts.
      - A missing network is created. A network created without DNS (before the CNI C(dnsname) plugin or C(aardvark-dns)
        was installed) is recreated when Podman can now give it DNS; otherwise the module fails and names the packages
        of O(dns_packages).
      - Recreating a network removes the project's containers attached to it; they are created again right after.
      - External networks, networks with C(x-podman.disable_dns) and services with a C(network_mode) are not checked.
    type: bool
    default: true
  dns_packages:
    description: The packages that give this host's Podman networks DNS, named in the error when a network has none.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Reads the containers' state and reports the planned actions without running them.
      - To find out whether Podman can give a network DNS, the module creates and removes a temporary probe network,
        in check mode too (only when a project network has no DNS).
      - When a network would be recreated, RV(actions) does not list the containers on it that the recreation would
        remove and create again.
  diff_mode:
    support: none
    details:
      - No diff is returned; RV(actions) and RV(networks) list what changed.
  idempotent:
    support: partial
    details:
      - With O(state=restarted) the module restarts the services on every run.
      - With the other states, a second run with the same compose files finds every container current and changes nothing.
  platform:
    support: full
    platforms: posix
    details:
      - A Linux host with Podman and podman-compose.
requirements:
  - podman-compose 1.x
  - coreutils C(timeout)
  - PyYAML on the managed host
seealso:
  - module: failback.airflow.airflow_health
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
  description: What was (or in check mode would be) done to each project network, as C([network, action]) with action V(keep), V(create) or V(recreate).
  returned: with O(state=present) and O(network_dns=true)
  type: list
  elements: list
  sample: [[failback-server-1_default, recreate]]
actions:
  description:
    - What was (or in check mode would be) done, in order, as C([service, action]).
    - The action is V(create), V(recreate), V(start) or V(run) (a one-shot service) with O(state=present), V(restart) with
      O(state=restarted), V(stop) with O(state=stopped) and V(remove) with O(state=absent).
  returned: always
  type: list
  elements: list
  sample: [[postgres, create], [airflow-init, run], [airflow-scheduler, recreate]]
containers:
  description: The project's containers by service after the run (in check mode, as they are before it).
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

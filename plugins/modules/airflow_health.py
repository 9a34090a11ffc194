#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_health
short_description: Wait until an Airflow 3 installation is healthy
version_added: "0.1.0"
description:
  - Waits until the components of an Airflow 3 installation report C(healthy) in C(/api/v2/monitor/health)
    of its API server, and fails with the unhealthy components and their last heartbeats when O(timeout) runs out.
  - That endpoint answers HTTP 200 even when a component is unhealthy, so the module reads the JSON body,
    never only the status code.
author:
  - Failback Airflow Maintainers (@failback)
options:
  components:
    description:
      - Components of the health answer that must be C(healthy).
      - Allowed names are V(metadatabase), V(scheduler), V(dag_processor) and V(triggerer); the module fails on any other.
      - A component the answer does not report counts as unhealthy.
    type: list
    elements: str
    default: [metadatabase, scheduler, dag_processor, triggerer]
  timeout:
    description:
      - Seconds to keep asking before failing; V(0) asks once.
      - The module does not wait for an attempt that would start after the timeout, so it may fail up to O(interval)
        seconds before O(timeout) has passed.
    type: int
    default: 300
  interval:
    description: Seconds between two attempts.
    type: int
    default: 3
extends_documentation_fragment:
  - failback.airflow.api
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.info_module
  - failback.airflow.attributes.idempotent_not_modify_state
  - failback.airflow.attributes.platform
attributes:
  platform:
    support: full
    platforms: posix
    details:
      - Needs only Python on the host that runs it, which must reach O(url).
notes:
  - Run it on the server itself when the API server is published on 127.0.0.1 only.
seealso:
  - module: failback.airflow.airflow_dags
  - module: failback.airflow.airflow_podman_compose
"""

EXAMPLES = r"""
- name: Wait until the installation is healthy
  failback.airflow.airflow_health:
    url: http://127.0.0.1:8080
    timeout: 300

- name: Only the database and the scheduler matter here
  failback.airflow.airflow_health:
    url: http://127.0.0.1:8080
    components: [metadatabase, scheduler]
    timeout: 0
"""

RETURN = r"""
healthy:
  description: Whether every wanted component was healthy at the last attempt.
  returned: always
  type: bool
  sample: true
health:
  description: The last JSON answer of C(/api/v2/monitor/health).
  returned: always
  type: dict
  sample:
    metadatabase: {status: healthy}
    scheduler: {status: healthy, latest_scheduler_heartbeat: "2026-11-21T10:00:00+00:00"}
problems:
  description:
    - Unhealthy components and why, at the last attempt (empty when healthy).
    - The key C(api_server) means the API server itself did not answer.
  returned: always
  type: dict
  sample: {triggerer: "status unhealthy, last heartbeat 2026-11-21T09:58:00+00:00"}
services:
  description: Compose services of the unhealthy components (for their logs).
  returned: always
  type: list
  elements: str
  sample: [airflow-triggerer]
attempts:
  description: How many times the endpoint was asked.
  returned: always
  type: int
  sample: 4
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect


def main():
    module = AnsibleModule(**airflow_api.module_kwargs(dict(
        components=dict(type="list", elements="str", default=["metadatabase", "scheduler", "dag_processor", "triggerer"]),
        timeout=dict(type="int", default=300),
        interval=dict(type="int", default=3),
    ), login=False))
    params = module.params
    unknown = sorted(set(params["components"]) - set(airflow_api.HEALTH_COMPONENTS))
    if unknown:
        module.fail_json(msg="unknown component(s) %s; allowed: %s" % (
            ", ".join(unknown), ", ".join(sorted(airflow_api.HEALTH_COMPONENTS))))
    try:
        client = connect(params)
    except airflow_api.AirflowApiError as exc:
        module.fail_json(msg="%s: %s" % (airflow_api.where(params), exc))
    deadline = time.monotonic() + max(params["timeout"], 0)
    attempts = 0
    health, problems = {}, {}
    while True:
        attempts += 1
        try:
            health = client.health()
            problems = airflow_api.health_problems(health, params["components"])
        except airflow_api.AirflowApiError as exc:
            health = {}
            problems = {"api_server": str(exc)}
        if not problems or time.monotonic() + params["interval"] > deadline:
            break
        time.sleep(params["interval"])
    services = sorted(set(airflow_api.HEALTH_COMPONENTS.get(name, "airflow-api-server") for name in problems))
    result = dict(changed=False, healthy=not problems, health=health, problems=problems, services=services,
                  attempts=attempts)
    if problems:
        module.fail_json(
            msg="%s is not healthy after %d s: %s" % (
                airflow_api.where(params), params["timeout"], "; ".join("%s: %s" % item for item in sorted(problems.items()))),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_status_info
short_description: Read what one Airflow 3 installation knows, for the fleet status
version_added: "0.4.0"
description:
  - Reads, through the REST API, an installation's health and version, the DAGs it parses and whether they are
    paused, its import errors, the latest run of each DAG, and the task instances that executed in the last
    O(window) seconds with the guard's records (XComs C(failback_guard_run), C(failback_guard_skip),
    C(failback_guard_error)).
  - M(failback.airflow.fleet_status) turns what every installation answers into the fleet's findings;
    C(playbooks/status.yml) runs both.
author:
  - Failback Airflow Maintainers (@failback)
options:
  components:
    description: The components of C(/api/v2/monitor/health) that must be healthy.
    type: list
    elements: str
    default: [metadatabase, scheduler, dag_processor, triggerer]
  window:
    description: How far back (seconds) executed task instances are read to find leaks.
    type: int
    default: 86400
  limit:
    description: At most this many runs, task instances and import errors are read (each).
    type: int
    default: 1000
extends_documentation_fragment:
  - failback.airflow.api
  - failback.airflow.api.login
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
seealso:
  - module: failback.airflow.fleet_status
"""

EXAMPLES = r"""
- name: Read what the installation's Airflow knows
  failback.airflow.airflow_status_info:
    url: http://127.0.0.1:8080
    username: admin
    password_file: /opt/failback-airflow/server-1/auth/passwords.json
  register: airflow_status
"""

RETURN = r"""
status:
  description:
    - C(version), C(health) (component to status), C(problems) (component to reason), C(dags) (DAG id to
      C({paused, bundle, version, file}) - the DAG bundle it was parsed from, that bundle's version, a Git commit or
      null for a local folder, and its file in the bundle), C(import_errors) (C({filename, bundle, error})), C(runs)
      (DAG id to its latest run), C(executed) (task instances in an executed state since C(window_start), with
      C(guard), the keys of the guard's records).
  returned: always
  type: dict
  sample:
    version: 3.3.2
    health: {metadatabase: healthy, scheduler: healthy, dag_processor: healthy, triggerer: healthy}
    problems: {}
    dags:
      sales_daily: {paused: false, bundle: dags-folder, version: null, file: sales_daily.py}
    import_errors: []
    runs: {sales_daily: {run_id: "scheduled__2026-12-01T02:00:00+00:00", run_after: "2026-12-01T02:00:00Z",
                         state: success}}
    executed: []
    window_start: "2026-11-30T09:00:00Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, fleet
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect


def main():
    module = AnsibleModule(**airflow_api.module_kwargs(dict(
        components=dict(type="list", elements="str", default=["metadatabase", "scheduler", "dag_processor", "triggerer"]),
        window=dict(type="int", default=fleet.DEFAULT_WINDOW),
        limit=dict(type="int", default=1000),
    )))
    params = module.params
    for name in ("window", "limit"):
        if params[name] < 1:
            module.fail_json(msg="%s must be a positive number of %s, not %d"
                             % (name, "seconds" if name == "window" else "entries", params[name]))
    try:
        client = connect(params, fleet.StatusClient)
        client.login_with(params)
        status = fleet.read_installation(client, params["components"], window=params["window"], limit=params["limit"])
    except (airflow_api.AirflowApiError, ValueError) as exc:
        module.fail_json(msg="%s: %s" % (airflow_api.where(params), exc))
    module.exit_json(changed=False, status=status)


if __name__ == "__main__":
    main()

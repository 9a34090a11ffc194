#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_runs_info
short_description: Read the runs of moved DAGs around their handover on an Airflow 3 installation
version_added: "0.3.0"
description:
  - Reads, through the REST API, the runs of some DAGs around their latest handover in a placement map, with their
    task instances and the guard's records (XComs C(failback_guard_run), C(failback_guard_skip) and
    C(failback_guard_error)), and says for each run whether it ran here, was stopped by the guard, or is still going.
  - On an old owner it finds the runs it must keep (RV(late)) and the runs a switchover waits for (RV(draining)).
    On a new owner, M(failback.airflow.airflow_catchup) uses the same reading to re-run what nobody ran.
author:
  - Failback Airflow Maintainers (@failback)
options: {}
extends_documentation_fragment:
  - failback.airflow.api
  - failback.airflow.api.login
  - failback.airflow.runs
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
  - A run belongs to the installation that owned its DAG when the run was due (its C(run_after)); see the placement
    map's C(handovers) in docs/placement-map.md.
  - A task instance that runs without a guard record for less than 30 seconds makes its run RV(undecided); retry
    until RV(undecided) is empty before relying on RV(late).
seealso:
  - module: failback.airflow.airflow_catchup
  - module: failback.airflow.placement_failover
"""

EXAMPLES = r"""
- name: Wait until the old owner's own runs of the moved DAGs are over
  failback.airflow.airflow_runs_info:
    url: http://127.0.0.1:8080
    username: admin
    password_file: /opt/failback-airflow/server-1/auth/passwords.json
    moved: away
    map_before: "{{ failover_before }}"
    map_after: "{{ failover_after }}"
    installation: "{{ inventory_hostname }}"
  register: runs
  until: runs.draining | length == 0
  retries: 60
  delay: 5
"""

RETURN = r"""
dags:
  description: The DAGs that were read.
  returned: always
  type: list
  elements: str
  sample: [sales_daily]
runs:
  description:
    - Every run read, oldest first. C(status) is V(executed) (a task ran here), V(stopped) (the guard stopped it here,
      nothing ran), V(split) (both), V(undecided) (a task started and the guard has not decided yet) or V(idle)
      (nothing started). C(owner) is the installation the run belongs to by the map; C(key) identifies the interval on
      every installation (its logical date, else its run id).
  returned: always
  type: list
  elements: dict
  sample:
    - {dag_id: sales_daily, run_id: "scheduled__2026-12-01T02:00:00+00:00", run_after: "2026-12-01T02:00:00Z",
       logical_date: "2026-12-01T02:00:00Z", key: "2026-12-01T02:00:00Z", state: success, status: executed,
       owner: server-1}
late:
  description: Runs due after a handover away from this installation that it had already started (they stay with it).
  returned: always
  type: list
  elements: dict
draining:
  description:
    - Runs this installation owns by the map that are still queued or running, and - with C(run_id) V(null) and
      C(state) V(not created yet) - the runs it owns that its scheduler has not created yet (a DAG it did not pause
      whose next run is due before the handover away from it); pausing the DAG before then would lose them.
  returned: always
  type: list
  elements: dict
undecided:
  description: Runs with a task that started and has no guard record yet.
  returned: always
  type: list
  elements: dict
missing:
  description: Selected DAGs this installation does not know.
  returned: always
  type: list
  elements: str
truncated:
  description: DAGs with more than O(limit) runs in the window.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, catchup, placement
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect


def main():
    module = AnsibleModule(**catchup.module_kwargs())
    params = module.params
    try:
        client = connect(params, catchup.RunsClient)
        client.login_with(params)
        pmap, dags, missing = catchup.select(client, params)
        entries = {}
        described, truncated = catchup.read_runs(client, dags, pmap, params["lookback"], params["limit"], dags=entries)
    except (airflow_api.AirflowApiError, placement.PlacementError, ValueError) as exc:
        module.fail_json(msg="%s: %s" % (airflow_api.where(params), exc))
    view = catchup.old_owner_view(described, pmap, params["installation"], entries)
    module.exit_json(changed=False, dags=dags, missing=missing, runs=described, truncated=truncated, **view)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_catchup
short_description: Re-run, on a new owner, the runs of moved DAGs that its guard stopped and nobody ran
version_added: "0.3.0"
description:
  - After a failover, the new owner may hold runs of the DAGs it gained that its guard stopped while the DAG was not
    its own yet (it skipped their tasks). Those due from the handover on are its runs now (see the placement map's
    C(handovers)); when nobody executed them, this module re-runs them by clearing them through Airflow's REST API
    (C(POST /api/v2/dags/{dag_id}/dagRuns/{run_id}/clear)), and notes on each run why.
  - Runs the old owner reported as executed (O(executed_elsewhere)), runs that belong to another installation, runs
    split between installations and runs still going are left alone and listed in RV(left) with the reason.
  - Runs skipped for other reasons (a branch, a trigger rule) are never candidates - only runs the guard stopped
    (its records, XComs C(failback_guard_skip) and C(failback_guard_error)) and where no task ran here.
author:
  - Failback Airflow Maintainers (@failback)
options:
  executed_elsewhere:
    description:
      - Keys (RV(failback.airflow.airflow_runs_info#module:runs[].key)) of the runs the old owner executed, as read
        from it with M(failback.airflow.airflow_runs_info). They are not re-run here.
    type: list
    elements: str
    default: []
  old_owner_asked:
    description:
      - Whether the old owners were asked what they ran (O(executed_elsewhere)). Then the runs stopped here that are
        due before the handover are theirs and are not listed; otherwise they are listed in RV(left) as candidates for
        C(failover_catchup_since).
    type: bool
    default: false
  note:
    description: Note set on every re-run DAG run (what Airflow's UI shows next to the run).
    type: str
    default: Re-run here by failback.airflow after a failover - nobody ran it before.
  settle:
    description:
      - Seconds to wait, at most, for runs of the gained DAGs that are owned here, not over yet, and whose guard
        stopped them or has not decided yet. A task that started before the new map reached this installation is
        stopped under the map before and its run ends moments later; it is re-run once it has ended. Runs still not
        over after O(settle) are listed in RV(left). Not waited for in check mode.
    type: int
    default: 120
extends_documentation_fragment:
  - failback.airflow.api
  - failback.airflow.api.login
  - failback.airflow.runs
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Reads everything and returns in RV(rerun) exactly the runs it would clear, without clearing them.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - A cleared run is queued again and its guard records are gone once its tasks start; a second run finds nothing
        left to re-run (a run still queued or running is never cleared).
  platform:
    support: full
    platforms: posix
    details:
      - Needs only Python on the host that runs it, which must reach O(url).
seealso:
  - module: failback.airflow.airflow_runs_info
  - module: failback.airflow.placement_failover
"""

EXAMPLES = r"""
- name: Re-run what nobody ran of the DAGs this installation gained
  failback.airflow.airflow_catchup:
    url: http://127.0.0.1:8080
    username: admin
    password_file: /opt/failback-airflow/server-2/auth/passwords.json
    moved: here
    map_before: "{{ failover_before }}"
    map_after: "{{ failover_after }}"
    installation: "{{ inventory_hostname }}"
    executed_elsewhere: "{{ hostvars['server-1'].old_owner_runs.runs | selectattr('status', 'in', ['executed', 'split'])
                            | map(attribute='key') | list }}"
"""

RETURN = r"""
rerun:
  description: The runs re-run (in check mode, that would be re-run), as in RV(failback.airflow.airflow_runs_info#module:runs).
  returned: always
  type: list
  elements: dict
  sample:
    - {dag_id: sales_daily, run_id: "scheduled__2026-12-01T02:00:00+00:00", run_after: "2026-12-01T02:00:00Z",
       key: "2026-12-01T02:00:00Z", state: success, status: stopped, owner: server-2}
left:
  description: Runs the guard stopped here that are not re-run, each with a C(reason).
  returned: always
  type: list
  elements: dict
dags:
  description: The DAGs that were read.
  returned: always
  type: list
  elements: str
missing:
  description: Selected DAGs this installation does not know.
  returned: always
  type: list
  elements: str
truncated:
  description: DAGs with more than O(limit) runs in the window (only the first O(limit) were considered).
  returned: always
  type: list
  elements: str
waited:
  description: Seconds waited for runs stopped here that were not over yet (see O(settle)).
  returned: always
  type: float
  sample: 4.2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, catchup, placement
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect


def main():
    module = AnsibleModule(
        **catchup.module_kwargs(
            executed_elsewhere=dict(type="list", elements="str", default=[]),
            old_owner_asked=dict(type="bool", default=False),
            note=dict(type="str", default="Re-run here by failback.airflow after a failover - nobody ran it before."),
            settle=dict(type="int", default=120),
        )
    )
    params = module.params
    try:
        client = connect(params, catchup.RunsClient)
        client.login_with(params)
        pmap, dags, missing = catchup.select(client, params)
        if params["settle"] < 0:
            raise ValueError("settle is %d: give 0 or more seconds" % params["settle"])
        described, truncated, waited, _waiting = catchup.read_settled(
            lambda: catchup.read_runs(client, dags, pmap, params["lookback"], params["limit"]), params["installation"],
            0 if module.check_mode else params["settle"])
        rerun, left = catchup.catchup_plan(described, pmap, params["installation"], params["executed_elsewhere"],
                                           params["old_owner_asked"])
        if not module.check_mode:
            for run in rerun:
                client.clear_run(run["dag_id"], run["run_id"])
                client.note_run(run["dag_id"], run["run_id"], params["note"])
    except (airflow_api.AirflowApiError, placement.PlacementError, ValueError) as exc:
        module.fail_json(msg="%s: %s" % (airflow_api.where(params), exc))
    module.exit_json(changed=bool(rerun), rerun=rerun, left=left, dags=dags, missing=missing, truncated=truncated,
                     waited=round(waited, 1))


if __name__ == "__main__":
    main()

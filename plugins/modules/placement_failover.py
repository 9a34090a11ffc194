#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: placement_failover
short_description: Plan, commit and finish a failover in the controller's placement map
version_added: "0.2.0"
description:
  - The controller's side of C(failover.yml). It plans moving DAGs to another installation in the controller's
    placement map, commits the new map together with a failover journal, and marks the failover finished once the
    installations hold the new map (O(step)).
  - A failover that stopped after its commit is resumed by the next run, with the same or any other request.
author:
  - Failback Airflow Maintainers (@failback)
options:
  path:
    description: The controller's placement map. It must exist.
    type: path
    required: true
  installations:
    description: The known installation names.
    type: list
    elements: str
    required: true
  step:
    description:
      - V(plan) validates the request against the controller's map and returns what would move, without writing.
      - V(commit) writes the new map in one compare-and-swap step (it fails if the map changed since it was read),
        together with the failover journal.
      - V(keep) gives the old owners the runs they started after the handover (O(kept)) in a new generation of the map,
        written the same way and recorded in the journal.
      - V(finish) checks with O(publish_plan) that every reachable installation holds the new map, returns the summary
        in RV(msg) and marks the journal done.
    type: str
    choices: [plan, commit, keep, finish]
    default: plan
  to:
    description: The installation that becomes the owner.
    type: raw
    required: true
  source:
    description:
      - Move every DAG this installation owns (and the default owner role, if it has it).
      - O(source), O(dags) or both are required; an empty value counts as not given.
    type: raw
    aliases: [from]
  dags:
    description:
      - DAG ids to move, a list or a comma-separated string.
      - With O(source), each must be owned by it or already by O(to); without it, each must have an owner.
    type: raw
  since:
    description:
      - Put the moved DAGs' handover at this time (ISO 8601) instead of now, so that their runs due from then on belong
        to O(to). For a forced failover where the old owner is known to have run nothing since then.
      - Needs O(source). DAGs an earlier run of the same failover moved get their handover moved back too (never
        forward, and never before the handover before it).
    type: raw
  kept:
    description:
      - "O(step=keep) - C({old_owner: {dag_id: [run_after, ...]}}) or C({old_owner: [run, ...]}), the runs each old owner
        had started after the handover (RV(failback.airflow.airflow_runs_info#module:late))."
    type: dict
    default: {}
  held:
    description:
      - "O(step=keep) - C({old_owner: time}) for the old owners that did not confirm the revoke with a lease source
        (C(airflow_placement_source) C(s3)): their guards may decide with the map before until C(time), the moment
        their lease is certainly over, so the moved DAGs' runs due before it stay theirs (the handover moves forward
        to it). A DAG some other installation may already run from its handover on is not held (RV(refused))."
    type: dict
    default: {}
  catchup:
    description:
      - O(step=finish) - what the drain and the catch-up did, for the summary (C(rerun), C(left), C(kept), C(disabled),
        C(notes)).
    type: dict
    default: {}
  planned:
    description:
      - O(step=commit) - the map RV(after) of the O(step=plan) call; it is what gets written (the same map the
        installations receive), and the commit fails if the controller's map no longer leads to it.
    type: dict
  publish_plan:
    description:
      - O(step=finish) - the publishing plan (P(failback.airflow.placement_publish_plan#filter)); with the
        C(airflow_placement_published) facts of the installations it tells whether every reachable one holds the map.
      - The step fails, after printing the summary, when one does not or when the plan blocked one.
    type: dict
    default: {}
  updated_by:
    description: Who makes the change, recorded in the map. Defaults to C(user@host) of the controller.
    type: str
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.flow
  - failback.airflow.attributes.platform
attributes:
  action:
    support: full
    details:
      - The module is an action plugin only. It reads and writes files on the controller only, whatever the host of the task.
  async:
    support: none
  check_mode:
    support: full
    details:
      - O(step=commit) and O(step=keep) return the change and the diff and write nothing.
      - O(step=finish) reports whether it would mark the journal done and writes nothing.
  diff_mode:
    support: partial
    details:
      - O(step=commit) and O(step=keep) show the controller's map before and after, when it changes.
      - O(step=finish) marks the journal done without a diff.
  idempotent:
    support: full
    details:
      - A failover that already happened moves nothing and writes nothing; O(step=finish) marks a journal done once.
  platform:
    support: full
    platforms: posix
    details:
      - Runs on the controller.
notes:
  - The journal (C(<map stem>.failover.json) next to the map) records the map before and after the failover. A run that
    stopped after the commit (killed, or a publish that failed) is resumed by the next run - the DAGs it moved are still
    paused where they left and unpaused where they went. The journal is written before the map.
  - Moving DAGs to the installation that already owns them changes nothing, so the same request can be run again.
  - Every move records a handover in the map (C(handovers)) at the plan's time (or O(since)); runs due before it stay
    with the old owner, so a run in flight finishes where it started.
  - Bad input (unknown installations, a DAG list that is a mapping or a number, DAGs owned elsewhere) fails before
    anything is written, with a message that names the value.
seealso:
  - module: failback.airflow.dag_placement
  - module: failback.airflow.fleet_lock
"""

EXAMPLES = r"""
- name: Plan moving every DAG of server-1 to server-2
  failback.airflow.placement_failover:
    path: "{{ inventory_dir }}/placement.yml"
    installations: "{{ groups['airflow_installations'] }}"
    from: server-1
    to: server-2
  register: plan

- name: Commit it (the map and the journal)
  failback.airflow.placement_failover:
    path: "{{ inventory_dir }}/placement.yml"
    installations: "{{ groups['airflow_installations'] }}"
    step: commit
    from: server-1
    to: server-2
"""

RETURN = r"""
before:
  description: The map the moved DAGs left (the journal's when an unfinished failover is resumed).
  returned: success
  type: dict
  sample: {"@failback": {"generation": 6}, "sales_daily": "server-1"}
after:
  description: The map to publish.
  returned: success
  type: dict
  sample: {"@failback": {"generation": 7, "updated_by": "alice@ctl", "updated_at": "2026-12-01T10:00:00Z"}, "sales_daily": "server-2"}
generation:
  description: Generation of RV(after).
  returned: success
  type: int
  sample: 7
commit:
  description: Whether the controller's map changes (is written with O(step=commit)).
  returned: success
  type: bool
  sample: true
moved:
  description: DAGs whose owner differs between RV(before) and RV(after); C(@default) is the default owner.
  returned: success
  type: dict
  sample: {"sales_daily": {"from": "server-1", "to": "server-2"}}
old_owners:
  description: Installations that lose DAGs.
  returned: success
  type: list
  elements: str
  sample: [server-1]
resumed:
  description: Whether an unfinished failover recorded in the journal is being finished.
  returned: success
  type: bool
  sample: false
stale_journal:
  description: An unfinished journal that no longer matches the controller's map (changed some other way since).
  returned: success
  type: dict
  sample: null
kept:
  description: "O(step=keep) - the runs kept by each old owner, C({old_owner: {dag_id: [run_after]}})."
  returned: with O(step=keep)
  type: dict
  sample: {"server-1": {"sales_daily": ["2026-12-01T10:00:00Z"]}}
refused:
  description:
    - "O(step=keep) - per old owner, the runs (or, for O(held), the DAGs from their handover on) that stay with their
      current owner, because another installation may run them by the map it holds, with the reason:
      C({old_owner: [{dag_id, run_after, reason}]})."
  returned: with O(step=keep)
  type: dict
  sample: {"server-1": [{"dag_id": "sales_daily", "run_after": "2026-12-01T10:00:00Z", "reason": "server-2 runs it now by the map it holds"}]}
msg:
  description: "O(step=finish) - the summary, for example C(moved 2: sales_daily, sales_hourly -> server-2; placement map generation 8)."
  returned: with O(step=finish)
  type: str
  sample: "moved 1: sales_daily -> server-2; placement map generation 8"
journal:
  description: The journal file.
  returned: always
  type: str
  sample: /srv/inventory/placement.failover.json
"""

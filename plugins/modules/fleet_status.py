#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_status
short_description: Who owns what in the fleet, and every way it has drifted from the controller's placement map
version_added: "0.4.0"
description:
  - Compares the controller's placement map with what every installation holds (map generation, fence) and what its
    Airflow answers (M(failback.airflow.airflow_status_info)), and returns the fleet report - one row per
    installation, one per DAG - with its findings, each a named drift with a severity.
  - "The findings: C(leak), C(unreachable), C(ahead) (critical); C(fenced), C(behind), C(unhealthy), C(api_unreadable),
    C(unmapped_dag), C(paused_on_owner), C(owner_does_not_parse) (error); C(unknown_dag), C(dag_sets_differ),
    C(import_errors), C(files_differ) (warning). docs/status.md explains each."
  - Writes the report as JSON and as a self-contained HTML page (no script, no external asset) next to the map,
    each replaced atomically.
  - C(playbooks/status.yml) gathers the data and calls it; other playbooks can call it the same way.
author:
  - Failback Airflow Maintainers (@failback)
options:
  path:
    description: The controller's placement map.
    type: path
    required: true
  installations:
    description:
      - "Per installation name: C(role) (the role that runs it), C(held) (C(reachable), C(generation), C(fenced),
        C(fence_reason), C(error): what its placement directory holds) and C(airflow) (RV(failback.airflow.airflow_status_info#module:status),
        C({error: message}) when its API did not answer, or null when it was not read, e.g. a cluster) and C(drift)
        (the credential and guard files a check-mode C(site.yml) would change there, from the roles' C(drift) entry
        points; null when not checked)."
    type: dict
    required: true
  files_differ:
    description: Per installation, more files that differ from what C(site.yml) would write, found some other way.
    type: dict
    default: {}
  authority:
    description:
      - What the fleet's authority holds when the guards read the map from one (C(airflow_placement_source) C(s3)),
        as C(playbooks/status.yml) read it with M(failback.airflow.placement_authority) - C(url), C(lease),
        C(refresh), C(generation), C(stage) (V(revoke) for a revoke stage) and C(error) (why it could not be read).
      - Findings C(authority_unreadable), C(authority_ahead), C(authority_behind) and C(authority_revoke_stage).
    type: dict
  watch_state:
    description:
      - The automatic failover watcher's state file (role C(airflow_watcher)); default C(fleet-watch.json) next to
        O(path). When it exists, the report says which pairs are armed and the last decision, and the finding
        C(watcher_stale) says the watcher has not read the fleet for more than three of its intervals.
    type: path
  json_path:
    description: Where the JSON report goes; empty for none. Default C(fleet-status.json) next to O(path).
    type: path
  html_path:
    description: Where the HTML report goes; empty for none. Default C(fleet-status.html) next to O(path).
    type: path
  fail_on:
    description: The least severe finding that makes RV(failing) non-empty (C(playbooks/status.yml) then fails).
    type: str
    choices: [critical, error, warning]
    default: warning
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - In check mode the reports are not written; RV(report) is returned all the same.
  diff_mode:
    support: none
    details:
      - No diff is returned.
  idempotent:
    support: full
    details:
      - The reports are output, not state; the module never reports a change.
  platform:
    support: full
    platforms: posix
    details:
      - Runs where the controller's map is (delegate it to localhost).
seealso:
  - module: failback.airflow.airflow_status_info
"""

EXAMPLES = r"""
- name: Assess the fleet
  failback.airflow.fleet_status:
    path: "{{ airflow_placement_map_src }}"
    installations: "{{ fleet_observed }}"
  delegate_to: localhost
  run_once: true
  register: fleet
"""

RETURN = r"""
report:
  description: C(generation), C(installations) (rows), C(dags) (rows), C(findings) (C(code), C(severity), C(subject),
    C(detail), C(meaning)), C(counts) per severity, C(healthy).
  returned: always
  type: dict
lines:
  description: The report as text, as C(playbooks/status.yml) prints it.
  returned: always
  type: list
  elements: str
summary:
  description: "One line, e.g. C(fleet drifted: 1 error, 2 warning)."
  returned: always
  type: str
failing:
  description: The findings at or above O(fail_on).
  returned: always
  type: list
  elements: dict
json_path:
  description: The JSON report written (empty in check mode or when none).
  returned: always
  type: str
html_path:
  description: The HTML report written (empty in check mode or when none).
  returned: always
  type: str
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import fleet, placement


def _read_watch(path):
    """The watcher's state (a dict), None without one; a file that is not a JSON object is an error
    (placement.read_text refuses a FIFO, a directory or a link at once)."""
    text = placement.read_text(path, "the watcher's state file", follow_symlinks=False)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise placement.PlacementError("the watcher's state file %s cannot be read: %s" % (path, exc))
    if not isinstance(data, dict):
        raise placement.PlacementError("the watcher's state file %s is not a JSON object" % path)
    return data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            installations=dict(type="dict", required=True),
            files_differ=dict(type="dict", default={}),
            authority=dict(type="dict"),
            watch_state=dict(type="path"),
            json_path=dict(type="path"),
            html_path=dict(type="path"),
            fail_on=dict(type="str", choices=list(fleet.SEVERITIES), default="warning"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    folder = os.path.dirname(os.path.abspath(params["path"]))
    try:
        pmap = placement.read_map_file(params["path"], list(params["installations"]))
        if pmap is None:
            raise placement.PlacementError("there is no controller map here (run site.yml first)")
        watch_path = params["watch_state"] or os.path.join(os.path.dirname(os.path.abspath(params["path"])), "fleet-watch.json")
        watch = _read_watch(watch_path)
        report = fleet.assess(pmap, params["installations"], params["files_differ"], params["authority"], watch=watch)
        failing = fleet.failing(report, params["fail_on"])
    except placement.PlacementError as exc:
        module.fail_json(msg="%s: %s" % (params["path"], exc))
    now = placement.utc_now()
    written = {}
    for key, default, render in (("json_path", "fleet-status.json", fleet.render_json),
                                 ("html_path", "fleet-status.html", fleet.render_html)):
        target = params[key] if params[key] is not None else os.path.join(folder, default)
        written[key] = ""
        if target and not module.check_mode:
            try:
                placement.atomic_write(target, render(report, now), mode=0o644)
            except (OSError, IOError) as exc:
                module.fail_json(msg="cannot write the report %s: %s" % (target, exc))
            written[key] = target
    module.exit_json(changed=False, report=report, lines=fleet.render_text(report), summary=fleet.summary_line(report),
                     failing=failing, **written)


if __name__ == "__main__":
    main()

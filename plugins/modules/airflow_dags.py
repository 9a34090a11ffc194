#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: airflow_dags
short_description: Pause or unpause DAGs of an Airflow 3 installation
version_added: "0.1.0"
description:
  - Pauses or unpauses DAGs of an Airflow 3 installation through its REST API.
  - The DAGs are named in O(dag_ids), or chosen from two placement maps as the DAGs this installation lost
    or gained (O(moved)).
author:
  - Failback Airflow Maintainers (@failback)
options:
  paused:
    description:
      - The wanted state, set as C(is_paused) through C(/api/v2/dags).
      - Only DAGs whose state differs are changed. Selected DAGs the installation does not know (not parsed
        yet, or not deployed here) are left alone and reported in RV(missing).
    type: bool
    required: true
  dag_ids:
    description:
      - DAGs to change.
      - Mutually exclusive with O(moved); one of the two is required.
    type: list
    elements: str
  moved:
    description:
      - Choose the DAGs from O(map_before) and O(map_after).
      - V(away) selects the DAGs O(installation) owned before and no longer owns, V(here) the DAGs it owns now
        and did not own before.
      - The owner of a DAG is its entry in the map or, for a DAG the map does not list, the map's default owner.
        So the installation's own DAG list is read as well, and a moved default owner moves every DAG the
        installation knows that the maps do not list.
      - Requires O(map_before), O(map_after) and O(installation). Mutually exclusive with O(dag_ids).
    type: str
    choices: [away, here]
  map_before:
    description:
      - The placement map before the change, as data (for example RV(failback.airflow.dag_placement#module:after))
        or as YAML text.
      - Required with O(moved).
    type: raw
  map_after:
    description:
      - The placement map after the change, in the same forms as O(map_before).
      - Required with O(moved).
    type: raw
  installation:
    description:
      - This installation's name (its inventory hostname), as used in the maps.
      - Required with O(moved).
    type: str
extends_documentation_fragment:
  - failback.airflow.api
  - failback.airflow.api.login
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Logs in and reads the current states, then reports what would change without changing it.
  diff_mode:
    support: full
    details:
      - The diff lists the selected DAGs the installation knows, each V(paused) or V(active), before and after.
  idempotent:
    support: full
    details:
      - DAGs already in the wanted state are not changed.
  platform:
    support: full
    platforms: posix
    details:
      - Needs only Python on the host that runs it, which must reach O(url).
notes:
  - Run it on the server itself when the API server is published on 127.0.0.1 only.
seealso:
  - module: failback.airflow.dag_placement
  - module: failback.airflow.airflow_health
"""

EXAMPLES = r"""
- name: Pause two DAGs
  failback.airflow.airflow_dags:
    url: http://127.0.0.1:8080
    username: admin
    password: "{{ airflow_admin_password }}"
    dag_ids: [sales_daily, sales_hourly]
    paused: true

- name: Unpause the DAGs this installation gained in a failover
  failback.airflow.airflow_dags:
    url: http://127.0.0.1:8080
    username: admin
    password: "{{ airflow_admin_password }}"
    moved: here
    map_before: "{{ failover_before }}"
    map_after: "{{ failover_after }}"
    installation: "{{ inventory_hostname }}"
    paused: false
"""

RETURN = r"""
changed_dags:
  description: DAGs whose paused state was (or in check mode would be) changed.
  returned: always
  type: list
  elements: str
  sample: [sales_daily]
selected:
  description: Every DAG the module was asked to handle.
  returned: always
  type: list
  elements: str
  sample: [sales_daily, sales_hourly]
missing:
  description: Selected DAGs this installation does not know (not parsed yet, or not deployed here).
  returned: always
  type: list
  elements: str
  sample: []
dags:
  description: Paused state of every DAG of the installation after the run.
  returned: always
  type: dict
  sample: {sales_daily: true, sales_hourly: false}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, placement
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect


def main():
    module = AnsibleModule(**airflow_api.module_kwargs(
        dict(
            paused=dict(type="bool", required=True),
            dag_ids=dict(type="list", elements="str"),
            moved=dict(type="str", choices=["away", "here"]),
            map_before=dict(type="raw"),
            map_after=dict(type="raw"),
            installation=dict(type="str"),
        ),
        mutually_exclusive=[("dag_ids", "moved")], required_one_of=[("dag_ids", "moved")],
        required_by={"moved": ("map_before", "map_after", "installation")}))
    params = module.params
    try:
        client = connect(params)
        client.login_with(params)
        current = client.dags()
        if params["moved"]:
            selected = airflow_api.select_moved(params["map_before"], params["map_after"], params["installation"],
                                                current, params["moved"])
        else:
            selected = sorted(set(params["dag_ids"]))
        to_change, _unchanged, missing = airflow_api.plan_pause(current, params["paused"], selected)
        after = dict(current)
        for dag_id in to_change:
            after[dag_id] = params["paused"] if module.check_mode else client.set_paused(dag_id, params["paused"])
    except (airflow_api.AirflowApiError, placement.PlacementError, ValueError) as exc:
        module.fail_json(msg="%s: %s" % (airflow_api.where(params), exc))
    diff = dict(
        before="".join("%s: %s\n" % (d, "paused" if current[d] else "active") for d in selected if d in current),
        after="".join("%s: %s\n" % (d, "paused" if after[d] else "active") for d in selected if d in after),
    )
    module.exit_json(changed=bool(to_change), changed_dags=to_change, selected=selected, missing=missing,
                     dags=after, diff=diff)


if __name__ == "__main__":
    main()

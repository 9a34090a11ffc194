# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """How the modules that read runs around a handover choose the DAGs and the window."""

    DOCUMENTATION = r"""
options:
  map_after:
    description:
      - The placement map in force, with its C(handovers), as data or as YAML text.
    type: raw
    required: true
  installation:
    description: This installation's name, as used in the map.
    type: str
    required: true
  dag_ids:
    description:
      - DAGs to read.
      - Mutually exclusive with O(moved); one of the two is required.
    type: list
    elements: str
  moved:
    description:
      - Read the DAGs some of whose runs this installation lost (V(away)) or gained (V(here)) between O(map_before)
        and O(map_after), including DAGs owned through the default owner (the installation's own DAG list is read for
        those). Runs count, not only owners of DAGs - a handover moved back by C(failover_catchup_since) selects its DAG
        although the DAG keeps its owner.
    type: str
    choices: [away, here]
  map_before:
    description: The placement map before the change. Required with O(moved).
    type: raw
  lookback:
    description:
      - Seconds before each DAG's latest handover from which runs are read too (runs due before it belong to the old
        owner; they are only listed).
    type: int
    default: 0
  limit:
    description: At most this many runs are read per DAG; RV(truncated) names the DAGs that have more.
    type: int
    default: 1000
"""

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the fleet status rules (plugins/module_utils/fleet.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.module_utils import fleet, placement


def fleet_preflight(airflow, after, target, moved=None, role="", sources=None):
    """Drift on a failover's new owner: ``{findings, stop, lines, message, note}`` (see fleet.preflight).

    *sources*: what the old owners' Airflows answered, ``{name: answer}``, to compare the moved
    DAGs' bundle versions with (None: not compared).
    """
    try:
        return fleet.preflight(after, target, moved or [], airflow, role=role, sources=sources)
    except placement.PlacementError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"fleet_preflight": fleet_preflight}

"""The shipped inventories hold valid placement maps whose owners are their installations."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.failback.airflow.plugins.module_utils import placement

INVENTORIES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "inventories")


def installations(group):
    names = list((group.get("hosts") or {}))
    for child in (group.get("children") or {}).values():
        names += installations(child or {})
    return names


@pytest.mark.parametrize("name", ["example", "local"])
def test_inventory_map_is_valid(name):
    with open(os.path.join(INVENTORIES, name, "hosts.yml")) as handle:
        inventory = yaml.safe_load(handle)
    known = installations(inventory["all"]["children"]["airflow_installations"])
    assert known, "the inventory has installations"
    pmap = placement.read_map_file(os.path.join(INVENTORIES, name, "placement.yml"), known)
    assert pmap.dags and set(pmap.installations()) <= set(known)

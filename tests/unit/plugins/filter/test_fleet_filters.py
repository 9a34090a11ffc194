"""The fleet_preflight filter: the fleet status rules for a failover's new owner, errors as AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.filter import fleet as f

AFTER = '"@failback": {generation: 3}\nsales: server-2\n'
READ = {"version": "3.3.2", "health": {}, "problems": {}, "dags": {"other": {"paused": False}}, "import_errors": [],
        "runs": {}, "executed": [], "window_start": "2026-12-01T00:00:00Z"}


def test_registered_and_reads_the_planned_map_as_text_or_data():
    fleet_preflight = f.FilterModule().filters()["fleet_preflight"]
    from_text = fleet_preflight(READ, AFTER, "server-2", ["sales"], "airflow_server")
    from_data = fleet_preflight(READ, {"@failback": {"generation": 3}, "sales": "server-2"}, "server-2", ["sales"])
    assert [x["subject"] for x in from_text["stop"]] == [x["subject"] for x in from_data["stop"]] == ["sales"]


def test_a_bad_planned_map_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="generation"):
        f.fleet_preflight(READ, '"@failback": {generation: -1}\n', "server-2", ["sales"])

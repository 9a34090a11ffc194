"""Tests of the failback.airflow.fleet_status module, run through main() with real files."""

from __future__ import annotations

import json
import os

from failback_ansible import run_module

from ansible_collections.failback.airflow.plugins.modules import fleet_status

MAP = '"@failback":\n  generation: 3\nsales: server-2\nhello: server-1\n'


def observed(generation=3, paused=()):
    data = {"@failback": {"generation": generation}, "sales": "server-2", "hello": "server-1"}
    dags = dict((d, {"paused": d in paused}) for d in ("sales", "hello"))
    return {"role": "airflow_server", "held": {"reachable": True, "map": data, "fenced": None},
            "airflow": {"version": "3.3.2", "health": {}, "problems": {}, "dags": dags, "import_errors": [],
                        "runs": {}, "executed": []}}


def test_reports_next_to_the_map_and_findings(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text(MAP)
    result = run_module(capsys, fleet_status, False, False, path=str(path),
                        installations={"server-1": observed(2, paused=["sales"]), "server-2": observed(paused=["hello"])})
    assert not result["changed"]
    assert [(f["code"], f["subject"]) for f in result["failing"]] == [("behind", "server-1")]
    assert result["summary"] == "fleet drifted: 1 error"
    assert result["json_path"] == str(tmp_path / "fleet-status.json")
    assert json.loads((tmp_path / "fleet-status.json").read_text())["findings"][0]["code"] == "behind"
    assert "<h1>Fleet status</h1>" in (tmp_path / "fleet-status.html").read_text()
    assert oct(os.stat(tmp_path / "fleet-status.html").st_mode & 0o777) == "0o644"


def test_check_mode_writes_no_report(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text(MAP)
    result = run_module(capsys, fleet_status, True, False, path=str(path),
                        installations={"server-1": observed(paused=["sales"]), "server-2": observed(paused=["hello"])})
    assert result["report"]["healthy"] and result["failing"] == []
    assert result["json_path"] == "" and sorted(os.listdir(tmp_path)) == ["placement.yml"]


def test_a_missing_map_is_a_clear_error(capsys, tmp_path):
    result = run_module(capsys, fleet_status, False, False, path=str(tmp_path / "placement.yml"),
                        installations={"server-1": observed()})
    assert result["rc"] == 1 and result["failed"]
    assert "there is no controller map here" in result["msg"]

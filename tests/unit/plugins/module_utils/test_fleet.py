"""The fleet status rules (module_utils/fleet.py): every finding from plain installation data."""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import fleet
from ansible_collections.failback.airflow.plugins.module_utils import placement as p

MAP = p.parse_map(
    '"@failback":\n  generation: 7\n  updated_at: "2026-12-01T10:00:00Z"\n  updated_by: "alice@ctl"\n'
    '  handovers:\n    sales:\n      - {at: "2026-12-01T10:00:00Z", from: "server-1"}\n'
    "sales: server-2\nhello: server-1\n")
HEALTHY = {"metadatabase": "healthy", "scheduler": "healthy", "dag_processor": "healthy", "triggerer": "healthy"}


def airflow(dags, paused=(), runs=None, executed=(), problems=None, import_errors=()):
    return {"version": "3.3.2", "health": dict(HEALTHY), "problems": dict(problems or {}),
            "dags": dict((d, {"paused": d in paused}) for d in dags), "import_errors": list(import_errors),
            "runs": dict(runs or {}), "executed": list(executed), "window_start": "2026-11-30T12:00:00Z"}


def held(generation=7, fenced=None):
    data = p.parse_map('"@failback":\n  generation: %d\nsales: server-2\nhello: server-1\n' % generation).to_data()
    return {"reachable": True, "map": data, "fenced": fenced, "version": None}


def clean(**changes):
    fleet_data = {
        "server-1": {"role": "airflow_server", "held": held(), "airflow": airflow(["sales", "hello"], paused=["sales"])},
        "server-2": {"role": "airflow_server", "held": held(), "airflow": airflow(["sales", "hello"], paused=["hello"])},
    }
    for name, value in changes.items():
        fleet_data[name.replace("_", "-")] = value
    return fleet_data


def codes(report):
    return sorted((f["code"], f["subject"]) for f in report["findings"])


def test_clean_fleet_has_no_finding():
    report = fleet.assess(MAP, clean())
    assert report["findings"] == [] and report["healthy"]
    assert [r["owns"] for r in report["installations"]] == [1, 1]
    assert fleet.summary_line(report).startswith("fleet healthy: generation 7, 2 installation(s), 2 DAG(s)")
    assert fleet.failing(report) == []


@pytest.mark.parametrize("server_1, expected", [
    ({"role": "airflow_server", "held": {"reachable": False, "error": "permission denied"}, "airflow": None},
     [("unreachable", "server-1")]),
    ({"role": "airflow_server", "held": held(6), "airflow": airflow(["sales", "hello"], paused=["sales"])},
     [("behind", "server-1")]),
    ({"role": "airflow_server", "held": held(8), "airflow": airflow(["sales", "hello"], paused=["sales"])},
     [("ahead", "server-1")]),
    ({"role": "airflow_server", "held": {"reachable": True, "map": None, "fenced": None},
      "airflow": airflow(["sales", "hello"], paused=["sales"])},
     [("behind", "server-1")]),
    ({"role": "airflow_server", "held": held(fenced="restarted outside Ansible"),
      "airflow": airflow(["sales", "hello"], paused=["sales"])},
     [("fenced", "server-1")]),
    ({"role": "airflow_server", "held": held(), "airflow": {"error": "HTTP 503"}},
     [("api_unreadable", "server-1")]),
    ({"role": "airflow_server", "held": held(),
      "airflow": airflow(["sales", "hello"], paused=["sales"], problems={"scheduler": "unhealthy"})},
     [("unhealthy", "server-1")]),
    ({"role": "airflow_server", "held": held(),
      "airflow": airflow(["sales", "hello"], paused=["sales"], import_errors=[{"filename": "/dags/bad.py"}])},
     [("import_errors", "server-1")]),
    # hello is server-1's: paused there, it runs nowhere
    ({"role": "airflow_server", "held": held(), "airflow": airflow(["sales", "hello"], paused=["sales", "hello"])},
     [("paused_on_owner", "hello")]),
    # server-1 owns hello and does not parse it; the DAG sets differ too
    ({"role": "airflow_server", "held": held(), "airflow": airflow(["sales"], paused=["sales"])},
     [("dag_sets_differ", "server-1"), ("owner_does_not_parse", "hello")]),
    # a DAG deployed everywhere and listed nowhere, without a default owner, runs nowhere
    ({"role": "airflow_server", "held": held(), "airflow": airflow(["sales", "hello", "orphan"], paused=["sales"])},
     [("dag_sets_differ", "server-2"), ("unmapped_dag", "orphan")]),
])
def test_each_drift_is_one_named_finding(server_1, expected):
    report = fleet.assess(MAP, clean(server_1=server_1))
    assert codes(report) == expected
    assert not report["healthy"]
    for finding in report["findings"]:
        assert finding["severity"] == fleet.FINDINGS[finding["code"]][0]


def test_map_entry_for_a_dag_nobody_parses():
    pmap = p.parse_map("\"@failback\":\n  generation: 7\nsales: server-2\nhello: server-1\nsalse: server-2\n")
    report = fleet.assess(pmap, clean())
    assert ("unknown_dag", "salse") in codes(report)


def test_default_owner_covers_unlisted_dags():
    pmap = p.parse_map('"@failback":\n  generation: 7\n  default: server-1\nsales: server-2\n')
    report = fleet.assess(pmap, clean())
    assert codes(report) == []


def test_unread_cluster_is_not_a_finding():
    fleet_data = clean()
    fleet_data["k8s"] = {"role": "airflow_kubernetes", "held": held(), "airflow": None}
    pmap = p.parse_map('"@failback":\n  generation: 7\nsales: server-2\nhello: server-1\n', ["server-1", "server-2", "k8s"])
    report = fleet.assess(pmap, fleet_data)
    assert codes(report) == []
    assert [r["api"] for r in report["installations"]] == ["not read", "ok", "ok"]


def ti(dag, due, owner_records, state="success", operator="PythonOperator", task="t"):
    return {"dag_id": dag, "run_id": "scheduled__" + due, "task_id": task, "map_index": -1, "run_after": due,
            "state": state, "operator": operator, "guard": owner_records}


@pytest.mark.parametrize("executed, leak", [
    # server-1 ran sales due 09:00, before the handover at 10:00: its run, no leak
    ([ti("sales", "2026-12-01T09:00:00Z", ["failback_guard_run"])], None),
    # the guard stopped sales due 11:00 on server-1 (failed with a fence, say): no leak
    ([ti("sales", "2026-12-01T11:00:00Z", ["failback_guard_error"], state="failed")], None),
    # an EmptyOperator is marked success by the scheduler everywhere: not a leak
    ([ti("sales", "2026-12-01T11:00:00Z", [], operator="EmptyOperator")], None),
    # sales due 11:00 belongs to server-2; its guard let it run on server-1: leak
    ([ti("sales", "2026-12-01T11:00:00Z", ["failback_guard_run"])], "its guard let it run"),
    # ... or it ran without any guard record
    ([ti("sales", "2026-12-01T11:00:00Z", [])], "no guard record"),
    # a task killed before its guard decided (a worker lost) is up for retry without a record: nothing ran
    ([ti("sales", "2026-12-01T11:00:00Z", [], state="up_for_retry")], None),
])
def test_leaks_from_executed_task_instances(executed, leak):
    fleet_data = clean()
    fleet_data["server-1"]["airflow"]["executed"] = executed
    found = [f for f in fleet.assess(MAP, fleet_data)["findings"] if f["code"] == "leak"]
    if leak is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0]["severity"] == "critical" and leak in found[0]["detail"]
        assert found[0]["subject"] == "sales on server-1" and "owner server-2" in found[0]["detail"]


def test_fail_on_and_order():
    fleet_data = clean(server_1={"role": "airflow_server", "held": held(6),
                                 "airflow": airflow(["sales", "hello", "x"], paused=["sales"])})
    report = fleet.assess(MAP, fleet_data)
    assert [f["severity"] for f in report["findings"]] == ["error", "error", "warning"]
    assert len(fleet.failing(report, "warning")) == 3
    assert len(fleet.failing(report, "error")) == 2
    assert fleet.failing(report, "critical") == []
    with pytest.raises(p.PlacementError, match="fail_on 'bogus' is not one of critical, error, warning"):
        fleet.failing(report, "bogus")
    assert report["counts"] == {"critical": 0, "error": 2, "warning": 1}


def test_a_held_map_that_does_not_parse_is_unreachable():
    fleet_data = clean()
    fleet_data["server-1"]["held"] = {"reachable": True, "map": {"sales": 12}, "fenced": None}
    report = fleet.assess(MAP, fleet_data)
    assert ("unreachable", "server-1") in codes(report)


def test_text_report_tables():
    fleet_data = clean(server_1={"role": "airflow_server", "held": held(fenced="restarted"),
                                 "airflow": airflow(["sales", "hello"], paused=["sales"],
                                                    runs={"hello": {"run_id": "r1", "run_after": "2026-12-01T11:00:00Z",
                                                                    "state": "success"}})})
    lines = fleet.render_text(fleet.assess(MAP, fleet_data))
    text = "\n".join(lines)
    assert re.search(r"^server-1\s+yes\s+healthy\s+7/7\s+FENCED\s+1\s+2\s+0\s+3\.3\.2$", text, re.M)
    assert re.search(r"^hello\s+server-1\s+no\s+yes\s+2026-12-01T11:00:00Z success$", text, re.M)
    assert re.search(r"^ERROR\s+fenced\s+server-1: restarted$", text, re.M)
    assert lines[-1] == "fleet drifted: 1 error"


def test_html_is_self_contained_and_escaped():
    fleet_data = clean(server_1={"role": "airflow_server", "held": {"reachable": False, "error": "<b>denied</b>"},
                                 "airflow": None})
    page = fleet.render_html(fleet.assess(MAP, fleet_data), generated_at="2026-12-01T12:00:00Z")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "&lt;b&gt;denied&lt;/b&gt;" in page and "<b>denied" not in page
    assert not re.search(r"<script|<link|src=|href=|url\(|@import", page)
    assert '<tr class="critical"><td>critical</td><td>unreachable</td><td>server-1</td>' in page


def test_json_round_trip():
    report = fleet.assess(MAP, clean())
    data = json.loads(fleet.render_json(report, generated_at="2026-12-01T12:00:00Z"))
    assert data["generated_at"] == "2026-12-01T12:00:00Z" and data["healthy"] is True
    assert data["installations"][0]["installation"] == "server-1"


def test_no_leak_is_claimed_before_the_oldest_remembered_handover():
    handovers = "".join('      - {at: "2026-12-01T%02d:00:00Z", from: "%s"}\n' % (h, "server-1" if h % 2 else "server-2")
                        for h in range(1, 9))
    pmap = p.parse_map('"@failback":\n  generation: 7\n  handovers:\n    sales:\n' + handovers
                       + "sales: server-1\nhello: server-1\n")
    assert len(pmap.history("sales")) == p.MAX_HANDOVERS
    fleet_data = clean()
    # due before the oldest remembered handover (01:00): unknown owner, no finding; due 01:30: server-2's
    fleet_data["server-1"]["airflow"]["executed"] = [
        ti("sales", "2026-12-01T00:30:00Z", ["failback_guard_run"]), ti("sales", "2026-12-01T01:30:00Z", ["failback_guard_run"])]
    found = [f for f in fleet.assess(pmap, fleet_data)["findings"] if f["code"] == "leak"]
    assert [f["detail"].split()[0] for f in found] == ["scheduled__2026-12-01T01:30:00Z"]


# ------------------------------------------------------------------ the failover's pre-flight

# sales moves from server-2 to server-1; server-1 keeps hello
AFTER = p.parse_map('"@failback":\n  generation: 8\nsales: server-1\nhello: server-1\nother: server-2\n')


def preflight_codes(result):
    return sorted((f["code"], f["subject"]) for f in result["findings"])


def test_a_ready_new_owner_has_no_finding_and_the_moved_dag_may_be_paused_there():
    result = fleet.preflight(AFTER, "server-1", ["sales"], airflow(["sales", "hello", "other"], paused=["sales"]))
    assert result == {"findings": [], "stop": [], "lines": [], "message": None, "note": None}


def test_a_moved_dag_the_new_owner_does_not_parse_stops_the_failover():
    result = fleet.preflight(AFTER.to_data(), "server-1", ["sales"], airflow(["hello"]))
    assert preflight_codes(result) == [("owner_does_not_parse", "sales")]
    assert [f["subject"] for f in result["stop"]] == ["sales"]
    assert result["lines"] == ["ERROR owner_does_not_parse sales: server-1 would own it and does not parse it"]
    assert result["message"] == "server-1 does not parse sales: moved there, it would run nowhere. Nothing was changed."


@pytest.mark.parametrize("answer, expected", [
    # a DAG it keeps owning, paused there: runs nowhere (drift, not a stop)
    (airflow(["sales", "hello"], paused=["hello"]), [("paused_on_owner", "hello")]),
    # import errors and an unhealthy component on the new owner
    (airflow(["sales", "hello"], problems={"triggerer": "status unhealthy"},
             import_errors=[{"filename": "/opt/airflow/dags/x.py", "error": ["SyntaxError"]}]),
     [("import_errors", "server-1"), ("unhealthy", "server-1")]),
    # a task of other's run executed on server-1 (other belongs to server-2): a leak on the new owner
    (airflow(["sales", "hello", "other"], executed=[ti("other", "2026-12-01T11:00:00Z", ["failback_guard_run"])]),
     [("leak", "other on server-1")]),
])
def test_drift_on_the_new_owner_is_shown_without_stopping(answer, expected):
    result = fleet.preflight(AFTER, "server-1", ["sales"], answer, role="airflow_server")
    assert preflight_codes(result) == expected
    assert result["stop"] == [] and result["message"] is None and len(result["lines"]) == len(expected)


def test_a_new_owner_whose_api_does_not_answer_stops_the_failover():
    result = fleet.preflight(AFTER, "server-1", ["sales"], {"error": "HTTP 401 from /api/v2/dags"})
    assert [(f["code"], f["subject"]) for f in result["stop"]] == [("api_unreadable", "server-1")]
    assert "server-1's REST API does not answer (HTTP 401 from /api/v2/dags)" in result["message"]
    # nothing moves to it (the same failover run again): shown, not a stop
    assert fleet.preflight(AFTER, "server-1", [], {"error": "HTTP 401"})["stop"] == []


def test_only_what_moves_to_the_new_owner_is_checked():
    # a resumed failover's plan can also hold moves to another installation
    moved = {"sales": {"from": "server-2", "to": "server-1"}, "other": {"from": "server-1", "to": "server-2"}}
    result = fleet.preflight(AFTER, "server-1", moved, airflow(["sales", "hello"]))
    assert result["findings"] == [] and result["stop"] == []
    moved["sales"]["to"] = "server-3"
    assert fleet.preflight(AFTER, "server-1", moved, airflow(["hello"]))["stop"] == []


def test_what_the_failover_changes_or_the_other_installations_own_is_left_out():
    # other (server-2's) is not parsed on server-1, its generation is not looked at, a paused DAG it
    # does not own is not its business
    result = fleet.preflight(AFTER, "server-1", ["sales"], airflow(["sales", "hello", "x"], paused=["x"]))
    assert result["findings"] == []


def test_a_cluster_that_is_not_read_gives_a_line_and_no_finding():
    result = fleet.preflight(AFTER, "k8s", ["sales"], None)
    assert result["findings"] == result["stop"] == result["lines"] == [] and "not read" in result["note"]


def test_the_default_owner_is_asked_about_every_dag_it_parses():
    after = p.parse_map('"@failback":\n  generation: 8\n  default: server-1\nother: server-2\n')
    result = fleet.preflight(after, "server-1", ["sales"], airflow(["hello"], paused=["hello"]))
    assert preflight_codes(result) == [("owner_does_not_parse", "sales"), ("paused_on_owner", "hello")]


def test_moving_the_default_owner_role_is_not_a_dag_and_its_dags_may_be_paused():
    after = p.parse_map('"@failback":\n  generation: 8\n  default: server-1\nother: server-2\n')
    result = fleet.preflight(after, "server-1", {"@default": {"from": "server-2", "to": "server-1"}},
                             airflow(["hello", "other"], paused=["hello"]))
    assert result["findings"] == [] and result["stop"] == []


# ------------------------------------------------------------------ the moved DAGs' code (DAG bundles)

def at(answer, versions, bundle="dags-repo", files=None):
    """*answer* with every DAG of *versions* parsed from *bundle* at that version (file <dag>.py)."""
    for dag_id, version in versions.items():
        answer["dags"][dag_id].update(bundle=bundle, version=version, file=(files or {}).get(dag_id, dag_id + ".py"))
    return answer


MOVE = {"sales": {"from": "server-2", "to": "server-1"}}


def test_a_moved_dag_at_the_same_bundle_version_as_its_old_owner_passes():
    target = at(airflow(["sales", "hello"]), {"sales": "a1b2c3", "hello": "a1b2c3"})
    source = at(airflow(["sales", "other"]), {"sales": "a1b2c3", "other": "a1b2c3"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": source})
    assert result == {"findings": [], "stop": [], "lines": [], "message": None, "note": None}


def test_a_new_owner_one_commit_behind_stops_the_failover_naming_the_dag_and_both_versions():
    target = at(airflow(["sales", "hello"]), {"sales": "0ld0ld", "hello": "0ld0ld"})
    source = at(airflow(["sales"]), {"sales": "n3wn3w"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": source})
    assert [(f["code"], f["subject"]) for f in result["stop"]] == [("version_differs", "sales")]
    assert result["message"] == (
        "sales: server-1 parses it from bundle dags-repo at version 0ld0ld, server-2 (its old owner) from bundle "
        "dags-repo at version n3wn3w. Nothing was changed.")
    # only what moves is compared: hello (kept by server-1) at another version is not a finding
    assert preflight_codes(result) == [("version_differs", "sales")]


def test_another_bundle_or_an_unversioned_folder_differs_too():
    target = at(airflow(["sales"]), {"sales": None}, bundle="dags-folder")
    source = at(airflow(["sales"]), {"sales": "n3wn3w"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": source})
    assert "bundle dags-folder at version none (not versioned)" in result["message"]
    # two local folders (no versions): nothing to compare, no finding
    plain = fleet.preflight(AFTER, "server-1", MOVE, airflow(["sales"]), sources={"server-2": airflow(["sales"])})
    assert plain["findings"] == [] and plain["note"] is None


@pytest.mark.parametrize("source, note", [
    (None, "server-2 was not read: bundle versions not compared with it"),
    ({"error": "connection refused"}, "server-2 did not answer (connection refused): bundle versions not compared with it"),
    (airflow(["hello"]), "server-2 does not parse sales: its bundle version not compared"),
])
def test_an_old_owner_that_cannot_be_compared_is_a_note_not_a_stop(source, note):
    target = at(airflow(["sales"]), {"sales": "0ld0ld"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": source})
    assert result["stop"] == [] and result["findings"] == [] and result["note"] == note
    # and without sources nothing is compared and nothing said
    assert fleet.preflight(AFTER, "server-1", MOVE, target)["note"] is None


def test_a_plain_list_of_moved_dags_is_compared_with_every_old_owner_given():
    target = at(airflow(["sales"]), {"sales": "a1"})
    result = fleet.preflight(AFTER, "server-1", ["sales"], target,
                             sources={"server-2": at(airflow(["sales"]), {"sales": "a1"}),
                                      "server-3": at(airflow(["sales"]), {"sales": "b2"}),
                                      "server-1": at(airflow(["sales"]), {"sales": "zz"})})
    assert [f["detail"] for f in result["stop"]] == [
        "server-1 parses it from bundle dags-repo at version a1, server-3 (its old owner) from bundle dags-repo at version b2"]


def test_a_moved_dag_whose_file_fails_to_import_on_the_new_owner_stops_the_failover():
    broken = {"filename": "sales.py", "bundle": "dags-repo", "error": ["NameError: name 'x' is not defined"]}
    target = at(airflow(["sales", "hello"], import_errors=[broken]), {"sales": "a1", "hello": "a1"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": at(airflow(["sales"]), {"sales": "a1"})})
    assert preflight_codes(result) == [("dag_file_broken", "sales"), ("import_errors", "server-1")]
    assert [f["code"] for f in result["stop"]] == ["dag_file_broken"]
    assert result["message"] == ("sales: server-1 fails to import its file sales.py (bundle dags-repo): NameError: "
                                 "name 'x' is not defined. Nothing was changed.")
    # the same file name in another bundle, or a broken file of a DAG that does not move, stops nothing
    other = dict(broken, bundle="other-repo")
    assert fleet.preflight(AFTER, "server-1", MOVE, at(airflow(["sales"], import_errors=[other]), {"sales": "a1"}))["stop"] == []
    hello = dict(broken, filename="hello.py")
    kept_broken = at(airflow(["sales", "hello"], import_errors=[hello]), {"sales": "a1", "hello": "a1"})
    assert fleet.preflight(AFTER, "server-1", MOVE, kept_broken)["stop"] == []


def test_a_moved_dag_not_listed_because_its_file_fails_to_import_is_named_with_the_old_owners_file():
    # Airflow 3.3 marks the DAGs of a file that fails to import stale: the new owner does not list sales
    broken = {"filename": "sales.py", "bundle": "dags-repo", "error": ["SyntaxError: invalid syntax"]}
    target = at(airflow(["hello"], import_errors=[broken]), {"hello": "a1"})
    source = at(airflow(["sales"]), {"sales": "a1"})
    result = fleet.preflight(AFTER, "server-1", MOVE, target, sources={"server-2": source})
    assert [(f["code"], f["subject"]) for f in result["stop"]] == [("dag_file_broken", "sales")]
    assert result["message"] == ("sales: server-1 fails to import sales.py, its file on server-2 (bundle dags-repo), "
                                 "and so does not list it: SyntaxError: invalid syntax. Nothing was changed.")
    # without the old owner's answer it is a DAG the new owner does not parse
    alone = fleet.preflight(AFTER, "server-1", MOVE, target)
    assert [(f["code"], f["subject"]) for f in alone["stop"]] == [("owner_does_not_parse", "sales")]


def test_a_map_held_as_yaml_text_is_read_like_data():
    """A cluster's placement role reads the ConfigMap's text: the fleet status parses it (it once reported it unreachable)."""
    fleet_data = clean()
    fleet_data["server-2"]["held"] = {"reachable": True, "map": p.dump_map(MAP), "fenced": None}
    report = fleet.assess(MAP, fleet_data)
    row = [r for r in report["installations"] if r["installation"] == "server-2"][0]
    assert row["reachable"] and row["generation"] == MAP.generation
    assert not [f for f in report["findings"] if f["code"] == "unreachable"]
    fleet_data["server-2"]["held"]["map"] = "dag_a: [not, a, name]\n"
    found = [f for f in fleet.assess(MAP, fleet_data)["findings"] if f["code"] == "unreachable"]
    assert found and "maps to ['not', 'a', 'name']" in found[0]["detail"]


URL = "s3://maps/failback/placement.yml"


@pytest.mark.parametrize("authority, expected", [
    ({"generation": 7, "stage": None}, []),
    ({"generation": 6, "stage": None}, [("authority_behind", URL)]),
    ({"generation": 8, "stage": None}, [("authority_ahead", URL)]),
    ({"generation": 7, "stage": "revoke"}, [("authority_revoke_stage", URL)]),
    ({"generation": 6, "stage": "revoke"}, [("authority_behind", URL), ("authority_revoke_stage", URL)]),
    ({"generation": None, "stage": None}, [("authority_behind", URL)]),
    ({"generation": None, "error": "403 Forbidden: AccessDenied"}, [("authority_unreadable", URL)]),
])
def test_the_authority_the_guards_read_is_compared_with_the_controllers_map(authority, expected):
    authority = dict({"url": URL, "lease": 60, "refresh": 15, "error": None}, **authority)
    report = fleet.assess(MAP, clean(), authority=authority)
    assert codes(report) == expected
    line = fleet.render_text(report)[1]
    assert line.startswith("guards read the map from %s (lease 60 s, refresh 15 s): " % URL), line
    assert ("cannot be read" in line) == bool(authority["error"])
    assert ("revoke stage" in line) == (authority.get("stage") == "revoke")
    assert json.loads(fleet.render_json(report))["authority"]["url"] == URL


def test_without_an_authority_the_report_has_none():
    report = fleet.assess(MAP, clean())
    assert report["authority"] is None and not fleet.render_text(report)[1].startswith("guards read")


WATCH = {"armed": ["server-1 -> server-2"], "updated_at": 1000.0, "interval": 10,
         "decisions": [{"action": "failover", "from": "server-1", "to": "server-2", "at": "2026-12-06T02:00:40Z",
                        "reasons": ["connection refused"], "since": "2026-12-06T02:00:00Z", "at_epoch": 990.0}]}


def test_the_watchers_state_is_shown_and_a_watcher_that_stopped_reading_is_a_finding():
    report = fleet.assess(MAP, clean(), watch=WATCH, now=1020.0)
    assert codes(report) == [] and report["watch"]["last_decision"]["action"] == "failover"
    assert "at_epoch" not in report["watch"]["last_decision"]
    line = fleet.render_text(report)[1]
    assert line == ("automatic failover armed: server-1 -> server-2; last decision: failover server-1 -> server-2 at "
                    "2026-12-06T02:00:40Z (connection refused)"), line
    stale = fleet.assess(MAP, clean(), watch=WATCH, now=1031.0)
    assert codes(stale) == [("watcher_stale", "server-1 -> server-2")]
    assert "last read 31 s ago" in stale["findings"][0]["detail"]
    unarmed = fleet.assess(MAP, clean(), watch=dict(WATCH, armed=[], decisions=[]), now=5000.0)
    assert codes(unarmed) == [] and fleet.render_text(unarmed)[1] == "automatic failover not armed; last decision: none"


def test_the_findings_table_of_docs_status_md_is_fleet_findings():
    """docs/status.md lists every finding with its severity, and nothing else (it is written by hand)."""
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "docs", "status.md")
    with open(path) as handle:
        rows = re.findall(r"^\| `([a-z_]+)` \| (critical|error|warning) \|", handle.read(), re.M)
    assert sorted(rows) == sorted((code, severity) for code, (severity, _meaning) in fleet.FINDINGS.items())

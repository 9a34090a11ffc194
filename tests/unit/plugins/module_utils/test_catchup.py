"""The rules of the drain and the catch-up (module_utils/catchup.py) over plain run data."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import catchup
from ansible_collections.failback.airflow.plugins.module_utils import placement as p

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
# sales moved from server-1 to server-2 at 10:00; server-1 had started the 10:00:30 run: it keeps it.
MAP = p.parse_map(
    '"@failback":\n  generation: 5\n  handovers:\n'
    '    sales:\n      - {at: "2026-12-01T10:00:00Z", from: "server-1", kept: ["2026-12-01T10:00:30Z"]}\n'
    "sales: server-2\n")


def run(due, state="success", run_id=None):
    return {"dag_id": "sales", "dag_run_id": run_id or "scheduled__" + due, "run_after": due, "logical_date": due,
            "state": state}


def ti(due, state, task="t", operator="PythonOperator", start=None, map_index=-1):
    return {"dag_run_id": "scheduled__" + due, "task_id": task, "map_index": map_index, "state": state,
            "operator": operator, "start_date": start}


def records(*entries):
    found = {}
    for due, key, task in entries:
        found.setdefault(("scheduled__" + due, task, -1), set()).add(key)
    return found


@pytest.mark.parametrize("tis,recs,status", [
    ([ti("d", "success")], [("d", catchup.RUN_KEY, "t")], catchup.EXECUTED),
    ([ti("d", "skipped")], [("d", catchup.SKIP_KEY, "t")], catchup.STOPPED),
    ([ti("d", "failed")], [("d", catchup.ERROR_KEY, "t")], catchup.STOPPED),
    # the first task ran, the guard stopped the second (the run was cut in half)
    ([ti("d", "success", "a"), ti("d", "skipped", "b")], [("d", catchup.RUN_KEY, "a"), ("d", catchup.SKIP_KEY, "b")],
     catchup.SPLIT),
    # skipped by a branch, not by the guard: the branch task ran, so the run executed here
    ([ti("d", "success", "branch"), ti("d", "skipped", "b")], [("d", catchup.RUN_KEY, "branch")], catchup.EXECUTED),
    # downstream of a guard skip: skipped by the trigger rule, no record of its own
    ([ti("d", "skipped", "a"), ti("d", "skipped", "b")], [("d", catchup.SKIP_KEY, "a")], catchup.STOPPED),
    # executed without any record (an older guard): counts as run, never re-run
    ([ti("d", "success")], [], catchup.EXECUTED),
    # an EmptyOperator is marked success without running anything
    ([ti("d", "success", operator="EmptyOperator")], [], catchup.IDLE),
    # started a moment ago and the guard has not decided yet
    ([ti("d", "running", start="2026-12-01T11:59:50Z")], [], catchup.UNDECIDED),
    # running without a record for long: it passed the guard
    ([ti("d", "running", start="2026-12-01T11:00:00Z")], [], catchup.EXECUTED),
    ([ti("d", "queued")], [], catchup.IDLE),
])
def test_run_status(tis, recs, status):
    assert catchup.run_status(tis, records(*recs), NOW) == status


def test_the_old_owner_keeps_late_runs_and_drains_its_own():
    runs = [run("2026-12-01T09:59:40Z", "running"),   # due before the handover: server-1's, still going
            run("2026-12-01T10:00:10Z", "success"),   # started under the old map after the handover: late
            run("2026-12-01T10:00:20Z", "success"),   # the guard stopped it: not late
            run("2026-12-01T10:00:30Z", "running")]   # kept already: server-1's, still going
    tis = [ti("2026-12-01T09:59:40Z", "running", start="2026-12-01T11:00:00Z"),
           ti("2026-12-01T10:00:10Z", "success"), ti("2026-12-01T10:00:20Z", "skipped"),
           ti("2026-12-01T10:00:30Z", "running", start="2026-12-01T11:00:00Z")]
    recs = records(("2026-12-01T10:00:10Z", catchup.RUN_KEY, "t"), ("2026-12-01T10:00:20Z", catchup.SKIP_KEY, "t"),
                   ("2026-12-01T10:00:30Z", catchup.RUN_KEY, "t"))
    described = catchup.classify_runs(runs, tis, recs, MAP, NOW)
    assert [r["owner"] for r in described] == ["server-1", "server-2", "server-2", "server-1"]
    view = catchup.old_owner_view(described, MAP, "server-1")
    assert [r["run_after"] for r in view["late"]] == ["2026-12-01T10:00:10Z"]
    assert [r["run_after"] for r in view["draining"]] == ["2026-12-01T09:59:40Z", "2026-12-01T10:00:30Z"]
    assert view["undecided"] == []
    # A new owner has no late runs (the handover is not away from it).
    assert catchup.old_owner_view(described, MAP, "server-2")["late"] == []


def test_the_new_owner_reruns_only_what_nobody_ran():
    due = ["2026-12-01T09:59:40Z", "2026-12-01T10:00:10Z", "2026-12-01T10:00:20Z", "2026-12-01T10:00:30Z",
           "2026-12-01T10:00:40Z", "2026-12-01T10:00:50Z", "2026-12-01T10:01:00Z"]
    runs = [run(d) for d in due[:5]] + [run(due[5], "running"), run(due[6])]
    tis = [ti(d, "skipped") for d in due[:6]] + [ti(due[6], "success")]
    recs = records(*[(d, catchup.SKIP_KEY, "t") for d in due[:6]] + [(due[6], catchup.RUN_KEY, "t")])
    described = catchup.classify_runs(runs, tis, recs, MAP, NOW)
    rerun, left = catchup.catchup_plan(described, MAP, "server-2", executed_elsewhere=["2026-12-01T10:00:40Z"])
    assert [r["run_after"] for r in rerun] == ["2026-12-01T10:00:10Z", "2026-12-01T10:00:20Z"]
    reasons = dict((r["run_after"], r["reason"]) for r in left)
    assert reasons["2026-12-01T09:59:40Z"].startswith("due before the handover, it belongs to server-1, which could not")
    assert "failover_catchup_since" in reasons["2026-12-01T09:59:40Z"]
    assert reasons["2026-12-01T10:00:30Z"].startswith("due before the handover")   # kept by server-1
    assert reasons["2026-12-01T10:00:40Z"] == "the old owner executed it"
    assert reasons["2026-12-01T10:00:50Z"].startswith("still running here")
    assert "2026-12-01T10:01:00Z" not in reasons, "a run that executed here is neither re-run nor listed"
    # When the old owner was asked, the runs due before the handover are its own business.
    _rerun, left = catchup.catchup_plan(described, MAP, "server-2", ["2026-12-01T10:00:40Z"], old_owner_asked=True)
    assert [r["run_after"] for r in left] == ["2026-12-01T10:00:40Z", "2026-12-01T10:00:50Z"]


class Clock(object):
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_catchup_waits_for_a_run_stopped_under_the_map_before_to_end_then_reruns_it():
    """A task of the new owner started before the grant reached it: its guard stopped it under the map before, and its
    run is still "running" when the catch-up reads. Read once, it would be left ("still running") and nobody would
    run it; the catch-up reads again until the run has ended, then re-runs it."""
    due = "2026-12-01T10:00:10Z"
    reads = iter([
        ([run(due, "running")], [ti(due, "skipped")]),   # the guard stopped it; the scheduler has not ended the run
        ([run(due, "running")], [ti(due, "skipped")]),
        ([run(due, "success")], [ti(due, "skipped")]),   # the run is over: skipped
    ])

    def read():
        runs, tis = next(reads)
        return catchup.classify_runs(runs, tis, records((due, catchup.SKIP_KEY, "t")), MAP, NOW), []

    clock = Clock()
    described, _truncated, waited, waiting = catchup.read_settled(read, "server-2", 120, clock.sleep, clock)
    assert waiting == [] and waited == 6.0 and clock.slept == [3.0, 3.0]
    rerun, left = catchup.catchup_plan(described, MAP, "server-2")
    assert [r["run_after"] for r in rerun] == [due] and left == []


@pytest.mark.parametrize("state,tis,recs", [
    ("running", [ti("2026-12-01T10:00:10Z", "running", start="2026-12-01T11:59:50Z")], []),  # not decided yet
    ("running", [ti("2026-12-01T10:00:10Z", "skipped")], [("2026-12-01T10:00:10Z", catchup.SKIP_KEY, "t")]),
])
def test_the_catchup_stops_waiting_after_settle_and_lists_what_is_not_over(state, tis, recs):
    due = "2026-12-01T10:00:10Z"

    def read():
        return catchup.classify_runs([run(due, state)], tis, records(*recs), MAP, NOW), []

    clock = Clock()
    _described, _truncated, waited, waiting = catchup.read_settled(read, "server-2", 10, clock.sleep, clock)
    assert waited == 10.0 and clock.slept == [3.0, 3.0, 3.0, 1.0] and [r["run_after"] for r in waiting] == [due]


def test_the_catchup_does_not_wait_for_runs_it_does_not_own_or_that_ran():
    runs = [run("2026-12-01T09:59:40Z", "running"),   # server-1's (due before the handover)
            run("2026-12-01T10:00:20Z", "running"),   # executed here: a run of the owner, not a stopped one
            run("2026-12-01T10:00:40Z", "queued")]    # not started: its guard will decide with the map it has now
    tis = [ti("2026-12-01T09:59:40Z", "skipped"), ti("2026-12-01T10:00:20Z", "running", start="2026-12-01T11:00:00Z")]
    described = catchup.classify_runs(runs, tis, records(("2026-12-01T09:59:40Z", catchup.SKIP_KEY, "t")), MAP, NOW)
    clock = Clock()
    _described, _truncated, waited, waiting = catchup.read_settled(lambda: (described, []), "server-2", 120,
                                                                   clock.sleep, clock)
    assert waited == 0 and waiting == [] and clock.slept == []


def test_a_run_split_between_installations_is_left_for_a_person():
    tis = [ti("2026-12-01T10:00:10Z", "success", "a"), ti("2026-12-01T10:00:10Z", "skipped", "b")]
    recs = records(("2026-12-01T10:00:10Z", catchup.RUN_KEY, "a"), ("2026-12-01T10:00:10Z", catchup.SKIP_KEY, "b"))
    described = catchup.classify_runs([run("2026-12-01T10:00:10Z")], tis, recs, MAP, NOW)
    rerun, left = catchup.catchup_plan(described, MAP, "server-2")
    assert rerun == [] and left[0]["reason"].startswith("split")


def test_runs_are_matched_across_installations_by_logical_date_else_run_id():
    assert catchup.run_key(run("2026-12-01T10:00:10+00:00")) == "2026-12-01T10:00:10Z"
    manual = dict(run("2026-12-01T10:00:10Z", run_id="manual__x"), logical_date=None)
    assert catchup.run_key(manual) == "manual__x"


def test_the_window_starts_a_lookback_before_the_latest_handover():
    assert catchup.window_start(MAP, "sales", "server-2", 600) == p.parse_time("2026-12-01T09:50:00Z")
    assert catchup.window_start(MAP, "other", "server-2", 600) is None


def test_the_drain_waits_for_runs_the_old_owner_owns_and_has_not_created_yet():
    """A lagging scheduler creates runs due before the handover later: pausing the DAG first lost one (cluster drill)."""
    pmap = p.parse_map('"@failback":\n  generation: 3\n  handovers:\n    quick:\n      - {at: "2026-12-01T10:00:30Z", from: s1}\n'
                       '    other:\n      - {at: "2026-12-01T10:00:30Z", from: s2}\nquick: s2\nother: s1\n')
    dags = {"quick": {"is_paused": False, "next_dagrun_run_after": "2026-12-01T10:00:20Z"},
            "other": {"is_paused": False, "next_dagrun_run_after": "2026-12-01T10:00:20Z"}}
    view = catchup.old_owner_view([], pmap, "s1", dags)
    assert view["draining"] == [{"dag_id": "quick", "run_id": None, "run_after": "2026-12-01T10:00:20Z",
                                 "state": "not created yet", "status": catchup.IDLE, "owner": "s1"}]
    caught_up = {"quick": {"is_paused": False, "next_dagrun_run_after": "2026-12-01T10:00:40Z"}}
    assert catchup.old_owner_view([], pmap, "s1", caught_up)["draining"] == []
    paused = {"quick": {"is_paused": True, "next_dagrun_run_after": "2026-12-01T10:00:20Z"}}
    assert catchup.old_owner_view([], pmap, "s1", paused)["draining"] == []
    unscheduled = {"quick": {"is_paused": False, "next_dagrun_run_after": None}}
    assert catchup.old_owner_view([], pmap, "s1", unscheduled)["draining"] == []

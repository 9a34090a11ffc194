"""Regression tests of the run-level findings (issue: two installations can still run the same DAG run).

1. the handover cap forgot history and gave old runs to another installation;
2. failover_catchup_since on a second run moved runs without revoking their old owner first;
3. handover entries were trusted as written (future times, no time zone, out-of-range dates);
4. lock and journal files were opened through links and FIFOs, and stale ones were taken over silently;
5. (module and fleet level) inputs that are not what they say: a file mode, status files of unknown installations.
Each of these fails on the code before the fix; the model check (test_placement_model.py) covers the sequences.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import failover, fleet, fleet_lock
from ansible_collections.failback.airflow.plugins.module_utils import placement as p
from ansible_collections.failback.airflow.plugins.module_utils import placement_plan as pp

NAMES = ["s1", "s2", "s3"]
T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def _at(minutes):
    return p.format_time(T0 + datetime.timedelta(minutes=minutes))


def _rotated(times):
    """dag_a rotated s1 -> s2 -> s3 -> s1 ... once every 10 minutes: the maps, oldest first."""
    maps = [p.PlacementMap({"dag_a": "s1"}, 1)]
    for step in range(times):
        current = maps[-1]
        moved = p.move(current, NAMES[(step + 1) % 3], dags=["dag_a"], installations=NAMES)[0]
        maps.append(p.stamp(current, moved, "t", now=_at(10 * (step + 1))))
    return maps


# ----------------------------------------------------------------------------- 1. the cap forgets history


def test_a_capped_history_folds_the_oldest_handovers_into_a_floor():
    maps = _rotated(12)
    history = maps[-1].history("dag_a")
    assert len(history) == p.MAX_HANDOVERS and history[0].floor
    assert [h.floor for h in history[1:]] == [False] * (p.MAX_HANDOVERS - 1)
    # the runs the folded handovers gave away belong to nobody; the others keep their owner
    assert maps[-1].owner_at("dag_a", _at(5)) is None
    assert maps[-1].owner_at("dag_a", history[0].at) == maps[-2].owner_at("dag_a", history[0].at)
    assert p.decide(maps[-1], "dag_a", "s1", _at(5))[2].startswith(
        "the run due 2026-12-01T00:05:00Z of DAG 'dag_a' is older than the handover history")


@pytest.mark.parametrize("step", range(8, 12))
def test_forgetting_history_never_gives_a_run_to_another_installation(step):
    before, after = _rotated(12)[step:step + 2]
    new_owner = after.owner("dag_a")
    for segment in pp.run_changes(before, after)["dag_a"]:
        assert segment["to"] in (new_owner, None), segment


def test_the_rotation_revokes_every_loser_before_the_gainer():
    before, after = _rotated(9)[-2:]
    plan = pp.plan_publish(after, dict((name, (before, False)) for name in NAMES), NAMES)
    gainer = after.owner("dag_a")
    assert plan["gains"] == {gainer: ["dag_a"]} and gainer in plan["publish"]
    # the gainer also loses runs (its oldest ones went to the floor), but waits for the others
    assert set(plan["loses"]) == set(NAMES) and plan["revoke"] == sorted(set(NAMES) - {gainer})


def test_a_floor_reads_back_and_only_stands_first():
    pmap = _rotated(12)[-1]
    text = p.dump_map(pmap)
    assert "from: null" in text and p.parse_map(text, NAMES) == pmap
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "from: null" in line)
    lines[first], lines[first + 1] = lines[first + 1], lines[first]
    with pytest.raises(p.PlacementError, match="only the first entry may be a floor"):
        p.parse_map("\n".join(lines), NAMES)


# ----------------------------------------------------------------------------- 2. catchup_since on a second run


def test_a_second_catchup_since_moves_runs_and_revokes_their_old_owner_first():
    start = p.PlacementMap({"dag_a": "s1"}, 1)
    first = failover.plan(start, None, failover.request("s2", "s1"), NAMES, "t", now=_at(60))["after"]
    again = failover.plan(first, None, failover.request("s2", "s1", since=_at(30)), NAMES, "t", now=_at(65))
    assert again["moved"] == {} and again["old_owners"] == ["s1"]
    assert again["runs_moved"] == {"dag_a": [{"from": "s1", "to": "s2", "since": _at(30), "until": _at(60)}]}
    held = dict((name, (first, False)) for name in NAMES)
    plan = pp.plan_publish(again["after"], held, NAMES, force=True, last=["s2"])
    assert plan["revoke"] == ["s1"] and plan["publish"] == ["s2", "s3"]
    summary, _behind = failover.summarize(again["moved"], again["after"].generation, "s2", plan,
                                          {"s1": 3, "s2": 3, "s3": 3}, runs_moved=again["runs_moved"])
    assert "no DAG changed owner, runs did: dag_a runs due from %s to %s: s1 -> s2" % (_at(30), _at(60)) in summary


def test_late_runs_and_catch_up_read_a_dag_whose_runs_moved_although_it_kept_its_owner():
    start = p.PlacementMap({"dag_a": "s1"}, 1, default="s3")
    first = failover.plan(start, None, failover.request("s2", "s1"), NAMES, "t", now=_at(60))["after"]
    again = failover.plan(first, None, failover.request("s2", "s1", since=_at(30)), NAMES, "t", now=_at(65))["after"]
    assert p.installation_changes(first, again, "s1")["lost"] == []  # the DAG-level view (pausing) sees nothing
    assert pp.installation_run_changes(first, again, "s1", ["dag_a", "other"]) == {"lost": ["dag_a"], "gained": []}
    assert pp.installation_run_changes(first, again, "s2", ["dag_a"]) == {"lost": [], "gained": ["dag_a"]}
    default_moved = failover.plan(again, None, failover.request("s1", "s3"), NAMES, "t", now=_at(70))["after"]
    assert pp.installation_run_changes(again, default_moved, "s1", ["other", "dag_a"]) == {"lost": [], "gained": ["other"]}


def test_a_run_owned_elsewhere_now_is_not_kept_by_its_old_owner():
    """An old owner that reports a run it does not own before the failover, or that another runs now."""
    start = p.PlacementMap({"dag_a": "s1"}, 1)
    gen2 = failover.plan(start, None, failover.request("s2", "s1"), NAMES, "t", now=_at(60))["after"]
    gen3 = failover.plan(gen2, None, failover.request("s1", "s2"), NAMES, "t", now=_at(90))["after"]
    kept = {"s2": {"dag_a": [_at(95), _at(20)]}}
    after, _journal, refused = failover.keep(gen3, None, kept, "t", now=_at(96), before=gen2,
                                             running={"s1": gen3, "s2": gen3, "s3": None})
    assert after.owner_at("dag_a", _at(95)) == "s1" and after is gen3
    reasons = dict((run["run_after"], run["reason"]) for run in refused["s2"])
    assert reasons[_at(95)] == "s1 runs it now by the map it holds"
    assert reasons[_at(20)] == "it was not s2's before this failover but s1's"
    kept_now, _journal, refused = failover.keep(gen3, None, {"s2": {"dag_a": [_at(95)]}}, "t", now=_at(96), before=gen2,
                                                running={"s1": gen2, "s2": gen3})
    assert kept_now.owner_at("dag_a", _at(95)) == "s2" and refused == {}


# ----------------------------------------------------------------------------- 3. handovers trusted as written


def _with_handover(entry):
    return ('"@failback":\n  generation: 4\n  handovers:\n    dag_a:\n      - %s\ndag_a: s1\n' % entry)


def test_a_handover_in_the_future_is_refused_naming_the_dag():
    pmap = p.parse_map(_with_handover('{at: "2099-01-01T00:00:00Z", from: s3}'), NAMES, source="placement map /x.yml")
    with pytest.raises(p.PlacementError) as err:
        p.check_times(pmap, now=_at(0), source="placement map /x.yml")
    assert str(err.value).startswith("placement map /x.yml: handovers of dag_a: at 2099-01-01T00:00:00Z is in the future")
    assert p.check_times(pmap, now="2099-01-01T00:00:30Z") is pmap  # within the tolerance for clock steps


@pytest.mark.parametrize("entry, message", [
    ('{at: "2026-12-01T00:00:00", from: s3}',
     "placement map /x.yml: handovers of dag_a: at '2026-12-01T00:00:00' has no time zone: give one"),
    ("{at: 2026-12-01T00:00:00, from: s3}",
     "placement map /x.yml: handovers of dag_a: at 2026-12-01T00:00:00 has no time zone"),
    ('{at: "0001-01-01T00:00:00Z", from: s3}',
     "placement map /x.yml: handovers of dag_a: at '0001-01-01T00:00:00Z' is out of range: times in a placement map "
     "lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z"),
    ('{at: "2026-12-01T00:00:00Z", from: s3, kept: ["1969-12-31T23:00:00Z"]}',
     "placement map /x.yml: handovers of dag_a: kept run '1969-12-31T23:00:00Z' is out of range"),
    ('{at: "2026-12-01T00:00:00Z", from: s3, kept: ["2026-12-01T01:00:00"]}',
     "handovers of dag_a: kept run '2026-12-01T01:00:00' has no time zone"),
])
def test_bad_handover_times_are_refused_naming_file_dag_and_value(entry, message):
    with pytest.raises(p.PlacementError) as err:
        p.parse_map(_with_handover(entry), NAMES, source="placement map /x.yml")
    assert message in str(err.value)


def test_the_publish_plan_filter_refuses_a_map_with_a_future_handover():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.failback.airflow.plugins.filter import placement as filters
    text = _with_handover('{at: "2099-01-01T00:00:00Z", from: s3}')
    with pytest.raises(AnsibleFilterError, match="is in the future"):
        filters.placement_publish_plan(text, {}, NAMES)


def test_failover_catchup_since_needs_a_time_zone():
    with pytest.raises(p.PlacementError, match="failover_catchup_since '2026-12-01T01:00:00' has no time zone"):
        failover.request("s2", "s1", since="2026-12-01T01:00:00")


# ----------------------------------------------------------------------------- 4. lock and journal files


def _watched():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def _hold(path, watch, record):
    proc = subprocess.Popen(fleet_lock.holder_argv(sys.executable, str(path), watch.pid,
                                                   fleet_lock.process_start(watch.pid), record),
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    return proc, proc.stdout.readline().strip()


def test_a_lock_file_that_is_a_link_is_never_written_through(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (tmp_path / "placement.lock").symlink_to(target)
    run = _watched()
    try:
        holder, line = _hold(tmp_path / "placement.lock", run, {"pid": run.pid})
        assert holder.wait(10) == 1
        assert line.startswith("error the fleet lock file") and "is a symbolic link" in line
    finally:
        run.kill()
        run.wait(10)
    assert target.read_text() == "keep me\n"
    with pytest.raises(fleet_lock.LockError, match="is a symbolic link"):
        fleet_lock.read_record(str(tmp_path / "placement.lock"))


def test_a_fifo_as_lock_or_journal_is_refused_at_once(tmp_path):
    lock = tmp_path / "placement.lock"
    journal = tmp_path / "placement.failover.json"
    os.mkfifo(str(lock))
    os.mkfifo(str(journal))
    start = time.monotonic()
    with pytest.raises(fleet_lock.LockError, match="is a FIFO, not a regular file: remove it"):
        fleet_lock.read_record(str(lock))
    run = _watched()
    try:
        holder, line = _hold(lock, run, {"pid": run.pid})
        assert holder.wait(10) == 1 and "is a FIFO" in line
    finally:
        run.kill()
        run.wait(10)
    with pytest.raises(p.PlacementError, match="failover journal .* is a FIFO, not a regular file"):
        failover.read_journal(str(journal))
    assert time.monotonic() - start < 10


def test_a_journal_that_is_a_link_is_refused(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"state": "done"}))
    (tmp_path / "placement.failover.json").symlink_to(target)
    with pytest.raises(p.PlacementError, match="is a symbolic link"):
        failover.read_journal(str(tmp_path / "placement.failover.json"))


def test_a_record_left_by_a_killed_holder_is_reported_and_a_clean_release_leaves_none(tmp_path):
    lock = tmp_path / "placement.lock"
    run = _watched()
    holder, line = _hold(lock, run, {"playbook": "failover.yml", "pid": run.pid})
    assert line.startswith("locked ") and line.split(None, 2)[2:] == []
    holder.kill()  # kill -9 of the holder: its record stays
    holder.wait(10)
    run.kill()
    run.wait(10)
    assert json.loads(lock.read_text())["playbook"] == "failover.yml"
    second_run = _watched()
    try:
        second, line = _hold(lock, second_run, {"playbook": "site.yml", "pid": second_run.pid})
        left = json.loads(line.split(None, 2)[2])
        assert left["playbook"] == "failover.yml"
    finally:
        second_run.kill()
        second_run.wait(10)
    assert second.wait(10) == 0 and lock.read_text() == "", "a holder that lets go clears its record"


# ----------------------------------------------------------------------------- 5. inputs


def test_status_files_of_an_unknown_installation_are_refused():
    pmap = p.PlacementMap({"dag_a": "s1"}, 1)
    installations = {"s1": {"held": {"reachable": True, "generation": 1}}}
    with pytest.raises(p.PlacementError, match="files_differ names 's9', which is not an installation; installations: s1"):
        fleet.assess(pmap, installations, {"s9": ["/x"]})
    with pytest.raises(p.PlacementError, match="files_differ of s1 must be a list of file paths, got 'x'"):
        fleet.assess(pmap, installations, {"s1": "x"})

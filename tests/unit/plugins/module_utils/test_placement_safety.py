"""Regression tests of the placement rules for the adversarial findings (issue: no split brain).

Each test names the finding it covers: bad input that took installations down (size, control
characters, YAML aliases, non-regular files, bad DAG lists), resumable moves, the one-step
compare-and-swap publish and the revoke-first publishing order.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.failback.airflow.plugins.module_utils import placement as p
from ansible_collections.failback.airflow.plugins.module_utils import placement_plan as pp

KNOWN = ["server-1", "server-2", "server-3"]


# ----------------------------------------------------------------------------- 5. one size limit


def test_a_map_over_the_limit_is_refused_before_it_is_written():
    huge = p.PlacementMap(dict(("dag_%06d" % i, "server-1") for i in range(60000)), generation=1)
    with pytest.raises(p.PlacementError, match=r"would be \d+ bytes \(60000 DAGs\), more than the limit of 1000000"):
        p.dump_map(huge)


def test_a_map_text_over_the_limit_is_refused_when_read(tmp_path):
    text = "".join("dag_%06d: server-1\n" % i for i in range(60000))
    with pytest.raises(p.PlacementError, match="more than the limit of 1000000"):
        p.parse_map(text)
    path = tmp_path / "placement.yml"
    path.write_text(text)
    with pytest.raises(p.PlacementError, match="more than the limit of 1000000"):
        p.read_map_file(str(path))


def test_the_guard_uses_the_same_limit():
    source = open(os.path.join(os.path.dirname(p.__file__), "..", "..", "roles", "airflow_placement", "files",
                               "airflow", "failback_guard.py")).read()
    assert "MAX_MAP_BYTES = placement.MAX_MAP_BYTES" in source


# ----------------------------------------------------------------------------- 6. control characters


def test_control_characters_in_updated_by_are_refused_naming_the_character():
    with pytest.raises(p.PlacementError, match=r"updated_by 'ops\\x07' contains the control character U\+0007"):
        p.dump_map(p.PlacementMap({"a": "server-1"}, 1, "t", "ops\u0007"))
    with pytest.raises(p.PlacementError, match="contains the control character U\\+001B"):
        p.parse_map('"@failback": {updated_by: "a\\e"}\na: server-1\n')


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40), st.text(max_size=20))
def test_any_text_is_refused_or_reads_back_exactly(updated_by, updated_at):
    pmap = p.PlacementMap({"dag_a": "server-1"}, 3, updated_at, updated_by, "server-2")
    try:
        text = p.dump_map(pmap)
    except p.PlacementError as exc:
        assert "control character" in str(exc) or "unpaired surrogate" in str(exc)
        return
    assert text.isascii()
    assert p.parse_map(text) == pmap


# ----------------------------------------------------------------------------- 7. YAML aliases


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    "%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((chr(98 + i), chr(98 + i)) + (chr(97 + i),) * 9)
    for i in range(8))


def test_an_alias_bomb_is_refused_at_once_with_a_short_message():
    start = time.monotonic()
    with pytest.raises(p.PlacementError) as err:
        p.parse_map(BOMB, source="map.yml")
    assert time.monotonic() - start < 1
    assert "anchors and aliases (&name, *name) are not allowed in a placement map (line 1)" in str(err.value)
    assert len(str(err.value)) < 300


def test_anchors_alone_are_refused_too():
    with pytest.raises(p.PlacementError, match="anchors and aliases"):
        p.parse_map("dag_a: &x server-1\n")


def test_ampersands_in_quoted_text_are_fine():
    pmap = p.parse_map('"@failback": {updated_by: "ops & co *"}\ndag_a: server-1\n')
    assert pmap.updated_by == "ops & co *"


def test_deep_nesting_is_refused():
    with pytest.raises(p.PlacementError):
        p.parse_map("dag_a: " + "[" * 100000 + "]" * 100000 + "\n")


def test_error_messages_never_echo_a_whole_value():
    with pytest.raises(p.PlacementError) as err:
        p.parse_map("dag_a: [%s]\n" % ", ".join(["server-1"] * 5000))
    assert len(str(err.value)) < 300 and "maps to ['server-1', 'server-1'" in str(err.value)
    with pytest.raises(p.PlacementError) as err:
        p.parse_map("dag_a: server-1\n%s: server-2\n" % ("@" + "x" * 100000))
    assert len(str(err.value)) < 300


# ----------------------------------------------------------------------------- 9. files


def test_a_fifo_as_map_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "placement.yml"
    os.mkfifo(str(fifo))
    with pytest.raises(p.PlacementError, match="it is a FIFO, not a regular file"):
        p.read_map_file(str(fifo))


def test_a_symlinked_map_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "repo" / "placement.yml"
    target.parent.mkdir()
    target.write_text("dag_a: server-1\n")
    link = tmp_path / "placement.yml"
    link.symlink_to(target)
    result = p.publish_file(str(link), p.PlacementMap({"dag_a": "server-2"}, 1))
    assert result["written"]
    assert link.is_symlink() and os.readlink(str(link)) == str(target)
    assert p.read_map_file(str(target)).dags == {"dag_a": "server-2"}


# ----------------------------------------------------------------------------- 10. DAG lists


@pytest.mark.parametrize(
    "value, message",
    [
        ({"dag_a": "x"}, "the list of DAGs to move is {'dag_a': 'x'} (a mapping): give DAG ids as a comma-separated string"),
        (49, "the list of DAGs to move is 49 (a number): give DAG ids"),
        ([1, 2], "listed DAG 1 is of type int, not a string"),
        (["ok", None], "listed DAG None is of type NoneType"),
    ],
)
def test_bad_dag_lists_name_the_value(value, message):
    with pytest.raises(p.PlacementError) as err:
        p.move(p.PlacementMap({"dag_a": "server-1"}), "server-2", dags=value, installations=KNOWN)
    assert message in str(err.value)


# ----------------------------------------------------------------------------- 4. resumable moves


def test_the_same_move_can_run_again_and_moves_nothing_the_second_time():
    before = p.PlacementMap({"dag_a": "server-1", "dag_b": "server-1"}, 4)
    after, moved = p.move(before, "server-2", from_="server-1", dags=["dag_a"], installations=KNOWN)
    assert moved == {"dag_a": ("server-1", "server-2")}
    again, moved_again = p.move(after, "server-2", from_="server-1", dags=["dag_a"], installations=KNOWN)
    assert moved_again == {} and again.same_placement(after)


# ----------------------------------------------------------------------------- 2. compare-and-swap publish


def _map(generation, **dags):
    return p.PlacementMap(dags, generation)


def test_publish_file_writes_lifts_the_fence_and_reports(tmp_path):
    path = str(tmp_path / "placement.yml")
    (tmp_path / "fence").write_text("fenced at t: restarted\n")
    result = p.publish_file(path, _map(2, dag_a="server-1"), KNOWN, lift_fence=True)
    assert result["written"] and result["before"] is None and result["after"].generation == 2
    assert result["fenced_before"] == "fenced at t: restarted" and result["fenced"] is None
    assert not (tmp_path / "fence").exists()
    again = p.publish_file(path, _map(2, dag_a="server-1"), KNOWN, lift_fence=True)
    assert not again["written"] and not again["fence_changed"]


def test_publish_file_refuses_an_older_map_and_writes_nothing(tmp_path):
    path = str(tmp_path / "placement.yml")
    p.publish_file(path, _map(3, dag_a="server-2"))
    with pytest.raises(p.PlacementError, match="refusing to replace placement map generation 3 with older generation 2"):
        p.publish_file(path, _map(2, dag_a="server-1"), lift_fence=True)
    assert p.read_map_file(path).generation == 3


def test_publish_file_compares_the_generation_it_expects(tmp_path):
    path = str(tmp_path / "placement.yml")
    with pytest.raises(p.PlacementError, match="is at generation none, expected 1"):
        p.publish_file(path, _map(2, dag_a="server-1"), expect_generation=1)
    p.publish_file(path, _map(1, dag_a="server-1"), expect_generation=None)
    with pytest.raises(p.PlacementError, match="is at generation 1, expected 0: it changed since it was read"):
        p.publish_file(path, _map(2, dag_a="server-2"), expect_generation=0)
    assert p.publish_file(path, _map(2, dag_a="server-2"), expect_generation=1)["written"]


def test_publish_file_can_fence_without_a_map(tmp_path):
    path = str(tmp_path / "placement.yml")
    result = p.publish_file(path, None, fence_reason="revoke failed; fenced by failover.yml")
    assert result["fence_changed"] and "revoke failed" in (tmp_path / "fence").read_text()


def test_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "placement.yml")
    (tmp_path / "fence").write_text("x")
    result = p.publish_file(path, _map(1, dag_a="server-1"), lift_fence=True, check_mode=True)
    assert result["written"] and result["fence_changed"]
    assert sorted(os.listdir(tmp_path)) == ["fence"]


def _publish_in_process(path, generation, owner, barrier, results):
    barrier.wait()
    try:
        p.publish_file(path, _map(generation, dag_a=owner))
        results.put((generation, "written"))
    except p.PlacementError as exc:
        results.put((generation, str(exc)))


def test_racing_publishers_never_leave_an_older_generation(tmp_path):
    """Many processes publish generations 1..12 at the same moment: the file ends at the newest."""
    path = str(tmp_path / "placement.yml")
    for _attempt in range(3):
        ctx = multiprocessing.get_context("fork")
        barrier, results = ctx.Barrier(12), ctx.Queue()
        procs = [ctx.Process(target=_publish_in_process, args=(path, g, "server-%d" % (g % 3 + 1), barrier, results))
                 for g in range(1, 13)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        outcomes = [results.get(timeout=5) for _proc in procs]
        assert p.read_map_file(path).generation == 12
        assert all(message == "written" or "older generation" in message or "already exists" in message
                   for _generation, message in outcomes), outcomes
        os.unlink(path)


# ----------------------------------------------------------------------------- 1. revoke first


M0 = p.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1)
M1 = p.PlacementMap({"dag_a": "server-2", "dag_b": "server-2"}, 2)


def test_the_old_owner_is_revoked_before_anyone_is_granted():
    plan = pp.plan_publish(M1, {"server-1": (M0, False), "server-2": (M0, False), "server-3": (M0, False)}, KNOWN)
    assert plan["revoke"] == ["server-1"] and plan["publish"] == ["server-2", "server-3"]
    assert plan["gains"] == {"server-2": ["dag_a"]} and plan["loses"] == {"server-1": ["dag_a"]}
    assert plan["blocked"] == {}


def test_a_grant_waits_while_an_unreachable_installation_may_run_the_dag():
    plan = pp.plan_publish(M1, {"server-2": (M0, False), "server-3": (M0, False)}, KNOWN)
    assert plan["blocked"] == {"server-2": {"dag_a": ["server-1"]}}
    assert plan["publish"] == ["server-3"] and plan["unreachable"] == ["server-1"]
    forced = pp.plan_publish(M1, {"server-2": (M0, False), "server-3": (M0, False)}, KNOWN, force=True)
    assert forced["blocked"] == {} and forced["forced"] == {"server-2": {"dag_a": ["server-1"]}}
    assert forced["publish"] == ["server-2", "server-3"]


def test_the_known_maps_are_evidence_for_unreachable_installations():
    # Everyone reachable already holds M1; only the controller's old map says server-1 ran dag_a.
    plan = pp.plan_publish(M1, {"server-2": (None, False)}, ["server-1", "server-2"], known=[M0])
    assert plan["blocked"] == {"server-2": {"dag_a": ["server-1"]}}


def test_a_fenced_installation_runs_nothing_and_gets_the_map_with_its_fence_lifted():
    plan = pp.plan_publish(M1, {"server-1": (M0, True), "server-2": (M1, False)}, ["server-1", "server-2"])
    assert plan["revoke"] == [] and plan["publish"] == ["server-1"] and plan["current"] == ["server-2"]


def test_a_blocked_installation_keeps_what_it_would_lose_so_its_successor_waits_too():
    # server-2 would gain dag_a (server-1 unreachable) and lose dag_b to server-3.
    old = p.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1)
    new = p.PlacementMap({"dag_a": "server-2", "dag_b": "server-3"}, 2)
    plan = pp.plan_publish(new, {"server-2": (old, False), "server-3": (old, False)}, KNOWN)
    assert plan["blocked"] == {"server-2": {"dag_a": ["server-1"]}, "server-3": {"dag_b": ["server-2"]}}
    assert plan["revoke"] == plan["publish"] == []


def test_a_moved_default_owner_counts_as_a_move():
    old = p.PlacementMap({}, 1, default="server-1")
    new = p.PlacementMap({}, 2, default="server-2")
    plan = pp.plan_publish(new, {"server-1": (old, False), "server-2": (old, False)}, ["server-1", "server-2"])
    assert plan["revoke"] == ["server-1"] and plan["gains"] == {"server-2": [p.DEFAULT_KEY]}


def test_a_new_fleet_is_published_everywhere_at_once():
    plan = pp.plan_publish(M1, {"server-1": (None, False), "server-2": (None, False)}, ["server-1", "server-2"])
    assert plan["revoke"] == [] and plan["publish"] == ["server-1", "server-2"]

"""The controller's side of a failover: planning, the journal that lets a stopped run resume, summary."""

from __future__ import annotations

import json

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import failover
from ansible_collections.failback.airflow.plugins.module_utils import placement as p

KNOWN = ["server-1", "server-2", "server-3"]
T1, T2 = "2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z"
M0 = p.PlacementMap({"dag_a": "server-1", "dag_b": "server-1", "dag_c": "server-2"}, 4)


def test_journal_path_is_next_to_the_real_map(tmp_path):
    target = tmp_path / "repo" / "placement.yml"
    target.parent.mkdir()
    target.write_text("{}\n")
    (tmp_path / "placement.yml").symlink_to(target)
    assert failover.journal_path(str(tmp_path / "placement.yml")) == str(tmp_path / "repo" / "placement.failover.json")


def test_a_plan_moves_and_stamps_a_new_generation():
    planned = failover.plan(M0, None, failover.request("server-2", "server-1"), KNOWN, "me", now=T1)
    assert planned["commit"] and planned["after"].generation == 5 and planned["after"].updated_by == "me"
    assert planned["moved"] == {"dag_a": {"from": "server-1", "to": "server-2"},
                                "dag_b": {"from": "server-1", "to": "server-2"}}
    assert planned["resumed"] is None and planned["before"] is M0


def test_an_unfinished_failover_is_resumed_with_what_it_moved():
    first = failover.plan(M0, None, failover.request("server-2", "server-1", "dag_a"), KNOWN, "me", now=T1)
    journal = failover.journal_for(first, failover.request("server-2", "server-1", "dag_a"), "me", T1)
    # The run died after the commit; the controller's map is the new one.
    again = failover.plan(first["after"], journal, failover.request("server-2", "server-1", "dag_a"), KNOWN, "me")
    assert not again["commit"] and again["resumed"] is journal
    assert again["moved"] == {"dag_a": {"from": "server-1", "to": "server-2"}}, "the resumed run still knows what moved"
    done = failover.finish(journal, "moved 1", T2)
    after_done = failover.plan(first["after"], done, failover.request("server-2", "server-1", "dag_a"), KNOWN, "me")
    assert after_done["moved"] == {} and after_done["resumed"] is None


def test_a_journal_that_no_longer_matches_the_map_is_not_resumed():
    first = failover.plan(M0, None, failover.request("server-2", "server-1"), KNOWN, "me", now=T1)
    journal = failover.journal_for(first, failover.request("server-2", "server-1"), "me", T1)
    changed_since = first["after"].replace(dags={"dag_a": "server-3", "dag_b": "server-2", "dag_c": "server-2"})
    planned = failover.plan(changed_since, journal, failover.request("server-3", "server-2", "dag_b"), KNOWN, "me")
    assert planned["resumed"] is None and planned["stale_journal"] is journal


def test_a_new_request_on_top_of_an_unfinished_one_keeps_the_older_before():
    first = failover.plan(M0, None, failover.request("server-2", None, "dag_a"), KNOWN, "me", now=T1)
    journal = failover.journal_for(first, failover.request("server-2", None, "dag_a"), "me", T1)
    second = failover.plan(first["after"], journal, failover.request("server-3", None, "dag_b"), KNOWN, "me", now=T2)
    assert second["commit"] and second["before"] == M0
    assert second["moved"] == {"dag_a": {"from": "server-1", "to": "server-2"},
                               "dag_b": {"from": "server-1", "to": "server-3"}}
    assert [r["dags"] for r in failover.journal_for(second, failover.request("server-3", None, "dag_b"), "me", T2)["requests"]] \
        == [["dag_a"], ["dag_b"]]


def test_journals_round_trip_and_damaged_ones_are_refused(tmp_path):
    path = str(tmp_path / "placement.failover.json")
    assert failover.read_journal(path) is None
    first = failover.plan(M0, None, failover.request("server-2", "server-1"), KNOWN, "me", now=T1)
    journal = failover.journal_for(first, failover.request("server-2", "server-1"), "me", T1)
    failover.write_journal(path, journal)
    assert failover.read_journal(path) == json.loads(json.dumps(journal))
    (tmp_path / "placement.failover.json").write_text("{not json")
    with pytest.raises(p.PlacementError, match="cannot be read .* move it away to start afresh"):
        failover.read_journal(path)


@pytest.mark.parametrize("moved, held, fenced, expected, behind", [
    ({"dag_a": {}}, {"server-1": 5, "server-2": 5}, [], "moved 1: dag_a -> server-2; placement map generation 5", []),
    ({}, {"server-1": 5}, [], "nothing to move: server-2 already owns them; placement map generation 5", []),
    ({"dag_a": {}, "@default": {}}, {"server-1": 4}, ["server-3"],
     "moved 1: dag_a, the default owner -> server-2; placement map generation 5; fenced, could not take the map: "
     "server-3; NOT at generation 5: server-1", ["server-1"]),
])
def test_summary(moved, held, fenced, expected, behind):
    assert failover.summarize(moved, 5, "server-2", {"unreachable": []}, held, fenced) == (expected, behind)


# An old owner that did not confirm the revoke (lease source, unreachable): its runs due before the
# moment its lease is certainly over stay its own; the new owner gets the runs from then on.
LEASE_OVER = "2026-12-01T09:01:05Z"


def _failed_over():
    planned = failover.plan(M0, None, failover.request("server-2", "server-1"), KNOWN, "me", now=T1)
    return planned["after"], failover.journal_for(planned, failover.request("server-2", "server-1"), "me", T1)


def test_an_unconfirmed_old_owner_keeps_the_runs_due_until_its_lease_is_over():
    after, journal = _failed_over()
    held, new_journal, refused = failover.keep(after, journal, {}, "me", now="2026-12-01T09:01:10Z", before=M0,
                                               running={"server-3": M0}, held={"server-1": LEASE_OVER})
    assert refused == {} and held.generation == after.generation + 1
    for dag in ("dag_a", "dag_b"):
        assert held.owner_at(dag, "2026-12-01T09:01:04Z") == "server-1", "due before the lease is over: the old owner's"
        assert held.owner_at(dag, LEASE_OVER) == "server-2"
        assert held.last_handover(dag).at == LEASE_OVER
    assert held.owner_at("dag_c", "2026-12-01T08:00:00Z") == "server-2", "a DAG the failover did not move is untouched"
    assert new_journal["generation"] == held.generation and new_journal["after"] == held.to_data()
    # Run again (a resumed failover): nothing new.
    again, _journal, _refused = failover.keep(held, new_journal, {}, "me", now="2026-12-01T09:01:20Z", before=M0,
                                              held={"server-1": LEASE_OVER})
    assert again is held


def test_a_hold_never_takes_runs_from_an_installation_that_may_run_them_now():
    after, journal = _failed_over()
    # server-2 holds the map already (say, a grant was written before the run stopped): dag_a/dag_b runs due
    # from the handover on are its own by what it holds, so neither is held back for server-1.
    held, _journal, refused = failover.keep(after, journal, {}, "me", now="2026-12-01T09:01:10Z", before=M0,
                                            running={"server-2": after}, held={"server-1": LEASE_OVER})
    assert held is after
    assert sorted(r["dag_id"] for r in refused["server-1"]) == ["dag_a", "dag_b"]
    assert all("server-2 runs its runs due from then on" in r["reason"] for r in refused["server-1"])


def test_a_handover_already_past_the_lease_end_is_left_alone():
    after, journal = _failed_over()
    held, _journal, refused = failover.keep(after, journal, {}, "me", now="2026-12-01T09:01:10Z", before=M0,
                                            held={"server-1": "2026-12-01T08:59:00Z"})
    assert held is after and refused == {}
    with pytest.raises(p.PlacementError, match="lease end of server-1"):
        failover.keep(after, journal, {}, "me", before=M0, held={"server-1": "not a time"})

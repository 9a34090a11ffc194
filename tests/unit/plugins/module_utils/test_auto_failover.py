"""The rules of the opt-in automatic failover (module_utils/auto_failover.py)."""

from __future__ import annotations

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import auto_failover as af

SETTINGS = {"pairs": {"cluster-1": "server-1"}, "interval": 10, "probes": 3, "window": 30, "cooldown": 600}
OWNS = {"cluster-1": 4}
HEALTHY = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}
FENCED = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy"}}


def feed(decider, name, moments, answer=None, error=None):
    for moment in moments:
        decider.observe(name, moment, *af.reading(answer, error))


def test_readings_of_airflows_health_answer():
    assert af.reading(HEALTHY) == (True, True, "healthy")
    assert af.reading(FENCED) == (False, True, "scheduler unhealthy"), "a fenced scheduler can still become the owner"
    assert af.reading(None, "connection refused") == (False, False, "connection refused")
    assert af.reading({"metadatabase": {"status": "unhealthy"}}) == (False, False, "metadatabase unhealthy, scheduler unknown")


def test_an_owner_down_for_n_probes_over_the_window_is_failed_over_with_catchup_since_its_last_healthy_reading():
    decider = af.Decider(SETTINGS)
    feed(decider, "cluster-1", [0, 10], HEALTHY)
    feed(decider, "server-1", [0, 10, 20, 30, 40], FENCED)
    feed(decider, "cluster-1", [20, 30], error="connection refused")
    assert decider.decide(30, OWNS) == [], "two failed readings are not three"
    feed(decider, "cluster-1", [40], error="connection refused")
    assert decider.decide(40, OWNS) == [], "three failed readings over 20 s are not the 30 s window"
    feed(decider, "cluster-1", [50], error="connection refused")
    feed(decider, "server-1", [50], FENCED)
    [decision] = decider.decide(50, OWNS)
    assert decision["action"] == "failover" and (decision["from"], decision["to"]) == ("cluster-1", "server-1")
    assert decision["since"] == "1970-01-01T00:00:10Z" and decision["reasons"] == ["connection refused"]


def test_never_to_a_new_owner_that_is_not_healthy_and_the_reason_is_kept_once():
    decider = af.Decider(SETTINGS)
    feed(decider, "cluster-1", [0, 10, 20, 30, 40], error="timed out")
    feed(decider, "server-1", [0, 10, 20, 30, 40], error="connection refused")
    [hold] = decider.decide(40, OWNS)
    assert hold["action"] == "hold" and "the new owner server-1 is not healthy (connection refused)" in hold["why"]
    feed(decider, "cluster-1", [50], error="timed out")
    feed(decider, "server-1", [50], error="connection refused")
    assert decider.decide(50, OWNS) == [], "the same hold is not repeated"
    feed(decider, "server-1", [60], FENCED)
    feed(decider, "cluster-1", [60], error="timed out")
    assert [d["action"] for d in decider.decide(60, OWNS)] == ["failover"]


def test_a_flapping_owner_is_failed_over_at_most_once_per_cooldown_and_never_back():
    decider = af.Decider(SETTINGS)
    feed(decider, "server-1", range(0, 2000, 10), HEALTHY)
    feed(decider, "cluster-1", [0, 10, 20, 30], error="down")
    assert [d["action"] for d in decider.decide(30, OWNS)] == ["failover"]
    feed(decider, "cluster-1", [40, 50], HEALTHY)  # back up ...
    feed(decider, "cluster-1", [60, 70, 80, 90], error="down")  # ... and down again within the cooldown
    [hold] = decider.decide(90, OWNS)
    assert hold["action"] == "hold" and hold["why"].startswith("cooldown: cluster-1 was failed over at")
    # after the failover the old owner owns nothing: nothing to move, and server-1 is never moved back
    assert decider.decide(900, {"server-1": 4}) == []
    state = decider.state()
    again = af.Decider(SETTINGS, state)  # a restarted watcher remembers the cooldown (and its last hold)
    forgetful = af.Decider(SETTINGS)
    for watcher in (again, forgetful):
        feed(watcher, "server-1", [130], HEALTHY)
        feed(watcher, "cluster-1", [100, 110, 120, 130], error="down")
    assert again.decide(130, OWNS) == []
    assert [d["action"] for d in forgetful.decide(130, OWNS)] == ["failover"], "without its state it would move again"


@pytest.mark.parametrize("settings, named", [
    ({"pairs": {}}, "pairs must name at least one owner"),
    ({"pairs": {"a": "a"}}, "pairs: a -> 'a'"),
    ({"pairs": {"a": "b", "b": "a"}}, "automatic failback is not allowed"),
    ({"pairs": {"a": "b"}, "probes": 0}, "probes is 0"),
    ({"pairs": {"a": "b"}, "window": "30s"}, "window is '30s'"),
    ({"pairs": {"a": "b"}, "cooldown": True}, "cooldown is True"),
])
def test_bad_settings_are_named(settings, named):
    assert any(named in problem for problem in af.settings_problems(settings)), af.settings_problems(settings)


def test_the_cooldown_holds_while_the_owner_still_owns_dags_however_many_holds_come_between():
    settings = dict(SETTINGS, pairs={"cluster-1": "server-1", "server-3": "server-4"})
    decider = af.Decider(settings)
    feed(decider, "server-1", range(0, 4000, 10), HEALTHY)
    feed(decider, "cluster-1", range(0, 40, 10), error="down")
    assert [d["action"] for d in decider.decide(30, OWNS)] == ["failover"]
    actions = []
    for moment in range(40, 600, 10):  # within the cooldown (600 s) the failover did not take (the owner still owns DAGs); another pair holds
        feed(decider, "cluster-1", [moment], error="down")
        feed(decider, "server-3", [moment], error="down" if moment % 20 else "refused")
        feed(decider, "server-4", [moment], error="down" if moment % 20 else "refused")
        actions += [(d["from"], d["action"]) for d in decider.decide(moment, {"cluster-1": 4, "server-3": 1})]
    assert ("cluster-1", "failover") not in actions, "a second failover within the cooldown"
    assert len(decider.decisions) <= af.KEEP_DECISIONS


def test_a_restarted_watcher_does_not_trust_readings_from_before_its_gap():
    decider = af.Decider(SETTINGS)
    feed(decider, "cluster-1", [0, 10, 20], HEALTHY)
    state = dict(decider.state(), updated_at=20)
    later = af.Decider(SETTINGS, state, now=20 + 6 * 3600)  # stopped six hours; the owner died meanwhile
    feed(later, "server-1", [21620, 21630, 21640, 21650], HEALTHY)
    feed(later, "cluster-1", [21620, 21630, 21640, 21650], error="down")
    [decision] = later.decide(21650, OWNS)
    assert decision["action"] == "failover" and decision["since"] is None, "no catch-up from six hours ago"
    soon = af.Decider(SETTINGS, state, now=40)
    assert soon.last_healthy == {"cluster-1": 20}


@pytest.mark.parametrize("state", [
    {"readings": {"a": 5}}, {"decisions": [{"from": "a"}]}, {"last_healthy": [1, 2]}, "not a dict",
    {"readings": {"cluster-1": [{"at": "x"}]}, "failing_since": {"cluster-1": True}, "last_failover": None},
])
def test_a_damaged_state_is_dropped_not_trusted(state):
    decider = af.Decider(SETTINGS, state)
    feed(decider, "server-1", [0, 10, 20, 30], HEALTHY)
    feed(decider, "cluster-1", [0, 10, 20, 30], error="down")
    assert [d["action"] for d in decider.decide(30, OWNS)] == ["failover"]


def test_odd_health_answers_are_readings_not_crashes():
    assert af.reading({"metadatabase": "healthy", "scheduler": None}) == (
        False, False, "metadatabase unknown, scheduler unknown")
    assert af.reading(["not", "a", "dict"])[0] is False

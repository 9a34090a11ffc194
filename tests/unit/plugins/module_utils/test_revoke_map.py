"""The revoke stage of a map published through one authority (placement_plan.revoke_map).

When every guard pulls the same object, revoke first means: publish a map in which every run
that changes owner belongs to nobody, wait until no old owner can still decide with the map
before, then grant. These tests check that the revoke stage never gives a run to anybody but its
owner in both maps, keeps the old owner's runs it is finishing (due before the handover, kept),
and that the sequence before -> revoke stage -> after is accepted by check_publish while the
reverse is refused; the property test draws random failovers, keeps and catch-up cuts.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.failback.airflow.plugins.module_utils import placement as p
from ansible_collections.failback.airflow.plugins.module_utils import placement_plan as pp

NAMES = ["s1", "s2", "s3"]
T0 = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
DAGS = ["dag_a", "dag_b", "dag_c"]


def _at(minutes):
    return p.format_time(T0 + datetime.timedelta(minutes=minutes))


def _failover_steps(pmap, to, dags, minutes, kept=None, since=None):
    """The maps a failover writes one after the other: the move, then the kept runs, then a catch-up cut."""
    moved = p.move(pmap, to, dags=dags, installations=NAMES)[0]
    steps = [p.stamp(pmap, moved, "t", now=_at(minutes))]
    source = pmap.owner(dags[0])
    if kept:
        steps.append(p.stamp(steps[-1], p.keep_runs(steps[-1], kept, source), "t", now=_at(minutes)))
    if since is not None:
        steps.append(p.stamp(steps[-1], p.move_cut(steps[-1], dags, source, _at(since)), "t", now=_at(minutes)))
    return steps


def _failover(pmap, to, dags, minutes, kept=None, since=None):
    return _failover_steps(pmap, to, dags, minutes, kept, since)[-1]


def _points(*maps):
    table = pp.Ownership(list(maps))
    for key in table.keys:
        vectors = [table.vector(m, key) for m in maps]
        for index in range(len(vectors[0])):
            yield key, table.bounds(key, index), [v[index] for v in vectors]


def _check(before, after):
    revoke = pp.revoke_map(before, after)
    if revoke is None:
        # No stage: no run goes to an installation (nothing moves, or runs only go to nobody).
        assert all(s["to"] is None for segments in pp.run_changes(before, after).values() for s in segments)
        return None
    assert revoke is not None and revoke.stage == "revoke" and revoke.generation == after.generation
    changes = pp.run_changes(before, after)
    first = dict((key, min((p.parse_time(s["since"]) for s in segments if s["since"]), default=None)
                  if all(s["since"] for s in segments) else None) for key, segments in changes.items())
    kept = set((key, t) for key in changes for h in after.history(key) for t in h.kept_times)
    for key, (since, until), (was, will, now) in _points(before, after, revoke):
        assert now is None or now == was == will, (key, since, until, was, will, now)
        if key not in changes:
            assert now == will, (key, since, until, was, will, now)
        elif first[key] is not None and until is not None and p.parse_time(until) <= first[key] and since != until:
            assert now == was, ("a run due before the first change lost its owner", key, since, until, was, now)
        elif since is not None and since == until and (key, p.parse_time(since)) in kept and was == will:
            assert now == was, ("a kept run lost its owner", key, since, was, now)
    # The text every guard parses reads back as the same map.
    assert p.parse_map(p.dump_map(revoke), NAMES) == revoke
    assert p.check_publish(before, revoke) and p.check_publish(revoke, after)
    with pytest.raises(p.PlacementError, match="granted already"):
        p.check_publish(after, revoke)
    return revoke


def test_a_failover_revokes_the_runs_due_from_the_handover_and_keeps_the_older_ones_with_the_old_owner():
    before = p.PlacementMap({"dag_a": "s1", "dag_b": "s1", "dag_c": "s2"}, 3)
    after = _failover(before, "s2", ["dag_a"], 60)
    revoke = _check(before, after)
    assert revoke.owner("dag_a") is None and revoke.owner("dag_b") == "s1" and revoke.owner("dag_c") == "s2"
    assert revoke.owner_at("dag_a", _at(59)) == "s1"       # the old owner finishes its runs
    assert revoke.owner_at("dag_a", _at(60)) is None       # nobody until the grant
    assert after.owner_at("dag_a", _at(60)) == "s2"
    decision, owner, reason = p.decide(revoke, "dag_a", "s1", _at(61))
    assert (decision, owner) == (p.SKIP, None) and "revoke stage" in reason


def test_kept_runs_stay_with_the_old_owner_in_the_revoke_stage():
    before = p.PlacementMap({"dag_a": "s1"}, 3)
    after = _failover(before, "s2", ["dag_a"], 60, kept={"dag_a": [_at(61), _at(62)]})
    revoke = _check(before, after)
    assert revoke.owner_at("dag_a", _at(61)) == "s1" and revoke.owner_at("dag_a", _at(62)) == "s1"
    assert revoke.owner_at("dag_a", _at(63)) is None


def test_a_catchup_since_run_again_revokes_the_runs_it_moves_back_and_keeps_the_older_ones():
    before = p.PlacementMap({"dag_a": "s1"}, 3)
    first = _failover(before, "s2", ["dag_a"], 60)
    again = p.stamp(first, p.move_cut(first, ["dag_a"], "s1", _at(30)), "t", now=_at(70))
    revoke = _check(first, again)
    assert revoke.owner_at("dag_a", _at(29)) == "s1"
    assert revoke.owner_at("dag_a", _at(30)) is None and revoke.owner_at("dag_a", _at(45)) is None
    # s2's own runs (from 60 on) are revoked for the stage too: safe, its catch-up runs them.
    assert revoke.owner_at("dag_a", _at(65)) is None


def test_a_kept_run_of_a_later_handover_stays_with_its_owner_when_an_earlier_range_changes():
    """A change before a handover whose old owner is finishing a kept run: that run is not revoked."""
    text = ('"@failback":\n  generation: %d\n  handovers:\n    dag_a:\n%s\ndag_a: s3\n')
    before = p.parse_map(text % (4, '      - {at: "%s", from: s1}\n      - {at: "%s", from: s2, kept: ["%s"]}'
                                 % (_at(60), _at(120), _at(125))), NAMES)
    after = p.parse_map(text % (5, '      - {at: "%s", from: s1}\n      - {at: "%s", from: s3}\n'
                                   '      - {at: "%s", from: s2, kept: ["%s"]}' % (_at(60), _at(90), _at(120), _at(125))),
                        NAMES)
    revoke = _check(before, after)
    assert revoke.owner_at("dag_a", _at(125)) == "s2"
    assert revoke.owner_at("dag_a", _at(59)) == "s1" and revoke.owner_at("dag_a", _at(61)) is None


def test_the_default_owner_moving_revokes_the_unlisted_dags():
    before = p.PlacementMap({"dag_a": "s1"}, 2, default="s1")
    after = p.stamp(before, before.replace(default="s3"), "t", now=_at(10))
    revoke = _check(before, after)
    assert revoke.default is None and revoke.owner_at("dag_x", _at(9)) == "s1" and revoke.owner("dag_a") == "s1"


def test_nothing_to_revoke_gives_no_stage_and_a_swap_is_all_revoked():
    same = p.PlacementMap({"dag_a": "s1"}, 2)
    assert pp.revoke_map(same, same.replace(generation=3)) is None
    assert _check(same, p.PlacementMap({}, 3)) is None  # taken off the map, no default: it only revokes
    before = p.PlacementMap({"dag_a": "s1", "dag_b": "s2"}, 2)
    after = p.stamp(before, before.replace(dags={"dag_a": "s2", "dag_b": "s1"}), "t", now=_at(5))
    revoke = _check(before, after)
    assert revoke.owner("dag_a") is None and revoke.owner("dag_b") is None


def test_with_a_default_owner_a_moved_dag_is_listed_as_nobody_s_in_the_revoke_stage():
    """A DAG taken off a listed owner must not fall to the default owner during the stage (review finding)."""
    before = p.PlacementMap({"dag_a": "s1", "dag_b": "s2"}, 3, default="s2")
    after = _failover(before, "s3", ["dag_a"], 60)
    revoke = _check(before, after)
    assert "dag_a" in revoke.dags and revoke.owner("dag_a") is None and revoke.owner_at("dag_a", _at(70)) is None
    assert "dag_a: null" in p.dump_map(revoke)
    removed = before.replace(dags={"dag_b": "s2"}, generation=4)  # dag_a handed to the default owner s2
    revoke = _check(before, removed)
    assert revoke.owner("dag_a") is None and revoke.owner("dag_unlisted") == "s2"
    with pytest.raises(p.PlacementError, match="empty installation name"):
        p.parse_map('"@failback": {generation: 2}\ndag_a: null\n')  # only a revoke stage lists nobody


def _alternate(count, kept_at=None):
    pmap = p.PlacementMap({"dag_a": "s1"}, 1)
    for step in range(1, count + 1):
        to = "s2" if pmap.owner("dag_a") == "s1" else "s1"
        kept = {"dag_a": [_at(step * 100 + 30)]} if step == kept_at else None
        pmap = _failover(pmap, to, ["dag_a"], step * 100, kept=kept)
    return pmap


def test_a_folded_history_keeps_the_old_owners_runs_and_kept_runs_in_the_revoke_stage():
    """after folds its oldest handovers into a floor (runs to nobody): that is no reason to revoke the rest."""
    before = _alternate(8, kept_at=8)
    after = _failover(before, "s3", ["dag_a"], 1000)
    assert after.history("dag_a")[0].floor
    revoke = _check(before, after)
    assert revoke.owner_at("dag_a", _at(830)) == before.owner_at("dag_a", _at(830)) == "s2"   # the kept run
    assert revoke.owner_at("dag_a", _at(950)) == before.owner_at("dag_a", _at(950))           # before the move
    assert revoke.owner_at("dag_a", _at(1001)) is None


def test_a_history_at_the_cap_is_not_folded_again_by_the_revoke_stage():
    before = _alternate(7)
    after = _failover(before, "s3", ["dag_a"], 800)
    revoke = _check(before, after)
    for minutes in (150, 750):
        assert revoke.owner_at("dag_a", _at(minutes)) == before.owner_at("dag_a", _at(minutes))


def test_a_grant_that_moves_runs_the_revoke_stage_left_with_their_owner_is_refused():
    """Two controllers, one generation: the revoke stage of one must not let the other's grant through."""
    before = p.PlacementMap({"dag_a": "s1", "dag_b": "s1"}, 3)
    revoke = pp.revoke_map(before, _failover(before, "s2", ["dag_a"], 60))
    other = _failover(before, "s2", ["dag_b"], 61)
    with pytest.raises(p.PlacementError, match="the run of dag_b due .* stays with 's1' in the revoke stage and would go "
                                               "to 's2'"):
        p.check_publish(revoke, other)


def test_a_stage_that_is_not_revoke_is_refused_naming_it():
    with pytest.raises(p.PlacementError, match="stage 'grant' is not one of revoke"):
        p.parse_map('"@failback": {generation: 2, stage: grant}\ndag_a: s1\n')


@st.composite
def _histories(draw):
    """Two maps of a random history of 1-6 failovers (some with kept runs or a catch-up cut): an earlier
    one (what the authority may still hold) and a later one."""
    pmap = p.PlacementMap(dict((dag, draw(st.sampled_from(NAMES))) for dag in DAGS), 1,
                          default=draw(st.sampled_from([None] + NAMES)))
    minutes = 0
    history = [pmap]
    for _step in range(draw(st.integers(1, 6))):
        minutes += draw(st.integers(1, 120))
        dags = draw(st.lists(st.sampled_from(DAGS), min_size=1, max_size=3, unique=True))
        owners = set(pmap.owner(d) for d in dags)
        if len(owners) != 1:
            continue
        source = owners.pop()
        to = draw(st.sampled_from([n for n in NAMES if n != source]))
        kept = None
        if draw(st.booleans()):  # runs the old owner started after the handover (at minutes + 40)
            kept = dict((d, [_at(minutes + 40 + draw(st.integers(0, 30)))]) for d in dags)
        since = None
        last = max([h.at_time for d in dags for h in pmap.history(d)] or [T0 - datetime.timedelta(days=1)])
        room = int((T0 + datetime.timedelta(minutes=minutes) - last).total_seconds() // 60)
        if room > 2 and draw(st.booleans()):
            since = minutes - draw(st.integers(1, min(room - 1, 60)))
        try:
            steps = _failover_steps(pmap, to, dags, minutes + 40, kept=kept, since=since)
        except p.PlacementError:
            continue
        history.extend(steps)
        pmap = steps[-1]
    later = draw(st.integers(0, len(history) - 1))
    return history[draw(st.integers(0, later))], history[later]


@settings(max_examples=400, deadline=None)
@given(_histories())
def test_any_failover_sequence_revokes_only(maps):
    before, after = maps
    _check(before, after)

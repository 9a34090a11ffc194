"""Model check: no DAG run ever has two runners, whatever sequence of ownership changes happens.

A stateful property test (hypothesis) drives a fleet of three installations through random
sequences of what operators and outages do: failovers of some or all DAGs of an installation,
forced failovers (old owner down, or reachable) with ``failover_catchup_since`` - also run again
with an earlier time -, ``site.yml`` runs, old owners that started runs after the handover (kept
runs), installations that go down and come back fenced, failovers killed half-way and resumed
by the next run, and enough failovers of one DAG that its handover history is capped.

The playbooks are modelled by the order in which they write, computed by the same functions
they call (failover.plan, failover.keep, placement_plan.plan_publish): failover.yml commits the
controller's map, publishes to the revoke group, lets the old owners keep their late runs,
publishes that map to them, then grants; site.yml publishes to the revoke group, then to the
rest. The hosts of one play are written in parallel, so after every write *every subset* of the
play's hosts is checked at the new map with the others at the old one. The check asks every
installation's map, as its guard would (PlacementMap.owner_at), who runs the run of every DAG
due at every instant that matters - far past, every handover and kept run, and a microsecond on
either side of each - and fails when a run has two runners. The instants are computed here,
independently of the planning code under test.
"""

from __future__ import annotations

import datetime
import itertools

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ansible_collections.failback.airflow.plugins.module_utils import failover, placement as p
from ansible_collections.failback.airflow.plugins.module_utils.placement_plan import plan_publish

NAMES = ["s1", "s2", "s3"]
DAGS = ["dag_a", "dag_b", "dag_c"]
UNLISTED = "dag_unlisted"  # stands for every DAG the map does not list (the default owner's)
START = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
FAR_PAST = datetime.datetime(1971, 1, 1, tzinfo=datetime.timezone.utc)
MICRO = datetime.timedelta(microseconds=1)
KILL_POINTS = [None, None, None, "after_commit", "mid_revoke", "after_revoke", "after_keep", "mid_grant"]


class DoubleRunner(AssertionError):
    pass


def instants(maps, key):
    """Every due time at which some map's answer for *key* can change, and either side of it."""
    found = {FAR_PAST}
    for pmap in maps:
        for handover in pmap.history(key):
            for moment in [handover.at_time] + sorted(handover.kept_times):
                found.update((moment - MICRO, moment, moment + MICRO))
    return sorted(found)


class Fleet(object):
    """Three installations, the controller's map and journal, and the check after every write."""

    def __init__(self, start_map):
        self.control = start_map
        self.held = dict((name, start_map) for name in NAMES)
        self.fenced = dict((name, False) for name in NAMES)
        self.down = set()
        self.journal = None
        self.clock = START
        self.writes = 0
        self.log = []

    # -- the guard's view

    def runners(self, states, key, due):
        found = []
        for name in NAMES:
            pmap = states[name]
            if name in self.down or self.fenced[name] or pmap is None:
                continue
            if pmap.owner_at(key, due) == name:
                found.append(name)
        return found

    def check(self, states, what):
        maps = [pmap for pmap in states.values() if pmap is not None]
        for key in DAGS + [UNLISTED]:
            for due in instants(maps, key):
                runners = self.runners(states, key, due)
                if len(runners) > 1:
                    raise DoubleRunner("%s: the run of %s due %s has two runners %s (generations %s); steps: %s" % (
                        what, key, p.format_time(due), runners,
                        dict((n, states[n].generation if states[n] else None) for n in NAMES), "; ".join(self.log)))

    def write(self, names, new, what):
        """One parallel play writes *new* to *names*: every subset of them may be at *new* first."""
        names = [name for name in names if name not in self.down]
        for size in range(1, len(names) + 1):
            for subset in itertools.combinations(names, size):
                states = dict(self.held)
                for name in subset:
                    states[name] = new
                self.check(states, "%s (written so far: %s)" % (what, ", ".join(subset)))
        for name in names:
            p.check_publish(self.held[name], new)
            self.held[name] = new
            self.fenced[name] = False
            self.writes += 1

    def reachable(self):
        return dict((name, (self.held[name], self.fenced[name])) for name in NAMES if name not in self.down)

    # -- the playbooks

    def site(self):
        """site.yml / publish.yml: revoke group, then the others; blocked installations are skipped."""
        plan = plan_publish(self.control, self.reachable(), NAMES)
        if plan["refused"]:
            return "refused"
        self.write(plan["revoke"], self.control, "site.yml revoke")
        self.write(plan["publish"], self.control, "site.yml publish")
        return "blocked %s" % sorted(plan["blocked"]) if plan["blocked"] else "ok"

    def failover(self, draw, to, source, dags, force, since, kill):
        """failover.yml, in the order of its plays; *kill* stops it at that point (kill -9)."""
        now = self.clock
        try:
            req = failover.request(to, source, dags, since)
            planned = failover.plan(self.control, self.journal, req, NAMES, "model", now=p.format_time(now))
        except p.PlacementError as exc:
            return "refused: %s" % exc
        if since is not None and not force:
            return "refused: since without force"
        old_owners = planned["old_owners"]
        plan = plan_publish(planned["after"], self.reachable(), NAMES, force=force, known=[planned["before"]], last=[to])
        if plan["refused"] or plan["blocked"] or to in plan["unreachable"]:
            return "stopped by the plan"
        if not force and set(old_owners) & set(plan["unreachable"]):
            return "stopped: old owner unreachable"
        # Commit: the journal, then the controller's map (compare-and-swap).
        if planned["commit"]:
            self.journal = failover.journal_for(planned, req, "model", p.format_time(now))
            self.control = planned["after"]
        if kill == "after_commit":
            return "killed after the commit"
        after = planned["after"]
        revoke = [name for name in plan["revoke"] if name not in self.down]
        if kill == "mid_revoke":
            self.write(revoke[:1], after, "failover.yml revoke (killed)")
            return "killed during the revoke"
        self.write(revoke, after, "failover.yml revoke")
        if kill == "after_revoke":
            return "killed after the revoke"
        # Late runs: each reachable old owner reports runs due after the handover that it executed. What
        # an Airflow reports is not trusted: any run it no longer owns may be claimed; failover.keep
        # keeps only those nobody else may run now.
        asked = [name for name in old_owners if name not in self.down]
        kept = {}
        for name in asked:
            for key in sorted(set(after.dags) | set(after.handovers)):
                if key == p.DEFAULT_KEY:
                    continue
                claimed = [due for due in instants([planned["before"], after], key)
                           if START <= due <= now and after.owner_at(key, due) != name]
                chosen = draw(st.lists(st.sampled_from(claimed), max_size=2, unique=True)) if claimed else []
                if chosen:
                    kept.setdefault(name, {})[key] = chosen
        final = after
        if kept:
            for name in sorted(kept):
                for key in sorted(kept[name]):
                    try:  # the late-run reading only reports runs after a handover away from the old owner
                        p.keep_runs(self.control, {key: kept[name][key]}, name)
                    except p.PlacementError:
                        kept[name].pop(key)
            running = dict((name, None if self.fenced[name] else self.held[name]) for name in NAMES if name not in self.down)
            final, self.journal, _refused = failover.keep(self.control, self.journal, kept, "model", p.format_time(now),
                                                          before=planned["before"], running=running)
            self.control = final
            if kill == "after_keep":
                return "killed after keeping %s" % kept
            if final is not after:
                self.write(sorted(set(asked) | set(revoke)), final, "failover.yml kept runs to the old owners")
        grant = [name for name in plan["publish"] + plan["current"] if name not in self.down]
        if kill == "mid_grant":
            self.write(grant[:1], final, "failover.yml grant (killed)")
            return "killed during the grant"
        self.write(grant, final, "failover.yml grant")
        if self.journal is not None:
            self.journal = failover.finish(self.journal, "done", p.format_time(now))
        return "moved %s" % sorted(planned["moved"])


class FleetModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        start = p.PlacementMap({"dag_a": "s1", "dag_b": "s1", "dag_c": "s2"}, 1, default="s3")
        self.fleet = Fleet(start)

    def _tick(self, data):
        self.fleet.clock += datetime.timedelta(seconds=data.draw(st.integers(1, 7200)))

    @rule(data=st.data(), pick=st.sampled_from(DAGS + [UNLISTED]), shape=st.sampled_from(["from", "dags", "both"]),
          force=st.booleans(), kill=st.sampled_from(KILL_POINTS))
    def fail_over(self, data, pick, shape, force, kill):
        """A failover of the DAGs of a DAG's owner (mostly), of listed DAGs, or both."""
        self._tick(data)
        control = self.fleet.control
        owner = control.owner(pick)
        source = owner if owner is not None and data.draw(st.integers(0, 4)) else data.draw(st.sampled_from(NAMES))
        to = data.draw(st.sampled_from([name for name in NAMES if name != source]))
        dags = None if shape == "from" else data.draw(st.lists(st.sampled_from(DAGS), min_size=1, max_size=3, unique=True))
        if shape == "dags":
            source = None
        since = None
        if force and source is not None and data.draw(st.booleans()):
            # after the moved DAGs' previous handovers (an earlier one is refused, and tested as such)
            moved = [key for key in (dags or DAGS + [p.DEFAULT_KEY]) if p.DEFAULT_KEY == key or control.owner(key) == source]
            previous = [control.last_handover(key).at_time for key in moved if control.last_handover(key) is not None]
            floor = max(previous + [START])
            room = int((self.fleet.clock - floor).total_seconds())
            if room > 1:
                since = p.format_time(self.fleet.clock - datetime.timedelta(seconds=data.draw(st.integers(1, room - 1))))
        outcome = self.fleet.failover(data.draw, to, source, dags, force, since, kill)
        event("failover: %s" % (outcome[:70] if outcome.startswith(("refused", "stopped")) else outcome.split(":")[0].split(" [")[0].split(" {")[0]))
        self.fleet.log.append("failover %s->%s %s force=%s since=%s kill=%s: %s"
                              % (source, to, dags, force, since, kill, outcome[:80]))

    @rule(data=st.data())
    def again_with_an_earlier_since(self, data):
        """The same forced failover once more with failover_catchup_since before its handover."""
        self._tick(data)
        journal = self.fleet.journal
        if journal is None or not journal.get("requests"):
            return
        req = journal["requests"][-1]
        if req["from"] is None:
            return
        last = [self.fleet.control.last_handover(key) for key in (req["dags"] or DAGS)]
        last = [h for h in last if h is not None]
        if not last:
            return
        earliest = min(h.at_time for h in last)
        since = p.format_time(earliest - datetime.timedelta(seconds=data.draw(st.integers(1, 3600))))
        outcome = self.fleet.failover(data.draw, req["to"], req["from"], req["dags"], True, since, None)
        event("again with an earlier since: %s" % outcome.split(":")[0].split(" [")[0])
        self.fleet.log.append("again %s->%s since=%s: %s" % (req["from"], req["to"], since, outcome[:80]))

    @rule(data=st.data())
    def site(self, data):
        self._tick(data)
        self.fleet.log.append("site: %s" % self.fleet.site())

    @precondition(lambda self: len(self.fleet.down) < 2)
    @rule(name=st.sampled_from(NAMES))
    def goes_down(self, name):
        self.fleet.down.add(name)
        self.fleet.log.append("%s down" % name)

    @rule(name=st.sampled_from(NAMES))
    def comes_back_fenced(self, name):
        if name in self.fleet.down:
            self.fleet.down.discard(name)
            self.fleet.fenced[name] = True  # a server restarts fenced (its unit writes the marker)
            self.fleet.log.append("%s back, fenced" % name)

    @invariant()
    def no_run_has_two_runners(self):
        self.fleet.check(dict(self.fleet.held), "at rest")

    def teardown(self):
        longest = max(len(self.fleet.control.history(key)) for key in DAGS + [p.DEFAULT_KEY])
        event("longest history: %s" % ("capped (floor)" if any(
            h and h[0].floor for h in self.fleet.control.handovers.values()) else longest))
        event("writes checked: %s" % ("0" if not self.fleet.writes else "1-20" if self.fleet.writes <= 20 else "over 20"))


FleetModel.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_no_run_has_two_runners = FleetModel.TestCase


# ----------------------------------------------------------------------------- the two findings, replayed


def _rotate(fleet, times):
    """dag_a and dag_b rotated s1 -> s2 -> s3 -> s1 ... (issue: the handover cap forgets history)."""
    order = ["s1", "s2", "s3"]
    for step in range(times):
        fleet.clock += datetime.timedelta(minutes=10)
        source, to = order[step % 3], order[(step + 1) % 3]
        outcome = fleet.failover(lambda strategy: [], to, source, ["dag_a", "dag_b"], False, None, None)
        assert outcome.startswith("moved"), outcome


def test_twelve_rotations_never_give_a_run_two_runners():
    fleet = Fleet(p.PlacementMap({"dag_a": "s1", "dag_b": "s1"}, 1))
    _rotate(fleet, 12)
    history = fleet.control.history("dag_a")
    assert len(history) <= p.MAX_HANDOVERS and fleet.writes > 0


def test_a_second_catchup_since_revokes_the_old_owner_first():
    fleet = Fleet(p.PlacementMap({"dag_a": "s1"}, 1))
    fleet.clock += datetime.timedelta(hours=2)
    assert fleet.failover(lambda strategy: [], "s2", "s1", None, True, None, None).startswith("moved")
    first = fleet.control.last_handover("dag_a").at_time
    fleet.clock += datetime.timedelta(minutes=5)
    since = p.format_time(first - datetime.timedelta(minutes=30))
    outcome = fleet.failover(lambda strategy: [], "s2", "s1", None, True, since, None)
    assert fleet.control.last_handover("dag_a").at == since, outcome

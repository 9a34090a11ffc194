# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which runs change owner between two maps, and in what order a map may be published.

A placement map decides *runs*, not DAGs: the run of a DAG due at time T belongs to the
installation that owned the DAG at T (placement.PlacementMap.owner_at: handovers, kept runs, the
floor of a capped history).  So every comparison of maps here is a comparison of the owners of
runs.  The owner of one key's runs (a DAG id, or DEFAULT_KEY for the DAGs no map lists) can
change only at the time of a handover or of a kept run, so a key is compared across maps at a
finite set of *points*: the far past, and for every such time t the run due exactly at t and the
runs due after t up to the next such time.  Two maps that agree at every point agree on every run.

* :func:`run_changes` - the runs whose owner differs between two maps, as due-time ranges;
* :func:`losers` - the installations that lose runs to another (the old owners of a failover);
* :func:`plan_publish` - who gets a new map first, so that no run has two runners at any moment.

Pure functions over PlacementMap objects; used by the placement_publish_plan filter
(site.yml, publish.yml, failover.yml) and by module_utils/failover.py.  Not shipped with the guard.
"""

from __future__ import annotations

import datetime

from ansible_collections.failback.airflow.plugins.module_utils import placement
from ansible_collections.failback.airflow.plugins.module_utils.placement import DEFAULT_KEY

_FAR_PAST = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


def _owner(history, current, due, exact):
    """The owner of the run due at *due* (``exact``), or of the runs due just after it (not ``exact``)."""
    for handover in history:
        if due < handover.at_time or (exact and due in handover.kept_times):
            return handover.source
    return current


class Ownership(object):
    """The owners of every key's runs in a set of maps, at each key's points.

    Equal maps (same placement) share one entry, so a fleet whose installations hold a few
    generations of a large map costs a few comparisons per DAG, not one per installation.
    """

    def __init__(self, maps):
        self._maps = []        # distinct placements
        self._slot = {}        # id(map) -> index in _maps
        for pmap in maps:
            if pmap is None or id(pmap) in self._slot:
                continue
            for index, seen in enumerate(self._maps):
                if seen.generation == pmap.generation and seen.same_placement(pmap):
                    self._slot[id(pmap)] = index
                    break
            else:
                self._slot[id(pmap)] = len(self._maps)
                self._maps.append(pmap)
        keys = set()
        for pmap in self._maps:
            keys.update(pmap.dags)
            keys.update(pmap.handovers)
        keys.discard(DEFAULT_KEY)
        #: every DAG id any map lists or remembers, then DEFAULT_KEY
        self.keys = sorted(keys) + [DEFAULT_KEY]
        self._times = {}
        self._vectors = {}

    def slot(self, pmap):
        """The index of *pmap*'s placement among the distinct ones (equal maps share it)."""
        return self._slot[id(pmap)]

    def times(self, key):
        """The sorted due times at which an owner of *key*'s runs can change in any of the maps."""
        found = self._times.get(key)
        if found is None:
            moments = set()
            for pmap in self._maps:
                for handover in pmap.history(key):
                    moments.add(handover.at_time)
                    moments.update(handover.kept_times)
            found = self._times[key] = sorted(moments)
        return found

    def vector(self, pmap, key):
        """Owners of *key*'s runs in *pmap* at the key's points: far past, then (exactly t, just after t) per time."""
        slot = self.slot(pmap)
        found = self._vectors.get((slot, key))
        if found is None:
            pmap = self._maps[slot]
            history, current, times = pmap.history(key), pmap.owner(key), self.times(key)
            if not history:
                found = (current,) * (1 + 2 * len(times))
            else:
                points = [_owner(history, current, _FAR_PAST, False)]
                for moment in times:
                    points.append(_owner(history, current, moment, True))
                    points.append(_owner(history, current, moment, False))
                found = tuple(points)
            self._vectors[(slot, key)] = found
        return found

    def bounds(self, key, index):
        """``(since, until)`` of the runs at point *index* (None: open), as map times."""
        times = self.times(key)
        if index == 0:
            return None, times[0] if times else None
        moment = times[(index - 1) // 2]
        if index % 2:
            return moment, moment
        following = (index - 1) // 2 + 1
        return moment, times[following] if following < len(times) else None


def run_changes(before, after):
    """The runs whose owner differs between *before* and *after*.

    Returns ``{key: [{"from": old owner or None, "to": new owner or None, "since": time or None,
    "until": time or None}, ...]}`` (keys are DAG ids and DEFAULT_KEY): the runs due from *since*
    (None: from the beginning) up to *until* (None: from then on; equal to *since* for one kept
    run) went from *from* to *to*.  None as an owner is nobody.
    """
    table = Ownership([before, after])
    found = {}
    for key in table.keys:
        old, new = table.vector(before, key), table.vector(after, key)
        if old == new:
            continue
        segments = []
        for index, (was, now) in enumerate(zip(old, new)):
            if was == now:
                continue
            since, until = table.bounds(key, index)
            last = segments[-1] if segments else None
            if last is not None and last["index"] == index - 1 and (last["from"], last["to"]) == (was, now):
                last.update(until=until, index=index)
            else:
                segments.append({"from": was, "to": now, "since": since, "until": until, "index": index})
        found[key] = [dict((k, placement.format_time(v) if isinstance(v, datetime.datetime) else v)
                           for k, v in segment.items() if k != "index") for segment in segments]
    return found


def losers(before, after, exclude=()):
    """Installations that lose runs to another installation between the two maps (sorted).

    Runs that go to nobody (a capped history's floor, a DAG removed from the map) need no one
    to be asked or drained for them, so they do not count.
    """
    names = set()
    for segments in run_changes(before, after).values():
        names.update(s["from"] for s in segments if s["from"] is not None and s["to"] is not None)
    return sorted(names - set(exclude))


def installation_run_changes(before, after, installation, dag_ids=()):
    """The DAGs some of whose runs *installation* loses (``lost``) or gains (``gained``) between two maps.

    Unlike placement.installation_changes (owners of DAGs, for pausing), this counts every run: a
    handover moved back by failover_catchup_since, kept runs, a floor.  *dag_ids* (the DAGs the
    installation knows) stand for themselves when a map lists them or remembers their history,
    else for the DAGs no map lists (DEFAULT_KEY).
    """
    changes = run_changes(before, after)
    lost, gained = set(), set()
    for key, segments in changes.items():
        if key == DEFAULT_KEY:
            continue
        if any(s["from"] == installation for s in segments):
            lost.add(key)
        if any(s["to"] == installation for s in segments):
            gained.add(key)
    default = changes.get(DEFAULT_KEY, [])
    listed = set(before.dags) | set(after.dags) | set(before.handovers) | set(after.handovers)
    for dag_id in set(dag_ids) - listed:
        if any(s["from"] == installation for s in default):
            lost.add(dag_id)
        if any(s["to"] == installation for s in default):
            gained.add(dag_id)
    return {"lost": sorted(lost), "gained": sorted(gained)}


def describe_run_changes(changes, limit=10):
    """People's words for :func:`run_changes`: ``dag_a runs due from T: server-1 -> server-2``."""
    lines = []
    for key in sorted(changes, key=lambda k: (k == DEFAULT_KEY, k)):
        what = "the DAGs no map lists" if key == DEFAULT_KEY else key
        for segment in changes[key]:
            since, until = segment["since"], segment["until"]
            if since is not None and since == until:
                when = "the run due %s" % since
            elif since is None and until is None:
                when = "every run"
            elif since is None:
                when = "runs due before %s" % until
            elif until is None:
                when = "runs due from %s" % since
            else:
                when = "runs due from %s to %s" % (since, until)
            lines.append("%s %s: %s -> %s" % (what, when, segment["from"] or "nobody", segment["to"] or "nobody"))
    if len(lines) > limit:
        lines = lines[:limit] + ["%d more" % (len(lines) - limit)]
    return lines


def revoke_map(before, after):
    """The revoke stage between *before* and *after* for a fleet that pulls its map from one authority.

    When every guard reads the same object, the revoke-first order of plan_publish cannot be had by
    publishing to some installations first: the fleet sees one map. So the authority gets this map
    first: every run whose owner differs between the two maps belongs to nobody in it, and every
    run that keeps its owner keeps it - above all the old owners' runs due before the handover and
    the runs they keep, which they are finishing. Then, once no old owner can still decide with
    *before* (it confirmed this map, or its lease ran out), *after* grants. The map has *after*'s
    generation and ``stage: revoke`` (placement.check_publish lets the grant of the same generation
    replace it, never the other way).

    A key (DAG id, or DEFAULT_KEY) whose runs change owner loses its current owner, and its history
    is *after*'s up to the first change, closed by a handover at that time to whoever owns the runs
    just before it, plus one entry per installation that keeps runs due later: so the runs due
    after the first change that keep their owner in both maps - other than kept ones - are revoked
    too for the stage (safe; the new owner's catch-up runs them). Returns None when no run changes
    owner. Every point of the result is checked against both maps; PlacementError if one is not
    nobody's or the common owner's.
    """
    changes = run_changes(before, after)
    # Runs that go to nobody in *after* (a folded history, a DAG taken off the map) need no stage.
    changes = dict((key, segments) for key, segments in changes.items()
                   if any(segment["to"] is not None for segment in segments))
    if not changes:
        return None
    dags, default, handovers = dict(after.dags), after.default, dict(after.handovers)
    for key, segments in changes.items():
        starts = [segment["since"] for segment in segments if segment["to"] is not None]
        first = None if None in starts else min(placement.parse_time(t) for t in starts)
        if key == DEFAULT_KEY:
            default = None
        else:
            dags[key] = None  # listed, owned by nobody: the default owner must not take it either
        history = after.history(key)
        if first is None:
            handovers.pop(key, None)
            continue

        def unchanged(handover, moment, key=key, first=first):
            return moment < first or before.owner_at(key, moment) == after.owner_at(key, moment) == handover.source

        # after's history up to the first change, without the kept runs that change owner.
        kept_history = [placement.Handover(h.at, h.source, [k for k in h.kept_times if unchanged(h, k)])
                        for h in history if h.at_time <= first]
        closing = []
        owner_before = after.owner_at(key, first - datetime.timedelta(microseconds=1))
        last = kept_history[-1] if kept_history else None
        if owner_before is not None and not (last is not None and last.at_time == first and last.source == owner_before):
            closing.append(placement.Handover(first, owner_before))
        elif owner_before is None and not kept_history:
            closing.append(placement.Handover(first, None))  # a floor: nobody's runs before the first change
        # Kept runs (being finished) of later handovers that keep their owner.
        kept_later = {}
        for handover in history:
            if handover.at_time > first and handover.source is not None:
                for moment in handover.kept_times:
                    if unchanged(handover, moment):
                        kept_later.setdefault(handover.source, []).append(moment)
        closing += [placement.Handover(first, source, sorted(times)) for source, times in sorted(kept_later.items())]
        handovers[key] = placement.capped(kept_history + closing)
    revoke = after.replace(dags=dags, default=default, handovers=handovers, stage="revoke")
    table = Ownership([before, after, revoke])
    for key in table.keys:
        for index, (was, will, now) in enumerate(zip(table.vector(before, key), table.vector(after, key),
                                                     table.vector(revoke, key))):
            if now is not None and not (now == was == will):
                since, until = table.bounds(key, index)
                raise placement.PlacementError(
                    "cannot publish generation %d revoke first through one map: in the revoke stage the runs of %s due "
                    "from %s to %s would belong to %s (before: %s, after: %s)" % (
                        after.generation, key, since or "the beginning", until or "now on", now, was or "nobody",
                        will or "nobody"))
    return revoke


def plan_publish(new, held, installations, force=False, known=(), last=()):
    """Which installations may receive map *new*, and in what order, so no run gets two runners.

    *held* maps each reachable installation to ``(map it holds or None, fenced)``; installations
    of *installations* missing from it are unreachable.  *known* are other maps that were in force
    (e.g. the controller's map before a failover): evidence of what an unreachable installation
    may still run.  *last* are installations never put in the revoke group (a failover's new owner:
    it is granted only once the old owners said which runs they keep).  An installation *runs* the
    runs its map gives it (nothing when fenced or
    without a map); it *gains* the runs *new* gives it that it does not run now, and *loses* the
    runs it runs now that *new* gives to another installation or to nobody.

    * ``revoke``: reachable installations that lose runs and gain none that another installation
      runs now; they get *new* first, together, and nothing else is published before all of them
      hold it (a failed revoke stops the publish).
    * ``publish``: the other reachable installations that need *new* (or a fence lifted): each
      gains only runs that nobody runs now, or that only revoke installations run now.
    * ``blocked``: installations that must not get *new* now, with the DAGs whose runs they would
      gain and who may still run them: an unreachable installation that a known map gives those
      runs (unless *force*: then they are in ``forced``), or a reachable one that gets the map only
      later in this publish or not at all (a chain or a swap of runs: publish again once it holds
      the map).
    * ``current``: reachable installations that already hold *new*, unfenced.
    * ``refused``: installations that hold a newer map, or another map of the same generation
      (check_publish): the map to publish is behind, and nothing may be published at all.
    * ``gains`` / ``loses``: the keys (DAG ids, DEFAULT_KEY last) of each installation's runs that
      change.
    """
    names = sorted(placement.check_installations(installations))
    unreachable = sorted(name for name in names if name not in held)
    refused = {}
    for name, (pmap, _fenced) in sorted(held.items()):
        try:
            placement.check_publish(pmap, new)
        except placement.PlacementError as exc:
            refused[name] = "%s: %s" % (name, exc)
    reachable = sorted(held)
    running = dict((name, None if fenced else pmap) for name, (pmap, fenced) in held.items())
    evidence = [pmap for pmap, _fenced in held.values() if pmap is not None] + [pmap for pmap in known if pmap is not None]
    table = Ownership([new] + [pmap for pmap in running.values() if pmap is not None] + evidence)
    evidence = list(dict((table.slot(pmap), pmap) for pmap in evidence).values())

    gains, loses = {}, {}     # name -> {key: [point index, ...]}
    depends = {}              # name -> {key: set(reachable installations that run a gained run now)}
    contested = {}            # name -> {key: set(unreachable installations that may run a gained run)}
    for key in table.keys:
        new_owners = table.vector(new, key)
        now_owners = dict((name, table.vector(running[name], key)) for name in reachable if running[name] is not None)
        evidence_owners = [table.vector(pmap, key) for pmap in evidence]
        involved = (set(new_owners) | set().union(*[set(v) for v in now_owners.values()])) & set(reachable)
        for name in sorted(involved):
            mine = now_owners.get(name)
            gained = [i for i, owner in enumerate(new_owners) if owner == name and (mine is None or mine[i] != name)]
            lost = [i for i, owner in enumerate(mine or ()) if owner == name and new_owners[i] != name]
            if lost:
                loses.setdefault(name, {})[key] = lost
            if not gained:
                continue
            gains.setdefault(name, {})[key] = gained
            others = set(other for other, owners in now_owners.items()
                         if other != name and any(owners[i] == other for i in gained))
            if others:
                depends.setdefault(name, {})[key] = others
            away = set(other for other in unreachable if other != name
                       and any(owners[i] == other for owners in evidence_owners for i in gained))
            if away:
                contested.setdefault(name, {})[key] = away

    blocked, forced = {}, {}
    for name, entries in contested.items():
        (forced if force else blocked)[name] = entries
    # The revoke installations: they lose runs and take none that another installation runs now.
    revoke = [name for name in reachable
              if name not in blocked and name in loses and name not in depends and name not in last]
    for name in reachable:
        if name in blocked or name in revoke:
            continue
        waiting = dict((key, others - set(revoke)) for key, others in depends.get(name, {}).items())
        waiting = dict((key, others) for key, others in waiting.items() if others)
        if waiting:
            blocked[name] = waiting
            forced.pop(name, None)
    publish, current = [], []
    for name in reachable:
        if name in blocked or name in revoke:
            continue
        pmap, fenced = held[name]
        if pmap is None or fenced or pmap.to_data() != new.to_data():
            publish.append(name)
        else:
            current.append(name)

    def keys(entries):
        return sorted((k for k in entries if k != DEFAULT_KEY)) + ([DEFAULT_KEY] if DEFAULT_KEY in entries else [])

    def listed(entries):
        return dict((name, dict((k, sorted(v)) for k, v in contested_keys.items()))
                    for name, contested_keys in entries.items())

    return dict(revoke=revoke, publish=publish, current=current, unreachable=unreachable, refused=refused,
                blocked=listed(blocked), forced=listed(forced),
                gains=dict((name, keys(entries)) for name, entries in gains.items() if name not in blocked),
                loses=dict((name, keys(entries)) for name, entries in loses.items() if name not in blocked))


def describe_plan(plan):
    """One line per decision of plan_publish, for people."""
    unreachable = set(plan["unreachable"])

    def keys(entries):
        described = []
        for key, who in sorted(entries.items(), key=lambda item: (item[0] == DEFAULT_KEY, item[0])):
            what = "runs of the DAGs no map lists" if key == DEFAULT_KEY else "runs of %s" % key
            away = [name for name in who if name in unreachable]
            here = [name for name in who if name not in unreachable]
            reasons = []
            if away:
                reasons.append("%s may still run them (unreachable)" % " and ".join(away))
            if here:
                reasons.append("%s still runs them and gets the map only later: publish again once it holds it"
                               % " and ".join(here))
            described.append("%s (%s)" % (what, "; ".join(reasons)))
        return ", ".join(described)
    lines = ["REFUSED: %s" % message for _name, message in sorted(plan["refused"].items())]
    if plan["revoke"]:
        lines.append("revoke first: %s" % ", ".join(plan["revoke"]))
    if plan["publish"]:
        lines.append("then publish to: %s" % ", ".join(plan["publish"]))
    if plan["current"]:
        lines.append("already current: %s" % ", ".join(plan["current"]))
    if plan["unreachable"]:
        lines.append("unreachable (not published): %s" % ", ".join(plan["unreachable"]))
    for name, entries in sorted(plan["forced"].items()):
        lines.append("forced for %s: %s; unreachable servers come back fenced" % (name, keys(entries)))
    for name, entries in sorted(plan["blocked"].items()):
        lines.append("NOT published to %s: it would gain %s" % (name, keys(entries)))
    return lines

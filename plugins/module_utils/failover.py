# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side of a failover: plan the move, commit it with its journal, finish it.

A failover changes the controller's map in one step (compare-and-swap on its generation), then
publishes it revoke first.  Between the two, the run may die.  The *journal*
(``<map stem>.failover.json`` next to the map) records what the failover moved (the map before
and after) and whether it finished, so that the next ``failover.yml`` run resumes it: the moved
DAGs are paused where they left and unpaused where they went even when the map itself no longer
changes.  It is also the record of the last failover.

Pure functions over placement maps and plain data; no Ansible import.
"""

from __future__ import annotations

import datetime
import json
import os

from ansible_collections.failback.airflow.plugins.module_utils import placement, placement_plan

COMMITTED = "committed"
DONE = "done"


def journal_path(map_path):
    """``<dir>/<stem>.failover.json`` next to the real controller map."""
    real = os.path.realpath(map_path)
    stem = os.path.basename(real)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return os.path.join(os.path.dirname(real), stem + ".failover.json")


#: A journal holds two maps and the requests: at most a few maps' worth.
JOURNAL_MAX_BYTES = 4 * placement.MAX_MAP_BYTES


def read_journal(path):
    """The journal as a dict, or None when there is none; a damaged journal is an error.

    Read without following a symbolic link and refused at once when it is not a regular file (a
    FIFO would block the run).
    """
    text = placement.read_text(path, "failover journal", follow_symlinks=False, limit=JOURNAL_MAX_BYTES)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise placement.PlacementError("failover journal %s cannot be read (%s): move it away to start afresh" % (path, exc))
    if not isinstance(data, dict) or data.get("state") not in (COMMITTED, DONE):
        raise placement.PlacementError("failover journal %s is not a journal this collection wrote" % path)
    return data


def write_journal(path, journal):
    """Replace the journal atomically (a symbolic link in its place is replaced, never written through)."""
    placement.atomic_write(path, json.dumps(journal, indent=2, sort_keys=True) + "\n", mode=0o644)


def request(to, from_=None, dags=None, since=None):
    """The failover request as plain data (validated later by placement.move).

    *since* (failover_catchup_since): the moved DAGs' runs due from then on are the new owner's
    (the handover is put there instead of now); it needs *from_*.
    """
    if since in ("", None):
        since = None
    else:
        if from_ is None:
            raise placement.PlacementError("failover_catchup_since needs failover_from: whose runs from then on move?")
        since = placement.format_time(placement.parse_time(since, "failover_catchup_since", strict=True))
    return {"to": to, "from": from_, "dags": placement.parse_dag_list(dags, "failover_dags"), "since": since}


def plan(current, journal, req, installations, updated_by, now=None):
    """Plan a failover of *req* against the controller's *current* map.

    Returns a dict:
      ``before``      the map the moved DAGs left (the journal's, when resuming an unfinished failover);
      ``after``       the map to publish (a new generation when something moves, else *current*);
      ``commit``      whether the controller's map must be written;
      ``moved``       ``{dag_or_@default: {"from": old, "to": new}}`` between ``before`` and ``after``;
      ``runs_moved``  the runs whose owner changes between ``before`` and ``after`` (placement_plan.run_changes):
                      also a handover moved back by failover_catchup_since, or history folded into a floor;
      ``old_owners``  the installations that lose runs to another one: revoked, asked for late runs, drained;
      ``resumed``     the unfinished journal being finished, or None;
      ``stale_journal`` an unfinished journal that no longer matches the controller's map (it was changed
                      some other way since): its moves are not resumed, and the summary says so.
    """
    target, _moved_now = placement.move(current, req["to"], req.get("from"), req.get("dags"), installations)
    since = req.get("since")
    if since is not None:
        # DAGs moved by an earlier run of the same failover get their handover moved back too.
        listed = req.get("dags")
        moved_before = [key for key in sorted(set(current.dags) | set(current.handovers)) + [placement.DEFAULT_KEY]
                        if (listed is None or key in listed) and _owner(current, key) == req["to"]
                        and getattr(current.last_handover(key), "source", None) == req["from"]]
        target = placement.move_cut(target, moved_before, req["from"], since)
    after = placement.stamp(current, target, updated_by, now=now, cut=since)
    resumed = stale = None
    before = current
    if journal is not None and journal.get("state") == COMMITTED:
        if journal.get("generation") == current.generation and journal.get("after") == current.to_data():
            resumed = journal
            before = placement.from_data(journal["before"], source="failover journal (map before)")
        else:
            stale = journal
    moved = dict((dag, {"from": old, "to": new}) for dag, (old, new) in placement.changes(before, after).items())
    runs_moved = placement_plan.run_changes(before, after)
    return {"before": before, "after": after, "commit": after is not current, "moved": moved, "runs_moved": runs_moved,
            "old_owners": placement_plan.losers(before, after, exclude=[req["to"]]),
            "resumed": resumed, "stale_journal": stale}


def _owner(pmap, key):
    return pmap.default if key == placement.DEFAULT_KEY else pmap.owner(key)


def keep(current, journal, kept, updated_by, now=None, before=None, running=None, held=None):
    """The map where each old owner keeps the runs it started after the handover.

    *kept* is ``{old_owner: {dag_id: [run_after, ...]}}`` (the late runs airflow_runs_info found).
    A late run stays with its old owner only when keeping it moves no run away from anyone who
    may run it now: the old owner must have owned it in *before* (the map the failover started
    from, under which it started the run), and no other installation may run it by the map it
    holds now (*running*: ``{installation: PlacementMap or None}``, None for one that runs nothing).
    Such a run stays with its current owner and is returned as refused, with the reason.

    *held* is ``{old_owner: time}`` for the old owners that did not confirm the revoke with a lease
    source (airflow_placement_source s3): their guards may decide with *before* until *time* (their
    lease certainly over), so the runs of the DAGs this failover moved away from them due before
    *time* stay theirs (placement.hold_until) - unless an installation other than the old owner may
    run such a run by the map it holds now; that DAG is then refused whole.

    Returns ``(new_map, new_journal, refused)``: a new generation (or *current* itself when there is
    nothing new to keep), the journal of the failover updated to it, so a later run still resumes
    it, and ``{old_owner: [{"dag_id", "run_after", "reason"}]}``.
    """
    refused = {}
    target = current
    for source, until in sorted((held or {}).items()):
        until_time = placement.parse_time(until, "lease end of %s" % source)
        allowed = []
        for key in _moved_away(before, current, source):
            last = current.last_handover(key)
            if last.at_time >= until_time:
                continue
            moments = (last.at_time, until_time - datetime.timedelta(microseconds=1))
            others = sorted(name for name, pmap in (running or {}).items()
                            if name != source and pmap is not None
                            and any(pmap.owner_at(key, moment) == name for moment in moments))
            if others:
                refused.setdefault(source, []).append(
                    {"dag_id": key, "run_after": placement.format_time(last.at_time),
                     "reason": "%s runs its runs due from then on by the map it holds" % " and ".join(others)})
            else:
                allowed.append(key)
        if allowed:
            target = placement.hold_until(target, allowed, source, until_time)
    for source in sorted(kept):
        allowed = {}
        for dag_id in sorted(kept[source]):
            for due in kept[source][dag_id]:
                reason = None
                if before is not None and before.owner_at(dag_id, due) != source:
                    reason = "it was not %s's before this failover but %s's" % (source, before.owner_at(dag_id, due))
                others = sorted(name for name, pmap in (running or {}).items()
                                if name != source and pmap is not None and pmap.owner_at(dag_id, due) == name)
                if reason is None and others:
                    reason = "%s runs it now by the map it holds" % " and ".join(others)
                if reason is None:
                    allowed.setdefault(dag_id, []).append(due)
                else:
                    refused.setdefault(source, []).append(
                        {"dag_id": dag_id, "run_after": placement.format_time(due), "reason": reason})
        if allowed:
            target = placement.keep_runs(target, allowed, source)
    after = placement.stamp(current, target, updated_by, now=now)
    if after is current or journal is None:
        return after, journal, refused
    updated = dict(journal, generation=after.generation, after=after.to_data(), updated_at=now or placement.utc_now())
    return after, updated, refused


def _moved_away(before, current, source):
    """The keys (DAG ids, DEFAULT_KEY) whose latest handover in *current* is away from *source* and
    differs from *before*'s: the ones a failover from *before* moved away from *source*."""
    found = []
    for key in sorted(set(current.handovers)):
        last = current.last_handover(key)
        if last is not None and last.source == source and (before is None or before.history(key) != current.history(key)):
            found.append(key)
    return found


def journal_for(planned, req, updated_by, now):
    """The journal written with the commit (or when resuming): state committed."""
    previous = planned["resumed"] or {}
    return {
        "state": COMMITTED,
        "generation": planned["after"].generation,
        "before": planned["before"].to_data(),
        "after": planned["after"].to_data(),
        "requests": previous.get("requests", []) + [req],
        "by": updated_by,
        "started_at": previous.get("started_at", now),
        "updated_at": now,
    }


def finish(journal, summary, now):
    """The journal once every reachable installation holds the map and the hooks ran."""
    done = dict(journal)
    done.update(state=DONE, finished_at=now, summary=summary)
    return done


def _runs(runs, limit=10):
    shown = ["%s %s" % (run.get("dag_id"), run.get("run_after")) for run in runs[:limit]]
    if len(runs) > limit:
        shown.append("%d more" % (len(runs) - limit))
    return ", ".join(shown)


def describe_catchup(catchup, check_mode=False):
    """The catch-up part of the summary: runs re-run on the new owner, kept by old owners, left alone."""
    if not catchup:
        return []
    parts = []
    if catchup.get("disabled"):
        parts.append("catch-up off (%s)" % catchup["disabled"])
    kept = catchup.get("kept") or {}
    for source in sorted(kept):
        runs = [{"dag_id": dag, "run_after": due} for dag in sorted(kept[source]) for due in kept[source][dag]]
        if runs:
            parts.append("kept by %s (it had started them): %s" % (source, _runs(runs)))
    rerun = catchup.get("rerun") or []
    if rerun:
        parts.append("%s %d run(s) nobody ran: %s" % ("would re-run" if check_mode else "re-ran", len(rerun), _runs(rerun)))
    elif "rerun" in catchup:
        parts.append("no run to catch up")
    left = catchup.get("left") or []
    reasons = {}
    for run in left:
        reasons.setdefault(run.get("reason", "?"), []).append(run)
    for reason in sorted(reasons):
        parts.append("LEFT %d run(s) (%s): %s" % (len(reasons[reason]), reason, _runs(reasons[reason])))
    for note in catchup.get("notes") or []:
        parts.append(note)
    return parts


def summarize(moved, generation, to, publish_plan, held, fenced=(), check_mode=False, catchup=None, runs_moved=None):
    """The failover's summary line and the installations that do not hold *generation*.

    *held* maps installations the run reached to the generation they hold now; *fenced* are old
    owners that could not take the map and were fenced instead (forced failover); *catchup* is
    what the drain and catch-up did (see describe_catchup); *runs_moved* the runs that changed
    owner (placement_plan.run_changes), told when no DAG changed owner.
    """
    names = sorted(dag for dag in moved if dag != placement.DEFAULT_KEY)
    parts = []
    if moved:
        what = ", ".join(names + (["the default owner"] if placement.DEFAULT_KEY in moved else []))
        parts.append("moved %d: %s -> %s" % (len(names), what, to))
    elif runs_moved:
        parts.append("no DAG changed owner, runs did: %s" % ", ".join(placement_plan.describe_run_changes(runs_moved)))
    else:
        parts.append("nothing to move: %s already owns them" % to)
    parts.append("placement map generation %d" % generation)
    behind = sorted(name for name, gen in held.items() if gen != generation)
    if publish_plan.get("unreachable"):
        parts.append("unreachable (stale map, fenced on restart): %s" % ", ".join(publish_plan["unreachable"]))
    if fenced:
        parts.append("fenced, could not take the map: %s" % ", ".join(sorted(fenced)))
    if publish_plan.get("blocked"):
        parts.append("not published (would be a second owner): %s" % ", ".join(sorted(publish_plan["blocked"])))
    if behind and not check_mode:
        parts.append("NOT at generation %d: %s" % (generation, ", ".join(behind)))
    parts.extend(describe_catchup(catchup, check_mode))
    return ("[check mode, nothing written] " if check_mode else "") + "; ".join(parts), behind

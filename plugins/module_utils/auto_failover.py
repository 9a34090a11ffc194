# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When the opt-in automatic failover moves an owner's DAGs: the rules of the fleet watcher.

The event source ``failback.airflow.fleet_watch`` (extensions/eda/plugins/event_source/) reads
each installation's health every ``interval`` seconds and asks :class:`Decider`; a decision is an
event the rulebook turns into a forced ``failover.yml``. The rules, one place:

* an **owner is down** when its last ``probes`` readings all failed (no answer, or its metadata
  database or scheduler not healthy) and it has been failing for at least ``window`` seconds (since
  the first failed reading after a healthy one);
* only the pairs the operator armed move (``{owner: new owner}``): the new owner must have answered
  healthy (metadata database) within ``window`` seconds, or nothing happens and the reason is kept;
* an owner that owns nothing by the controller's map is never moved (after its failover it owns
  nothing, so there is **no automatic failback**: that stays a person's planned switchover);
* after a decision for an owner, none for it until ``cooldown`` seconds have passed (an owner that
  flaps - down, up, down - is moved at most once per cooldown);
* the catch-up starts at the last reading that saw the owner healthy (``since``), or none when it was
  never seen healthy since the watcher started (``since`` null: runs due before the handover stay the
  old owner's and are listed).

Pure Python, no Ansible import; the state is plain data so the event source can keep it in a file.
"""

from __future__ import annotations

import datetime

#: Setting names and defaults (extensions/eda/rulebooks/auto_failover.yml documents them).
DEFAULTS = {"interval": 10, "probes": 3, "window": 30, "cooldown": 3600, "timeout": 5}
MINIMUM = {"interval": 1, "probes": 1, "window": 0, "cooldown": 0, "timeout": 1}
#: How many decisions and readings per installation the state keeps.
KEEP_DECISIONS = 20


def settings_problems(settings):
    """What is wrong with the watcher's *settings* (sentences naming the key and value)."""
    found = []
    pairs = settings.get("pairs")
    if not isinstance(pairs, dict) or not pairs:
        found.append("pairs must name at least one owner and its new owner, {owner: new_owner}, got %r" % (pairs,))
    else:
        for owner, target in sorted(pairs.items()):
            if not isinstance(target, str) or not target or target == owner:
                found.append("pairs: %s -> %r: give another installation's name" % (owner, target))
            elif pairs.get(target) == owner:
                found.append("pairs: %s -> %s and %s -> %s: automatic failback is not allowed (fail back by hand, "
                             "with a planned failover.yml)" % (owner, target, target, owner))
    for key, minimum in sorted(MINIMUM.items()):
        value = settings.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            found.append("%s is %r: give a number of at least %s" % (key, value, minimum))
    return found


def _iso(moment):
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reading(health, error=None):
    """``(healthy_as_owner, healthy_as_target, reason)`` from Airflow's /api/v2/monitor/health answer
    (a dict) or the *error* that kept it from answering."""
    if error is not None or not isinstance(health, dict):
        return False, False, error or "no answer"
    status = dict((name, health.get(name).get("status") if isinstance(health.get(name), dict) else None)
                  for name in ("metadatabase", "scheduler"))
    database = status["metadatabase"] == "healthy"
    scheduler = status["scheduler"] == "healthy"
    reason = ", ".join("%s %s" % (name, value or "unknown") for name, value in sorted(status.items()) if value != "healthy")
    return database and scheduler, database, reason or "healthy"


def _numbers(value):
    """A ``{name: epoch seconds}`` mapping from saved state, or {} when it is anything else."""
    if not isinstance(value, dict):
        return {}
    return dict((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, (int, float))
                and not isinstance(v, bool))


def _valid_decision(item):
    return isinstance(item, dict) and isinstance(item.get("from"), str) and item.get("action") in ("failover", "hold") \
        and isinstance(item.get("at_epoch"), (int, float))


class Decider(object):
    """The watcher's memory (readings, decisions) and its rules; *state* is what :meth:`state` returned.

    Saved state that is damaged is dropped piece by piece, never trusted. Readings (and so the last
    healthy reading and the failing streak) are kept only when the state was written less than three
    intervals before *now*: a watcher that was stopped for a while did not see what happened meanwhile,
    so its catch-up may not start at a reading from before the gap. The decisions and the last failover
    of each owner are always kept (the cooldown survives a restart).
    """

    def __init__(self, settings, state=None, now=None):
        self.settings = dict(DEFAULTS, **settings)
        state = state if isinstance(state, dict) else {}
        updated = state.get("updated_at")
        fresh = now is None or (isinstance(updated, (int, float)) and 0 <= now - updated <= 3 * self.settings["interval"])
        readings = state.get("readings") if fresh and isinstance(state.get("readings"), dict) else {}
        self.readings = dict((name, [r for r in items if isinstance(r, dict) and isinstance(r.get("at"), (int, float))])
                             for name, items in readings.items() if isinstance(name, str) and isinstance(items, list))
        self.last_healthy = _numbers(state.get("last_healthy")) if fresh else {}
        self.failing_since = _numbers(state.get("failing_since")) if fresh else {}
        decisions = state.get("decisions") if isinstance(state.get("decisions"), list) else []
        self.decisions = [d for d in decisions if _valid_decision(d)]
        self.last_failover = _numbers(state.get("last_failover"))
        for decision in self.decisions:
            if decision["action"] == "failover":
                self.last_failover[decision["from"]] = max(self.last_failover.get(decision["from"], 0), decision["at_epoch"])

    def observe(self, name, now, owner_ok, target_ok, reason):
        """Record one reading of installation *name* at *now* (epoch seconds)."""
        items = self.readings.setdefault(name, [])
        items.append({"at": now, "owner_ok": bool(owner_ok), "target_ok": bool(target_ok), "reason": reason})
        del items[:-max(int(self.settings["probes"]), 2)]
        if owner_ok:
            self.last_healthy[name] = now
            self.failing_since.pop(name, None)
        else:
            self.failing_since.setdefault(name, now)

    def _down(self, name, now):
        items = self.readings.get(name) or []
        probes = int(self.settings["probes"])
        if len(items) < probes:
            return None
        last = items[-probes:]
        if any(item["owner_ok"] for item in last) or now - self.failing_since.get(name, now) < self.settings["window"]:
            return None
        return sorted(set(item["reason"] for item in last))

    def _target_up(self, name, now):
        items = self.readings.get(name) or []
        # a round reads every installation at once and takes at most `timeout`: a reading of this round or the last
        fresh = max(self.settings["window"], self.settings["interval"] * 2) + self.settings["timeout"]
        return bool(items) and items[-1]["target_ok"] and now - items[-1]["at"] <= fresh

    def decide(self, now, owns):
        """The decisions at *now* for the armed pairs; *owns* is ``{installation: number of DAGs (or runs'
        keys) the controller's map gives it}``. Each is ``{"action": "failover" | "hold", "from", "to",
        "since", "reasons", "at"}``; "hold" says why a down owner was not moved (kept, not acted on)."""
        found = []
        for owner, target in sorted(self.settings["pairs"].items()):
            reasons = self._down(owner, now)
            if reasons is None:
                continue
            decision = {"from": owner, "to": target, "at": _iso(now), "reasons": reasons,
                        "since": _iso(self.last_healthy[owner]) if owner in self.last_healthy else None}
            last = self.last_failover.get(owner)
            if not owns.get(owner):
                continue  # nothing to move (also: after its failover - no automatic failback)
            if last is not None and now - last < self.settings["cooldown"]:
                decision.update(action="hold", why="cooldown: %s was failed over at %s" % (owner, _iso(last)))
            elif not self._target_up(target, now):
                items = self.readings.get(target) or []
                decision.update(action="hold", why="the new owner %s is not healthy (%s)" % (
                    target, items[-1]["reason"] if items else "not read yet"))
            else:
                decision.update(action="failover")
            decision["at_epoch"] = now
            if decision["action"] == "failover":
                self.last_failover[owner] = now
            previous = self.decisions[-1] if self.decisions else None
            if decision["action"] == "hold" and previous is not None and previous.get("from") == owner \
                    and previous.get("action") == "hold" and previous.get("why") == decision["why"]:
                continue  # the same hold again: keep the first one only
            self.decisions.append(decision)
            del self.decisions[:-KEEP_DECISIONS]
            found.append(decision)
        return found

    def state(self):
        return {"readings": self.readings, "last_healthy": self.last_healthy, "failing_since": self.failing_since,
                "decisions": self.decisions, "last_failover": self.last_failover}

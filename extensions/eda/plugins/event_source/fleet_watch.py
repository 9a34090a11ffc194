# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failback.airflow.fleet_watch - an Event-Driven Ansible event source that watches the fleet.

Every ``interval`` seconds it reads each installation's health (Airflow's ``/api/v2/monitor/health``,
which needs no login) and the controller's placement map, asks the rules of
``plugins/module_utils/auto_failover.py`` and puts one event per decision on the queue::

    {"failback_watch": {"action": "failover" | "hold", "from": "cluster-1", "to": "server-1",
                        "since": "2026-12-06T02:00:10Z" or "", "reasons": [...], "why": "...", "at": "...",
                        "map": the controller's placement map (absolute)}}

The rulebook ``failback.airflow.auto_failover`` runs ``failover.yml`` (forced, with catch-up since
the last healthy reading) for a ``failover`` event; ``hold`` events say why a down owner was not
moved. The watcher's readings and decisions are kept in the state file (atomically replaced each
round, read back after a restart so the cooldown survives it); ``status.yml`` shows them.

Arguments:
  config: path of a JSON file - {"map": controller's placement map, "state": state file,
          "installations": {name: {"health_url": URL}}, "pairs": {owner: new owner}, "interval",
          "probes", "window", "cooldown", "timeout", "catchup_since": "last_healthy" | "none"}
  rounds: stop after this many rounds (0, the default: never)
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request


def _collection_modules():
    """The collection's pure module_utils: importable when the collection is on the Python path,
    else from the ansible_collections tree this file was found in (ansible-rulebook loads event
    sources by path)."""
    try:
        from ansible_collections.failback.airflow.plugins.module_utils import auto_failover, placement
    except ImportError:
        root = os.path.abspath(__file__)
        for _level in range(8):  # ROOT/ansible_collections/failback/airflow/extensions/eda/plugins/event_source/x.py
            root = os.path.dirname(root)
        if os.path.isdir(os.path.join(root, "ansible_collections")) and root not in sys.path:
            sys.path.insert(0, root)
        from ansible_collections.failback.airflow.plugins.module_utils import auto_failover, placement
    return auto_failover, placement


def _read_health(url, timeout):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        with opener.open(request, timeout=timeout) as answer:
            return json.loads(answer.read(1 << 20).decode("utf-8")), None
    except urllib.error.HTTPError as exc:
        return None, "HTTP %s" % exc.code
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # a refused or hung connection, a garbage answer (BadStatusLine, bad JSON): the installation did not answer
        return None, str(getattr(exc, "reason", exc)) or type(exc).__name__


def _owns(placement, path):
    pmap = placement.read_map_file(path)
    if pmap is None:
        raise placement.PlacementError("there is no placement map at %s" % path)
    names = set(pmap.dags.values()) | ({pmap.default} if pmap.default else set())
    return dict((name, len(pmap.dags_of(name)) + (1 if pmap.default == name else 0)) for name in names if name)


def _write_state(path, state):
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".fleet-watch.", dir=folder)
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
        os.chmod(temporary, 0o644)  # status.yml, run by the operator, reads it; it holds no secret
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _read_state(path):
    """The saved state, or None: none yet, or a file that is damaged or not a regular file (a FIFO is
    never waited on: placement.read_text); the watcher then starts afresh and says so on stderr."""
    _auto_failover, placement = _collection_modules()
    try:
        text = placement.read_text(path, "state file", follow_symlinks=False)
        data = None if text is None else json.loads(text)
    except (placement.PlacementError, ValueError) as exc:
        sys.stderr.write("fleet_watch: state file %s: %s: starting afresh\n" % (path, exc))
        return None
    return data if isinstance(data, dict) else None


def _config(path, auto_failover):
    with open(path) as handle:
        config = json.load(handle)
    problems = auto_failover.settings_problems(config)
    for key in ("map", "state", "installations"):
        if not config.get(key):
            problems.append("%s is not set" % key)
    for owner, target in sorted((config.get("pairs") or {}).items()):
        for name in (owner, target):
            if name not in (config.get("installations") or {}):
                problems.append("pairs name %s, which has no health_url in installations" % name)
    if config.get("catchup_since", "last_healthy") not in ("last_healthy", "none"):
        problems.append("catchup_since is %r: give last_healthy or none" % (config.get("catchup_since"),))
    if problems:
        raise ValueError("fleet_watch config %s: %s" % (path, "; ".join(problems)))
    return config


async def main(queue, args):
    auto_failover, placement = _collection_modules()
    config = _config(args["config"], auto_failover)
    rounds = int(args.get("rounds") or 0)
    previous = _read_state(config["state"]) or {}
    decider = auto_failover.Decider(config, previous, now=time.time())
    done = 0

    async def read(name, url):
        health, error = await asyncio.to_thread(_read_health, url, config.get("timeout", 5))
        return name, time.time(), auto_failover.reading(health, error)

    while not rounds or done < rounds:
        started = time.time()
        readings = {}
        # every installation at once, each reading stamped when it came back: a hung one does not age the others
        answers = await asyncio.gather(*[read(name, where["health_url"])
                                         for name, where in sorted(config["installations"].items())])
        for name, moment, (owner_ok, target_ok, reason) in answers:
            decider.observe(name, moment, owner_ok, target_ok, reason)
            readings[name] = reason
        try:
            owns, map_error = _owns(placement, config["map"]), None
        except placement.PlacementError as exc:
            owns, map_error = {}, str(exc)  # decide nothing on a map that cannot be read
        decisions = decider.decide(time.time(), owns) if map_error is None else []
        for decision in decisions:
            event = dict((k, v) for k, v in decision.items() if k != "at_epoch")
            if config.get("catchup_since", "last_healthy") == "none" or event.get("since") is None:
                event["since"] = ""
            # ansible-rulebook runs the playbook with a copy of the inventory in a temporary directory, where
            # the map's default path (next to the inventory) is not the controller's map: name it
            event["map"] = os.path.abspath(config["map"])
            await queue.put({"failback_watch": event})
        state = decider.state()
        state.update(armed=sorted("%s -> %s" % pair for pair in config["pairs"].items()), updated_at=started,
                     last_readings=readings, map_error=map_error, interval=config.get("interval"))
        _write_state(config["state"], state)
        done += 1
        if not rounds or done < rounds:
            await asyncio.sleep(max(0.0, config.get("interval", 10) - (time.time() - started)))


if __name__ == "__main__":
    # Try it without ansible-rulebook: python fleet_watch.py CONFIG [ROUNDS] prints the events.
    class _Printer(object):
        async def put(self, event):
            print(json.dumps(event), flush=True)

    asyncio.run(main(_Printer(), {"config": sys.argv[1], "rounds": sys.argv[2] if len(sys.argv) > 2 else 0}))

"""Benchmark of the guard and the placement rules (run with `make bench`).

Measures, on this machine:
  * guard overhead per task for a file map and for a URL map (map of 1,000 DAGs): the median of
    many calls of failback_guard.evaluate(), which is what the cluster policy runs before every task
    (environment lookups, fence check, map freshness check, decision, one log line);
  * the first (cold) read of each map, which a task pays only when the map changed or its process is new;
  * moving 10,000 DAGs spread over 50 installations with the module's logic (parse and validate the
    map, move, stamp the generation, serialise, atomic write).
The last line sums it up for the README.  No sleeps; every loop has a fixed count.
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import failback_testlib as lab  # noqa: E402

CALLS = 20000
ROUNDS = 7


def per_call_us(func, calls=CALLS, rounds=ROUNDS):
    """Median over `rounds` of the mean time per call (µs) of `calls` consecutive calls."""
    results = []
    for _round in range(rounds):
        start = time.perf_counter()
        for _call in range(calls):
            func()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


def once_ms(func, rounds=ROUNDS):
    results = []
    for _round in range(rounds):
        start = time.perf_counter()
        func()
        results.append((time.perf_counter() - start) * 1e3)
    return statistics.median(results)


def main():
    work = tempfile.mkdtemp(prefix="failback-bench-")
    sys.path.insert(0, lab.build_guard_dir(os.path.join(work, "config")))
    import failback_guard as guard
    import failback_placement as placement

    # The guard logs one INFO line per decision; a real handler makes that cost count.
    handler = logging.StreamHandler(io.StringIO())
    guard.LOG.addHandler(handler)
    guard.LOG.setLevel(logging.INFO)
    guard.LOG.propagate = False

    names = ["server-%d" % i for i in range(10)]
    pmap = placement.PlacementMap(dict(("dag_%04d" % i, names[i % 10]) for i in range(1000)), generation=42)
    text = placement.dump_map(pmap)
    os.makedirs(os.path.join(work, "placement"))
    map_path = os.path.join(work, "placement", "placement.yml")
    placement.atomic_write(map_path, text)
    os.environ.update(FAILBACK_INSTALLATION="server-3", FAILBACK_PLACEMENT_CACHE_DIR=os.path.join(work, "cache"))

    # File map.
    os.environ["FAILBACK_PLACEMENT_MAP"] = map_path

    def cold_file():
        guard._SOURCES.clear()
        guard.evaluate("dag_0003", "t")

    file_cold_ms = once_ms(cold_file)
    guard.evaluate("dag_0003", "t")
    file_us = per_call_us(lambda: guard.evaluate("dag_0003", "t"))

    # URL map, served from 127.0.0.1 (default TTL: revalidated every 30 s).
    with lab.MapServer(text) as server:
        os.environ["FAILBACK_PLACEMENT_MAP"] = server.url
        os.environ["FAILBACK_PLACEMENT_TTL"] = "30"

        def cold_url():
            guard._SOURCES.clear()
            for name in os.listdir(os.path.join(work, "cache")) if os.path.isdir(os.path.join(work, "cache")) else []:
                os.unlink(os.path.join(work, "cache", name))
            guard.evaluate("dag_0003", "t")

        url_cold_ms = once_ms(cold_url)
        guard.evaluate("dag_0003", "t")
        url_us = per_call_us(lambda: guard.evaluate("dag_0003", "t"))

        def new_process():
            """A new task process within the TTL: the on-disk cache, no request."""
            guard._SOURCES.clear()
            guard.evaluate("dag_0003", "t")

        url_new_process_ms = once_ms(new_process)
        os.environ["FAILBACK_PLACEMENT_TTL"] = "0"
        url_revalidate_ms = per_call_us(lambda: guard.evaluate("dag_0003", "t"), calls=200) / 1e3
        requests = server.requests
        os.environ["FAILBACK_PLACEMENT_TTL"] = "30"

    # Moving 10,000 DAGs across 50 installations with the module's logic.
    many = ["inst-%02d" % i for i in range(50)]
    big = placement.PlacementMap(dict(("dag_%05d" % i, many[i % 50]) for i in range(10000)), generation=7)
    big_text = placement.dump_map(big)
    big_path = os.path.join(work, "big.yml")
    placement.atomic_write(big_path, big_text)
    every_dag = sorted(big.dags)

    def move_all():
        current = placement.parse_map(placement.read_text(big_path), many)
        moved_map, moved = placement.move(current, "inst-00", dags=every_dag, installations=many)
        new = placement.stamp(current, moved_map, "bench")
        placement.atomic_write(big_path + ".out", placement.dump_map(new))
        assert len(moved) == 9800

    def failover_one():
        current = placement.parse_map(placement.read_text(big_path), many)
        moved_map, moved = placement.move(current, "inst-01", from_="inst-00", installations=many)
        new = placement.stamp(current, moved_map, "bench")
        placement.atomic_write(big_path + ".out", placement.dump_map(new))
        assert len(moved) == 200

    # Planning the publish of a failover run by run: 50 installations, each holding its own copy of
    # the map before (parsed separately, as the playbooks' read step gives them), 2,000 of the
    # 10,000 DAGs with a handover history of 3 entries, one installation's 400 DAGs (half of them with that history) moving.
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), ".collections"))  # `make setup` links it
    from ansible_collections.failback.airflow.plugins.module_utils import placement as rules, placement_plan

    with_history = rules.parse_map(big_text)
    for round_ in range(3):
        shifted = rules.PlacementMap(dict((dag, many[(i + (round_ + 1 if i % 5 == 0 else 0)) % 50])
                                          for i, dag in enumerate(every_dag)), generation=with_history.generation)
        with_history = rules.stamp(with_history, shifted, "bench", now="2026-12-01T0%d:00:00Z" % (round_ + 1))
    history_text = rules.dump_map(with_history)
    moved_map, _moved = rules.move(with_history, "inst-01", from_="inst-03", installations=many)
    planned_map = rules.stamp(with_history, moved_map, "bench", now="2026-12-01T06:00:00Z")
    held = dict((name, (rules.parse_map(history_text), False)) for name in many)

    def plan_failover():
        plan = placement_plan.plan_publish(planned_map, held, many, known=[with_history], last=["inst-01"])
        assert plan["revoke"] == ["inst-03"], plan["revoke"][:5]
        assert plan["gains"]["inst-01"]

    move_all_s = once_ms(move_all) / 1e3
    failover_one_s = once_ms(failover_one) / 1e3
    plan_s = once_ms(plan_failover) / 1e3

    print("machine: %s, Python %s, libyaml %s" % (os.uname().machine, sys.version.split()[0],
                                                  getattr(placement.yaml, "__with_libyaml__", False)))
    print("map of 1,000 DAGs over 10 installations (%d bytes)" % len(text))
    print("  file map: guard per task %.1f us (median of %d x %d calls); first read %.2f ms" % (file_us, ROUNDS, CALLS, file_cold_ms))
    print("  URL map:  guard per task %.1f us within the TTL; first fetch %.2f ms; new task process %.2f ms "
          "(disk cache); revalidation with ETag (TTL 0) %.2f ms; %d requests in all" % (
              url_us, url_cold_ms, url_new_process_ms, url_revalidate_ms, requests))
    print("map of 10,000 DAGs over 50 installations (%d bytes)" % len(big_text))
    print("  move all 10,000 DAGs to one installation: %.3f s (parse, validate, move, stamp, dump, atomic write)" % move_all_s)
    print("  fail over one installation (200 DAGs):    %.3f s" % failover_one_s)
    print("  plan the publish of a failover of 400 DAGs run by run (50 copies of the map, 2,000 DAGs with 3 handovers, %d bytes): %.3f s" % (
        len(history_text), plan_s))
    print("RESULT guard_file_us_per_task=%.1f guard_url_us_per_task=%.1f move_10000_dags_s=%.3f plan_publish_s=%.3f" % (
        file_us, url_us, move_all_s, plan_s))


if __name__ == "__main__":
    main()

"""Wall time of the collection's playbooks for the failover figures in the README (not a test).

  python benchmarks/failover_bench.py              three directory installations on this machine
  python benchmarks/failover_bench.py --servers    the two local server installations (after `make site`)

Directory installations: a temporary fleet of three (local connection, as in the integration
tests); site.yml and publish.yml once, then failover.yml for one DAG back and forth ROUNDS times.
Servers: failover.yml for failback_hello between server-1 and server-2 of inventories/local and
its map (as the README's failover command; the map's generation grows, an even number of rounds
leaves the DAG where it was), back and forth ROUNDS times; with --forced also a forced failover
(and back). Prints each run and the median per kind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.join(REPO, ".venv", "bin")


def run(playbook, inventory, extra=None):
    args = [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", playbook)]
    for key, value in (extra or {}).items():
        args += ["-e", json.dumps({key: value})]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"])
    start = time.monotonic()
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("%s failed (rc %d)" % (playbook, proc.returncode))
    return elapsed


def directory_fleet(root):
    with open(os.path.join(root, "placement.yml"), "w") as handle:
        handle.write("dag_a: server-1\ndag_b: server-1\ndag_c: server-2\n")
    hosts = "\n".join(
        "        server-%d: {airflow_placement_dir: %s/server-%d/placement, airflow_placement_guard_dir: %s/server-%d/config}"
        % (i, root, i, root, i) for i in (1, 2, 3))
    inventory = os.path.join(root, "hosts.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  children:\n    airflow_installations:\n      hosts:\n%s\n      vars:\n"
                     "        ansible_connection: local\n        ansible_python_interpreter: %s\n"
                     "        airflow_placement_map_src: %s/placement.yml\n" % (hosts, sys.executable, root))
    return inventory


def figures(label, times):
    for value in times:
        print("  %-52s %6.2f s" % (label, value))
    print("%-54s %6.2f s (median of %d)" % (label, statistics.median(times), len(times)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", action="store_true", help="the two local server installations (make site first)")
    parser.add_argument("--forced", action="store_true", help="with --servers: also a forced failover")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="failback-bench-")
    try:
        if args.servers:
            # The local inventory and its map, as the README's failover command uses them (the map's
            # generation grows; an even number of rounds leaves every DAG where it was).
            inventory = os.path.join(REPO, "inventories", "local", "hosts.yml")
            times = []
            for i in range(args.rounds):
                there, back = ("server-1", "server-2") if i % 2 == 0 else ("server-2", "server-1")
                times.append(run("failover.yml", inventory, {"failover_dags": "failback_hello", "failover_from": there,
                                                             "failover_to": back}))
            figures("failover.yml, one DAG, two local servers", times)
            if args.forced:
                owner = "server-1" if args.rounds % 2 == 0 else "server-2"
                other = "server-2" if owner == "server-1" else "server-1"
                figures("failover.yml forced, one DAG, two local servers", [run("failover.yml", inventory, {
                    "failover_dags": "failback_hello", "failover_to": other, "failover_force": True})])
                run("failover.yml", inventory, {"failover_dags": "failback_hello", "failover_to": owner})
        else:
            inventory = directory_fleet(root)
            figures("site.yml, three directory installations", [run("site.yml", inventory)])
            figures("publish.yml, nothing to change", [run("publish.yml", inventory) for _round in range(2)])
            times = []
            for i in range(args.rounds):
                times.append(run("failover.yml", inventory, {"failover_dags": "dag_a",
                                                             "failover_to": "server-2" if i % 2 == 0 else "server-1"}))
            figures("failover.yml, one DAG, three directory installations", times)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Wall time of the collection's playbooks for the failover figures in the README (not a test).

  python benchmarks/failover_bench.py              three directory installations on this machine
  python benchmarks/failover_bench.py --servers    the two local server installations (after `make site`)

Directory installations: a temporary fleet of three (local connection, as in the integration
tests); site.yml and publish.yml once, then failover.yml for one DAG back and forth ROUNDS times.
Servers: failover.yml for failback_hello between server-1 and server-2 of inventories/local and
its map (as the README's failover command; the map's generation grows, an even number of rounds
leaves the DAG where it was), back and forth ROUNDS times; with --forced also a forced failover
(and back). Prints each run and the median per kind.

  python benchmarks/failover_bench.py --catchup N  the two local servers, forced failover with catch-up

Catch-up: deploys the drills' 20-second DAG (tests/drills/dags) to both local servers for the
measurement, stops server-1 between two intervals, lets N intervals pass, runs a forced failover
with failover_catchup_since, and reports its wall time and the time from the command to the first
re-run task starting on server-2. Then server-1 is started as at boot (fenced), the map published,
the DAG moved back, paused on both and its file removed.
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


def catchup(missed):
    """Forced failover with catch-up of *missed* intervals on the two local servers (see the docstring)."""
    sys.path.insert(0, os.path.join(REPO, "tests", "drills"))
    import drills  # the drills' fleet helpers (stop, boot, API)

    sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
    import placement

    inventory = os.path.join(REPO, "inventories", "local", "hosts.yml")
    map_path = os.path.join(REPO, "inventories", "local", "placement.yml")
    start = time.strftime("%Y-%m-%dT%H:%M:00Z", time.gmtime(time.time() + 60))
    conf = os.path.join(REPO, "tests", "containers.conf")
    installations = dict(("server-%d" % i, {"dir": "/opt/failback-airflow/server-%d" % i, "port": 8080 + i,
                                            "project": "failback-server-%d" % i,
                                            "unit": "airflow-failback-server-%d.service" % i,
                                            "env": {"CONTAINERS_CONF": conf}}) for i in (1, 2))
    start_file = os.path.join(tempfile.mkdtemp(prefix="failback-bench-"), "failback_drills.start")
    with open(start_file, "w") as handle:
        handle.write(start + "\n")
    fleet = drills.Fleet({"repo": REPO, "inventory": inventory, "map": map_path, "start_file": start_file,
                          "ansible_playbook": os.path.join(BIN, "ansible-playbook"), "installations": installations})
    dag_id = "failback_drill_quick"
    current = placement.read_map_file(map_path)
    placement.atomic_write(map_path, placement.dump_map(placement.stamp(current, placement.assign(
        current, {dag_id: "server-1"}), "failover_bench")))
    for inst in installations.values():
        for name in ("failback_drills.py", "failback_drills.start"):
            shutil.copy(os.path.join(REPO, "tests", "drills", "dags", name) if name.endswith(".py") else start_file,
                        os.path.join(inst["dir"], "dags", name))
        subprocess.run(["podman", "exec", "%s_airflow-dag-processor_1" % inst["project"], "airflow", "dags",
                        "reserialize"], env=dict(os.environ, **inst["env"]), check=True, capture_output=True,
                       timeout=300)
    run("publish.yml", inventory)
    unpaused_at = drills.now()
    for name in installations:
        fleet.api(name, "PATCH", "/dags/%s?update_mask=is_paused" % dag_id, {"is_paused": False})
    # Both schedulers must create the DAG's runs before server-1 stops (a DAG file the dag processor
    # has not picked up yet gets runs only at its next refresh, up to 5 minutes later).
    deadline = time.monotonic() + 420
    for name in installations:
        while True:
            runs = fleet.api(name, "GET", "/dags/%s/dagRuns?run_after_gte=%s&limit=1"
                             % (dag_id, drills.iso(unpaused_at)))["dag_runs"]
            if runs:
                break
            if time.monotonic() > deadline:
                raise SystemExit("%s created no run of %s within 420 s" % (name, dag_id))
            time.sleep(2)
    drills.sleep_until(fleet.next_due(dag_id, drills.now()) + drills.datetime.timedelta(seconds=30), "a run on server-1")
    stop_at = fleet.next_due(dag_id, drills.now()) + drills.datetime.timedelta(seconds=8)
    drills.sleep_until(stop_at, "between two intervals")
    fleet.ctl("server-1", "stop")
    drills.sleep_until(stop_at + drills.datetime.timedelta(seconds=20 * missed), "%d intervals nobody runs" % missed)
    began = time.monotonic()
    began_at = drills.now()
    elapsed = run("failover.yml", inventory, {"failover_dags": dag_id, "failover_from": "server-1",
                                              "failover_to": "server-2", "failover_force": True,
                                              "failover_catchup_since": drills.iso(stop_at)})
    first = None
    while time.monotonic() - began < 300 and first is None:
        tis = fleet.api("server-2", "GET", "/dags/%s/dagRuns/~/taskInstances?run_after_gte=%s&limit=100"
                        % (dag_id, drills.iso(stop_at)))["task_instances"]
        starts = [drills.parse(t["start_date"]) for t in tis if t.get("start_date") and t["state"] != "skipped"
                  and drills.parse(t["start_date"]) >= began_at]
        first = min(starts) if starts else None
        time.sleep(0.5)
    figures("forced failover.yml with catch-up of %d intervals" % missed, [elapsed])
    if first is not None:
        figures("command to the first re-run task starting", [(first - began_at).total_seconds()])
    fleet.boot("server-1")
    fleet.wait_healthy("server-1")
    run("publish.yml", inventory)
    run("failover.yml", inventory, {"failover_dags": dag_id, "failover_from": "server-2", "failover_to": "server-1"})
    for name, inst in installations.items():
        fleet.api(name, "PATCH", "/dags/%s?update_mask=is_paused" % dag_id, {"is_paused": True})
        for file_name in ("failback_drills.py", "failback_drills.start"):
            os.unlink(os.path.join(inst["dir"], "dags", file_name))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", action="store_true", help="the two local server installations (make site first)")
    parser.add_argument("--catchup", type=int, metavar="N", help="forced failover with catch-up of N missed intervals")
    parser.add_argument("--forced", action="store_true", help="with --servers: also a forced failover")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    if args.catchup:
        catchup(args.catchup)
        return
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

"""Wall time of the fleet status (playbooks/status.yml) for the README's figures (not a test).

  python benchmarks/status_bench.py            50 directory installations, 10,000 DAGs
  python benchmarks/status_bench.py --servers  the two local server installations (after `make site`)

Directory installations (local connection, as in the integration tests): a map of 10,000 DAGs
over 50 installations, published once with publish.yml, then status.yml ROUNDS times. Directory
installations have no Airflow, so the same figure is also given for the assessment alone with
simulated Airflow answers (every installation parsing all 10,000 DAGs, one latest run each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.join(REPO, ".venv", "bin")
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.failback.airflow.plugins.module_utils import fleet, placement  # noqa: E402


def run(playbook, inventory):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=BIN + os.pathsep + os.environ["PATH"])
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory,
                           os.path.join(REPO, "playbooks", playbook)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1800, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode not in (0, 2):
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("%s failed (rc %d)" % (playbook, proc.returncode))
    return elapsed, proc.returncode


def figures(label, times):
    for value in times:
        print("  %-60s %7.2f s" % (label, value))
    print("%-62s %7.2f s (median of %d)" % (label, statistics.median(times), len(times)))


def big_map(installations, dags):
    names = ["server-%02d" % i for i in range(1, installations + 1)]
    owners = dict(("dag_%05d" % i, names[i % installations]) for i in range(dags))
    return names, placement.PlacementMap(owners, generation=1)


def directories(rounds, installations=50, dags=10000):
    names, pmap = big_map(installations, dags)
    root = tempfile.mkdtemp(prefix="failback-status-bench-")
    placement.atomic_write(os.path.join(root, "placement.yml"), placement.dump_map(pmap))
    hosts = "\n".join("        %s: {airflow_placement_dir: %s/%s/placement, airflow_placement_guard_dir: %s/%s/config}"
                      % (n, root, n, root, n) for n in names)
    inventory = os.path.join(root, "hosts.yml")
    with open(inventory, "w") as handle:
        handle.write("all:\n  children:\n    airflow_installations:\n      hosts:\n%s\n      vars:\n"
                     "        ansible_connection: local\n        ansible_python_interpreter: %s\n"
                     "        airflow_placement_map_src: %s/placement.yml\n" % (hosts, sys.executable, root))
    run("publish.yml", inventory)
    times = []
    for _round in range(rounds):
        elapsed, rc = run("status.yml", inventory)
        if rc != 0:
            raise SystemExit("status.yml found drift in a fresh fleet (rc %d)" % rc)
        times.append(elapsed)
    figures("status.yml, %d directory installations, %d DAGs" % (installations, dags), times)
    with open(os.path.join(root, "fleet-status.json")) as handle:
        size = len(handle.read())
    print("  JSON report %d bytes, HTML report %d bytes" % (size, os.path.getsize(os.path.join(root, "fleet-status.html"))))

    # The assessment alone, with every installation answering for all DAGs (as real Airflows would).
    data = pmap.to_data()
    dag_ids = sorted(pmap.dags)
    observed = {}
    for name in names:
        observed[name] = {"role": "airflow_server", "held": {"reachable": True, "map": data, "fenced": None},
                          "airflow": {"version": "3.3.2", "health": {}, "problems": {},
                                      "dags": dict((d, {"paused": pmap.dags[d] != name}) for d in dag_ids),
                                      "import_errors": [], "executed": [],
                                      "runs": dict((d, {"run_id": "r", "run_after": "2026-12-01T00:00:00Z",
                                                        "state": "success"}) for d in dag_ids)}}
    times = []
    for _round in range(rounds):
        start = time.monotonic()
        report = fleet.assess(pmap, observed)
        fleet.render_json(report)
        fleet.render_html(report)
        fleet.render_text(report)
        times.append(time.monotonic() - start)
        assert report["healthy"], report["findings"][:3]
    figures("assess + render, %d installations answering for %d DAGs" % (installations, dags), times)


def servers(rounds):
    inventory = os.path.join(REPO, "inventories", "local", "hosts.yml")
    times = [run("status.yml", inventory)[0] for _round in range(rounds)]
    figures("status.yml, the two local server installations", times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", action="store_true", help="the two local server installations (make site first)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("machine: %s cores, Python %s" % (os.cpu_count(), sys.version.split()[0]))
    if args.servers:
        servers(args.rounds)
    else:
        directories(args.rounds)


if __name__ == "__main__":
    main()

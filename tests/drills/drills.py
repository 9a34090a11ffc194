"""Exactly-once drills on two real Airflow installations (the Molecule scenario `drills`).

The DAGs of tests/drills/dags/failback_drills.py append a line to a ledger outside Airflow's
database when a task completes.  Each drill does something to the fleet - a planned switchover and
failback with runs in flight, a switchover while a task is deferred, an old owner stopped and a
forced failover with catch-up, an old owner killed in the middle of a task, a failover killed after
it changed the controller's map and run again, and a server <-> cluster switchover and failback and
a cluster whose Airflow stops, failed over forced with catch-up - and then every scheduled interval
of the drill's window must be in the ledgers exactly once.  A drill table is printed at the end; the
exit code is 1 when any interval ran twice or never (or a step failed).

    drills.py CONFIG.json [--only NAME ...]

CONFIG: {"repo", "inventory", "map", "ansible_playbook", "installations": {name: {"kind": "server",
"dir", "port", "project", "unit", "env"} or {"kind": "cluster", "dir", "port", "kube": {"url", "token",
"namespace", "name"}}}} (written by the scenario's verify.yml; a cluster is tests/fake_cluster.py, whose
Airflow is stopped and started by scaling its Deployments through its Kubernetes API).  Every wait is
bounded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

UTC = datetime.timezone.utc
PERIODS = {"failback_drill_quick": 20, "failback_drill_slow": 60, "failback_drill_deferred": 60}
SETTLE_TIMEOUT = 300
PLAYBOOK_TIMEOUT = 900


def now():
    return datetime.datetime.now(UTC)


def iso(moment):
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def log(message):
    print("[drills %s] %s" % (now().strftime("%H:%M:%S"), message), flush=True)


def sleep_until(moment, why):
    seconds = (moment - now()).total_seconds()
    if seconds > 0:
        log("waiting %.0f s (%s)" % (seconds, why))
        time.sleep(min(seconds, 600))


class DrillFailed(AssertionError):
    pass


class Fleet(object):
    def __init__(self, config):
        self.config = config
        self.installations = config["installations"]
        self.start = parse(open(config["start_file"]).read().strip())
        self._tokens = {}
        self.timings = []
        self.drain_retries = 0

    # ------------------------------------------------------------------ Airflow's REST API
    def api(self, name, method, path, body=None):
        inst = self.installations[name]
        if name not in self._tokens:
            with open(os.path.join(inst["dir"], "auth", "passwords.json")) as handle:
                password = json.load(handle)["admin"]
            self._tokens[name] = self._request(inst, "POST", "/auth/token", {"username": "admin", "password": password},
                                               None)["access_token"]
        return self._request(inst, method, "/api/v2" + path, body, self._tokens[name])

    @staticmethod
    def _request(inst, method, path, body, token):
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (inst["port"], path),
                                         None if body is None else json.dumps(body).encode(), headers, method=method)
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.load(response)

    def wait_healthy(self, name, timeout=300):
        """Wait until every part of the installation's health answer is healthy.

        What the API last answered (or why it did not) is logged when it changes, so a slow start
        shows which part held it up.
        """
        began = time.monotonic()
        deadline = began + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                health = self._request(self.installations[name], "GET", "/api/v2/monitor/health", None, None)
                seen = " ".join("%s=%s" % (part, value.get("status")) for part, value in sorted(health.items()))
                if all(part.get("status") == "healthy" for part in health.values()):
                    self._tokens.pop(name, None)
                    log("%s healthy after %.0f s" % (name, time.monotonic() - began))
                    return
            except Exception as exc:  # pylint: disable=broad-except
                seen = "no answer (%s)" % type(exc).__name__  # not up yet
            if seen != last:
                log("%s after %.0f s: %s" % (name, time.monotonic() - began, seen))
                last = seen
            time.sleep(3)
        raise DrillFailed("%s is not healthy after %d s; last answer: %s" % (name, timeout, last))

    # ------------------------------------------------------------------ the fleet from outside
    def playbook(self, name, extra=None, timeout=PLAYBOOK_TIMEOUT, kill_when=None):
        argv = [self.config["ansible_playbook"], "-i", self.config["inventory"],
                os.path.join(self.config["repo"], "playbooks", name)]
        for key, value in sorted((extra or {}).items()):
            argv += ["-e", "%s=%s" % (key, value)]
        log("$ " + " ".join(shlex.quote(a) for a in argv[1:]))
        began = time.monotonic()
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True)
        killed = False
        if kill_when is not None:
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if kill_when():
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.2)
        try:
            output = proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output = proc.communicate()[0]
            raise DrillFailed("%s did not end within %d s:\n%s" % (name, timeout, output[-4000:]))
        seconds = time.monotonic() - began
        self.timings.append((name, extra, seconds, proc.returncode))
        if self.config.get("log_dir"):
            os.makedirs(self.config["log_dir"], exist_ok=True)
            path = os.path.join(self.config["log_dir"], "%02d-%s.log" % (len(self.timings), name))
            with open(path, "w") as handle:
                handle.write("$ %s\n%s" % (" ".join(argv), output))
        summary = [line for line in output.splitlines() if "moved " in line or "re-ran" in line or "LEFT" in line
                   or "kept by" in line or "nothing to move" in line]
        log("%s ended rc=%s after %.1f s%s %s" % (name, proc.returncode, seconds, " (killed)" if killed else "",
                                                  " | ".join(s.strip() for s in summary[-3:])))
        return proc.returncode, output, killed

    def failover(self, expect_rc=0, **extra):
        extra = dict(("failover_" + k, v) for k, v in extra.items())
        rc, output, _killed = self.playbook("failover.yml", extra)
        if rc == 2 and "Nothing was granted yet: run failover.yml again to wait longer" in output:
            # The old owner's runs did not end within the drain timeout. Do what the message tells an
            # operator (run it again), once, and show what the fleet looked like first.
            log("the drain timed out; the fleet now:\n%s\nrunning failover.yml again, as its message says"
                % self.diagnose()[0])
            self.drain_retries += 1
            rc, output, _killed = self.playbook("failover.yml", extra)
        if expect_rc is not None and rc != expect_rc:
            raise DrillFailed("failover.yml %s ended %s:\n%s" % (extra, rc, output[-6000:]))
        return output

    def publish(self):
        rc, output, _killed = self.playbook("publish.yml")
        if rc != 0:
            raise DrillFailed("publish.yml ended %s:\n%s" % (rc, output[-6000:]))

    def scale(self, name, replicas):
        """Scale every Deployment of a cluster installation (its Airflow stops at 0, as when its pods are gone)."""
        kube = self.installations[name]["kube"]
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            path = "/apis/apps/v1/namespaces/%s/deployments/%s-%s/scale" % (kube["namespace"], kube["name"], component)
            request = urllib.request.Request(kube["url"] + path, json.dumps({"spec": {"replicas": replicas}}).encode(),
                                             {"Authorization": "Bearer " + kube["token"],
                                              "Content-Type": "application/merge-patch+json"}, method="PATCH")
            with urllib.request.urlopen(request, timeout=20):
                pass
        self._tokens.pop(name, None)
        log("%s: every Deployment scaled to %d" % (name, replicas))

    def ctl(self, name, *args):
        inst = self.installations[name]
        if inst.get("kind") == "cluster":
            self.scale(name, 0 if args[0] == "stop" else 1)
            return
        env = dict(os.environ, **inst.get("env", {}))
        subprocess.run([os.path.join(inst["dir"], "bin", "airflow-ctl")] + list(args), env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=600)

    def kill(self, name):
        """kill -9 every running container of the installation, as a power cut would.

        A container can stop between `podman ps` and `podman kill` (podman then exits 125): the
        containers still running are listed again and killed, at most three times, and what
        podman said is logged with every container's state, so a crash loop shows in the log.
        """
        inst = self.installations[name]
        env = dict(os.environ, **inst.get("env", {}))
        label = "label=io.podman.compose.project=%s" % inst["project"]
        for attempt in range(3):
            ids = subprocess.run(["podman", "ps", "-q", "--filter", label], env=env, check=True, capture_output=True,
                                 text=True, timeout=60).stdout.split()
            if not ids:
                if attempt == 0:
                    raise DrillFailed("kill -9 %s: no container of it is running" % name)
                return
            log("kill -9 %s (%d containers)" % (name, len(ids)))
            proc = subprocess.run(["podman", "kill", "--signal", "KILL"] + ids, env=env, capture_output=True, text=True,
                                  timeout=120, check=False)
            if proc.returncode == 0:
                return
            states = subprocess.run(["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}} {{.Status}}"],
                                    env=env, capture_output=True, text=True, timeout=60, check=False).stdout
            log("podman kill ended %d: %s; containers now: %s"
                % (proc.returncode, proc.stderr.strip(), "; ".join(states.splitlines())))
        raise DrillFailed("kill -9 %s: containers were still running after three attempts" % name)

    def boot(self, name):
        """Start the installation the way its systemd unit does at boot: fence first, then start (a cluster: its
        pods come back, with the placement map its ConfigMap holds)."""
        inst = self.installations[name]
        if inst.get("kind") == "cluster":
            self.scale(name, 1)
            return
        env = dict(os.environ, **inst.get("env", {}))
        with open("/etc/systemd/system/%s" % inst["unit"]) as handle:
            lines = handle.read().splitlines()
        for prefix in ("ExecStartPre=", "ExecStart="):
            for line in lines:
                if line.startswith(prefix):
                    subprocess.run(shlex.split(line[len(prefix):]), env=env, check=True, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.STDOUT, timeout=900)
        log("%s started as at boot (fenced)" % name)

    def diagnose(self):
        """What each installation looked like when a drill failed: ``(summary, logs)``.

        The summary holds its containers and the last runs of every drill DAG with their task
        states; the logs the end of each scheduler's log. Both are also written to log_dir.
        """
        lines, logs = [], []
        for name, inst in sorted(self.installations.items()):
            env = dict(os.environ, **inst.get("env", {}))
            if inst.get("kind") == "cluster":
                running = [c for c in ("api-server", "scheduler", "dag-processor", "triggerer")
                           if os.path.exists(os.path.join(inst["dir"], c + ".out"))]
                lines.append("--- %s (cluster) components that ran: %s" % (name, ", ".join(running)))
            else:
                label = "label=io.podman.compose.project=%s" % inst["project"]
                states = subprocess.run(["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}} {{.Status}}"],
                                        env=env, capture_output=True, text=True, timeout=60, check=False).stdout
                lines.append("--- %s containers: %s" % (name, "; ".join(states.splitlines())))
            for dag_id in sorted(PERIODS):
                try:
                    dag = self.api(name, "GET", "/dags/%s" % dag_id)
                    runs = self.api(name, "GET", "/dags/%s/dagRuns?order_by=-run_after&limit=4" % dag_id)["dag_runs"]
                    shown = []
                    for run in runs:
                        tis = self.api(name, "GET", "/dags/%s/dagRuns/%s/taskInstances" % (dag_id, run["dag_run_id"]))
                        shown.append("%s %s [%s]" % (run["dag_run_id"], run["state"], ", ".join(
                            "%s try %s" % (ti["state"], ti.get("try_number")) for ti in tis["task_instances"])))
                    lines.append("--- %s %s paused=%s: %s" % (name, dag_id, dag.get("is_paused"), " | ".join(shown)))
                except Exception as exc:  # pylint: disable=broad-except
                    lines.append("--- %s %s: not readable (%s)" % (name, dag_id, exc))
            if inst.get("kind") == "cluster":
                path = os.path.join(inst["dir"], "scheduler.out")
                text = "\n".join(open(path).read().splitlines()[-60:]) if os.path.exists(path) else "(none)"
                logs.append("--- %s scheduler log (last 60 lines):\n%s" % (name, text))
                continue
            ctl = os.path.join(inst["dir"], "bin", "airflow-ctl")
            tail = subprocess.run([ctl, "logs", "airflow-scheduler", "60"], env=env, capture_output=True, text=True,
                                  timeout=120, check=False)
            logs.append("--- %s scheduler log (last 60 lines):\n%s" % (name, (tail.stdout + tail.stderr).strip()))
        summary, details = "\n".join(lines), "\n".join(logs)
        if self.config.get("log_dir"):
            os.makedirs(self.config["log_dir"], exist_ok=True)
            with open(os.path.join(self.config["log_dir"], "diagnosis.txt"), "w") as handle:
                handle.write(summary + "\n" + details + "\n")
        return summary, details

    def fenced(self, name):
        return os.path.exists(os.path.join(self.installations[name]["dir"], "placement", "fence"))

    def generation(self):
        with open(self.config["map"]) as handle:
            for line in handle:
                if line.strip().startswith("generation:"):
                    return int(line.split(":", 1)[1])
        return 0

    # ------------------------------------------------------------------ the ledger
    def ledger(self):
        entries = []
        for name, inst in sorted(self.installations.items()):
            path = os.path.join(inst["dir"], "logs", "failback-ledger.jsonl")
            if os.path.exists(path):
                with open(path) as handle:
                    entries.extend(json.loads(line) for line in handle if line.strip())
        return entries

    def intervals(self, dag_id, first, last):
        period = datetime.timedelta(seconds=PERIODS[dag_id])
        k = max(0, int((first - self.start).total_seconds() // period.total_seconds()))
        found = []
        while self.start + k * period <= last:
            due = self.start + k * period
            if due >= first:
                found.append(due)
            k += 1
        return found

    def next_due(self, dag_id, after):
        period = PERIODS[dag_id]
        k = int((after - self.start).total_seconds() // period) + 1
        return self.start + datetime.timedelta(seconds=k * period)

    def counts(self, dag_id, first, last):
        expected = self.intervals(dag_id, first, last)
        seen = {}
        for entry in self.ledger():
            if entry["dag_id"] == dag_id:
                due = parse(entry["run_after"])
                seen.setdefault(due, []).append(entry["installation"])
        return dict((due, seen.get(due, [])) for due in expected)

    def settle(self, dag_ids, first, last):
        """Wait (bounded) until every interval of the window is in the ledger, then a little more for doubles."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if all(all(c for c in self.counts(d, first, last).values()) for d in dag_ids):
                break
            time.sleep(5)
        time.sleep(15)


class Drills(object):
    def __init__(self, fleet):
        self.fleet = fleet
        self.rows = []

    def record(self, drill, dag_ids, first, last, note=""):
        self.fleet.settle(dag_ids, first, last)
        for dag_id in dag_ids:
            counts = self.fleet.counts(dag_id, first, last)
            once = sum(1 for c in counts.values() if len(c) == 1)
            twice = sorted(iso(d) + " " + "+".join(c) for d, c in counts.items() if len(c) > 1)
            never = sorted(iso(d) for d, c in counts.items() if not c)
            where = {}
            for c in counts.values():
                for name in c:
                    where[name] = where.get(name, 0) + 1
            self.rows.append(dict(drill=drill, dag=dag_id.replace("failback_drill_", ""), window="%s..%s" % (
                first.strftime("%H:%M:%S"), last.strftime("%H:%M:%S")), intervals=len(counts), once=once,
                twice=twice, never=never, where=where, note=note))

    # 1 -------------------------------------------------------------------------------------------
    def switchover_and_failback(self):
        f = self.fleet
        dags = "failback_drill_quick,failback_drill_slow"
        first = now()
        sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=8), "slow task in flight")
        f.failover(**{"from": "server-1", "to": "server-2", "dags": dags})
        sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=8), "slow task in flight")
        f.failover(**{"from": "server-2", "to": "server-1", "dags": dags})
        last = now()
        self.record("switchover and failback (runs in flight)", dags.split(","), first, last)

    # 2 -------------------------------------------------------------------------------------------
    def deferred_in_flight(self):
        f = self.fleet
        first = now()
        sleep_until(f.next_due("failback_drill_deferred", now()) + datetime.timedelta(seconds=8), "task deferred")
        f.failover(**{"from": "server-1", "to": "server-2", "dags": "failback_drill_deferred"})
        last = now() + datetime.timedelta(seconds=65)
        sleep_until(last, "one interval on the new owner")
        self.record("switchover while a task is deferred", ["failback_drill_deferred"], first, last)

    # 3 -------------------------------------------------------------------------------------------
    def stopped_then_forced(self):
        f = self.fleet
        first = now()
        stop_at = f.next_due("failback_drill_quick", now()) + datetime.timedelta(seconds=8)
        sleep_until(stop_at, "between two quick intervals")
        f.ctl("server-1", "stop")
        stopped = now()
        log("server-1 stopped at %s" % iso(stopped))
        sleep_until(stopped + datetime.timedelta(seconds=45), "intervals nobody runs")
        f.failover(**{"from": "server-1", "to": "server-2", "dags": "failback_drill_quick", "force": "true",
                      "catchup_since": iso(stop_at)})
        f.boot("server-1")
        f.wait_healthy("server-1")
        if not f.fenced("server-1"):
            raise DrillFailed("server-1 did not come back fenced")
        f.publish()
        last = now()
        self.record("old owner stopped, forced failover with catch-up", ["failback_drill_quick"], first, last,
                    "since %s" % stop_at.strftime("%H:%M:%S"))

    # 4 -------------------------------------------------------------------------------------------
    def killed_mid_task(self):
        f = self.fleet
        first = now()
        due = f.next_due("failback_drill_slow", now())
        sleep_until(due + datetime.timedelta(seconds=15), "slow task half-way on server-1")
        f.kill("server-1")
        f.failover(**{"from": "server-1", "to": "server-2", "dags": "failback_drill_slow", "force": "true",
                      "catchup_since": iso(due)})
        restarted = now()
        f.boot("server-1")
        f.wait_healthy("server-1")
        if not f.fenced("server-1"):
            raise DrillFailed("server-1 did not come back fenced")
        time.sleep(20)
        while_fenced = [e for e in f.ledger() if e["installation"] == "server-1" and parse(e["at"]) >= restarted]
        if while_fenced:
            raise DrillFailed("server-1 ran tasks while fenced: %s" % while_fenced)
        f.publish()
        last = now()
        self.record("old owner killed mid-task, forced failover, restarted", ["failback_drill_slow"], first, last,
                    "since %s; nothing ran while fenced" % due.strftime("%H:%M:%S"))

    # 5 -------------------------------------------------------------------------------------------
    def interrupted_then_rerun(self):
        f = self.fleet
        first = now()
        generation = f.generation()
        request = {"failover_from": "server-2", "failover_to": "server-1", "failover_dags": "failback_drill_quick"}
        _rc, _output, killed = f.playbook("failover.yml", request, kill_when=lambda: f.generation() > generation)
        if not killed:
            raise DrillFailed("failover.yml ended before it could be killed after the commit")
        sleep_until(now() + datetime.timedelta(seconds=45), "the old owner still runs it under the old map")
        f.failover(**{"from": "server-2", "to": "server-1", "dags": "failback_drill_quick"})
        last = now()
        self.record("failover killed after the commit, run again", ["failback_drill_quick"], first, last)

    # 6 -------------------------------------------------------------------------------------------
    def cluster_switchover_and_failback(self):
        """server -> cluster -> server with runs in flight on both sides (each DAG moves from its owner)."""
        f = self.fleet
        dags = "failback_drill_quick,failback_drill_slow"
        first = now()
        sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=8), "slow task in flight")
        f.failover(**{"to": "cluster-1", "dags": dags})
        sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=8), "slow task in flight")
        f.failover(**{"from": "cluster-1", "to": "server-1", "dags": dags})
        last = now()
        self.record("server <-> cluster switchover and failback (runs in flight)", dags.split(","), first, last)

    # 7 -------------------------------------------------------------------------------------------
    def cluster_stopped_then_forced(self):
        """The cluster owns the quick DAG and its Airflow stops (its API is fine): forced failover to a server
        with catch-up since the stop; the cluster's pods come back with the new map and run nothing of it."""
        f = self.fleet
        first = now()
        f.failover(**{"to": "cluster-1", "dags": "failback_drill_quick"})
        stop_at = f.next_due("failback_drill_quick", now() + datetime.timedelta(seconds=20)) + datetime.timedelta(seconds=8)
        sleep_until(stop_at, "an interval on the cluster, then between two quick intervals")
        f.ctl("cluster-1", "stop")
        stopped = now()
        sleep_until(stopped + datetime.timedelta(seconds=45), "intervals nobody runs")
        f.failover(**{"from": "cluster-1", "to": "server-1", "dags": "failback_drill_quick", "force": "true",
                      "catchup_since": iso(stop_at)})
        restarted = now()
        f.boot("cluster-1")
        f.wait_healthy("cluster-1")
        time.sleep(25)
        after = [e for e in f.ledger() if e["installation"] == "cluster-1" and parse(e["at"]) >= restarted]
        if after:
            raise DrillFailed("cluster-1 ran the moved DAG after it came back: %s" % after)
        f.publish()
        last = now()
        self.record("cluster's Airflow stopped, forced failover to a server with catch-up", ["failback_drill_quick"],
                    first, last, "since %s; nothing ran on the cluster after" % stop_at.strftime("%H:%M:%S"))

    ALL = ("switchover_and_failback", "deferred_in_flight", "stopped_then_forced", "killed_mid_task",
           "interrupted_then_rerun", "cluster_switchover_and_failback", "cluster_stopped_then_forced")

    def table(self):
        header = "| drill | DAG | window | intervals | once | twice | never | ran on |"
        lines = [header, "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for row in self.rows:
            lines.append("| %s | %s | %s | %d | %d | %d | %d | %s |" % (
                row["drill"] + (" (%s)" % row["note"] if row["note"] else ""), row["dag"], row["window"],
                row["intervals"], row["once"], len(row["twice"]), len(row["never"]),
                ", ".join("%s %d" % kv for kv in sorted(row["where"].items()))))
        return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--only", action="append", choices=Drills.ALL)
    parser.add_argument("--table", help="also write the drill table (Markdown) to this file")
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        fleet = Fleet(json.load(handle))
    drills = Drills(fleet)
    failed, diagnosis = [], ("", "")
    for name in args.only or Drills.ALL:
        log("=== drill: %s" % name)
        try:
            getattr(drills, name)()
        except (DrillFailed, subprocess.CalledProcessError, OSError) as exc:
            failed.append("%s: %s" % (name, exc))
            log("DRILL FAILED: %s: %s" % (name, str(exc)[-3000:]))
            try:
                diagnosis = fleet.diagnose()
                log("the fleet when the drill failed:\n" + diagnosis[1])
            except Exception as diag:  # pylint: disable=broad-except
                diagnosis = ("no diagnosis: %s" % diag, "")
            break  # the fleet is in an unknown state: later drills would only add noise
    table = drills.table()
    print("\n" + table + "\n")
    for name, extra, seconds, rc in fleet.timings:
        print("timing: %s %s %.1f s rc=%s" % (name, json.dumps(extra or {}, sort_keys=True), seconds, rc))
    print("failovers run again after a drain timeout: %d" % fleet.drain_retries)
    if args.table:
        with open(args.table, "w") as handle:
            handle.write(table + "\n")
    bad = [row for row in drills.rows if row["twice"] or row["never"]]
    for row in bad:
        print("NOT EXACTLY ONCE: %s %s twice=%s never=%s" % (row["drill"], row["dag"], row["twice"], row["never"]))
    for message in failed:
        print("FAILED: %s" % message[-3000:])
    if failed:
        print("THE FLEET WHEN IT FAILED (runs newest first):\n" + diagnosis[0])
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())

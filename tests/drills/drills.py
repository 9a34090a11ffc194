"""Exactly-once drills on two real Airflow installations (the Molecule scenario `drills`).

The DAGs of tests/drills/dags/failback_drills.py append a line to a ledger outside Airflow's
database when a task completes.  Each drill does something to the fleet - a planned switchover and
failback with runs in flight, a switchover while a task is deferred, an old owner stopped and a
forced failover with catch-up, an old owner killed in the middle of a task, a failover killed after
it changed the controller's map and run again, a server <-> cluster switchover and failback, a
cluster whose Airflow stops, failed over forced with catch-up, and the automatic watcher (class
Watcher, default settings) failing over an owner whose containers are killed, which then flaps;
then, with the fleet on the lease (airflow_placement_source s3, class Authority), an owner
partitioned while it runs, a failover killed -9 during its lease wait, an owner cut off from the
authority but reachable (a planned failover hands its guards the revoke stage and grants a refresh
later, not a lease later) and authority outages of 15 s and of twice the lease - and then every
scheduled interval of the drill's window must be in the ledgers exactly once.  A drill table is printed at the end; the
exit code is 1 when any interval ran twice or never (or a step failed).

    drills.py CONFIG.json [--only NAME ...]   (a lease drill alone runs lease_switch first)

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
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

import authority_bridge

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import failback_testlib as lab  # noqa: E402  (tests/failback_testlib.py: wait_port, stop_process)

UTC = datetime.timezone.utc
PERIODS = {"failback_drill_quick": 20, "failback_drill_slow": 60, "failback_drill_deferred": 60,
           "failback_drill_patient": 30}
SETTLE_TIMEOUT = 300
PLAYBOOK_TIMEOUT = 900
# The lease drills: moto's S3 on 127.0.0.1:AUTHORITY_PORT is the fleet's authority
# (airflow_placement_source type s3); the servers' containers reach it through authority_bridge.
AUTHORITY_PORT = 8097
# A guard confirms the map when a task starts; the quick DAG starts one every 20 s, so a lease of 40 s
# outlasts an outage of 15 s (the short outage drill) on every installation that runs it.
LEASE = {"refresh": 5, "lease": 40, "clock_margin": 2}
#: Seconds after a partition by which the partitioned owner's quick tasks must have ended: its last
#: confirmation was before the cut, so its lease ended at most LEASE after it, plus a quick task's length
#: on a loaded machine (the guard decides before the task records).
FAIL_CLOSED_WITHIN = LEASE["lease"] + 20
#: The watcher's default reading interval and window (plugins/module_utils/auto_failover.py DEFAULTS).
WATCHER_INTERVAL, WATCHER_WINDOW = 10, 30
#: The long authority outage: twice the lease, within what the patient DAG's retries (4 x 20 s) ride out.
LONG_OUTAGE = 2 * LEASE["lease"]


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
        self.diagnosis = None
        self.vars_files = []  # -e @FILE for every playbook (the lease drills' airflow_placement_source)
        self.authority = None

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
    def playbook(self, name, extra=None, timeout=PLAYBOOK_TIMEOUT, kill_when=None, inventories=(), vars_files=()):
        argv = [self.config["ansible_playbook"], "-i", self.config["inventory"]]
        for inventory in inventories:
            argv += ["-i", inventory]
        argv.append(os.path.join(self.config["repo"], "playbooks", name))
        for path in self.vars_files + list(vars_files):
            argv += ["-e", "@" + path]
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
        summary = [line for line in output.splitlines() if "Warning" not in line and (
            "moved " in line or "re-ran" in line or "LEFT" in line or "kept by" in line or "nothing to move" in line)]
        log("%s ended rc=%s after %.1f s%s %s" % (name, proc.returncode, seconds, " (killed)" if killed else "",
                                                  " | ".join(s.strip() for s in summary[-3:])))
        return proc.returncode, output, killed

    def failover(self, expect_rc=0, inventories=(), **extra):
        extra = dict(("failover_" + k, v) for k, v in extra.items())
        rc, output, _killed = self.playbook("failover.yml", extra, inventories=inventories)
        if rc == 2 and "Nothing was granted yet: run failover.yml again to wait longer" in output:
            # The old owner's runs did not end within the drain timeout. Do what the message tells an
            # operator (run it again), once, and show what the fleet looked like first.
            log("the drain timed out; the fleet now:\n%s\nrunning failover.yml again, as its message says"
                % self.diagnose()[0])
            self.drain_retries += 1
            rc, output, _killed = self.playbook("failover.yml", extra, inventories=inventories)
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
        _unit_env, commands = lab.systemd_unit("/etc/systemd/system/%s" % inst["unit"])
        for key in ("ExecStartPre", "ExecStart"):
            for argv in commands.get(key, []):
                subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=900)
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
                    shown = self.runs_text(name, dag_id, "order_by=-run_after&limit=4")
                    lines.append("--- %s %s paused=%s: %s" % (name, dag_id, dag.get("is_paused"), shown))
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

    def explain(self, dag_id, due):
        """What each installation's Airflow says about the run of *dag_id* due at *due* (a run the ledger misses or
        holds twice): its runs with that due time and their task instances' states and tries."""
        lines = []
        window = "run_after_gte=%s&run_after_lte=%s" % (
            iso(due - datetime.timedelta(seconds=1)).replace(":", "%3A"), iso(due + datetime.timedelta(seconds=1)).replace(":", "%3A"))
        for name in sorted(self.installations):
            try:
                lines.append("%s: %s" % (name, self.runs_text(name, dag_id, window)))
            except Exception as exc:  # pylint: disable=broad-except
                lines.append("%s: not readable (%s)" % (name, exc))
        return "\n".join(lines)

    def runs_text(self, name, dag_id, query):
        """The runs of *dag_id* that Airflow's ``dagRuns?QUERY`` lists on installation *name*, with their task
        instances' states, tries and times, on one line."""
        shown = []
        for run in self.api(name, "GET", "/dags/%s/dagRuns?%s" % (dag_id, query))["dag_runs"]:
            tis = self.api(name, "GET", "/dags/%s/dagRuns/%s/taskInstances" % (dag_id, run["dag_run_id"]))
            tries = ", ".join("%s try %s %s..%s" % (ti["state"], ti.get("try_number"), ti.get("start_date"), ti.get("end_date"))
                              for ti in tis["task_instances"])
            shown.append("%s %s (%s..%s) [%s]" % (run["dag_run_id"], run["state"], run.get("start_date"), run.get("end_date"),
                                                  tries))
        return " | ".join(shown) or "no run"

    def wait_quiet(self, name, dag_ids, last_reading, timeout=240):
        """Wait (bounded) for a moment at which a failover with catch-up since the watcher's last healthy reading
        of *name* is exact: *name* has created and finished every run of *dag_ids* due so far, and none of them is
        due since *last_reading()* (epoch seconds; the catch-up re-runs those on the new owner, which cannot ask a
        dead owner whether it ran them). Runs in flight at a death are listed by the catch-up, not re-run (see
        docs/failover.md): on a loaded machine a scheduler starts a run up to a minute late, so a fixed moment
        after a due time is no quiet moment."""
        deadline = time.monotonic() + timeout
        why = "not read yet"
        while time.monotonic() < deadline:
            moment, reading = now(), last_reading()
            last_due = dict((d, self.next_due(d, moment) - datetime.timedelta(seconds=PERIODS[d])) for d in dag_ids)
            try:
                busy = [(r["dag_id"], r["run_after"], r["state"]) for r in self.api(
                    name, "GET", "/dags/~/dagRuns?state=queued&state=running&limit=100")["dag_runs"] if r["dag_id"] in dag_ids]
                latest = dict((d, self.api(name, "GET", "/dags/%s/dagRuns?order_by=-run_after&limit=1" % d)["dag_runs"])
                              for d in dag_ids)
            except (OSError, ValueError) as exc:
                busy, latest = [("api", str(exc), "")], {}
            missing = sorted(d for d in dag_ids if not latest.get(d) or parse(latest[d][0]["run_after"]) < last_due[d])
            recent = sorted(d for d in dag_ids if reading is None or last_due[d].timestamp() >= reading - 1)
            soon = sorted(d for d in dag_ids if (self.next_due(d, moment) - moment).total_seconds() < 3)
            if not busy and not missing and not recent and not soon:
                log("%s is quiet: every run due so far is over, none due since the last healthy reading" % name)
                return
            why = "busy %s, not created yet %s, due since the last healthy reading %s, due within 3 s %s" % (
                busy, missing, recent, soon)
            time.sleep(1)
        raise DrillFailed("%s had no quiet moment within %d s: %s" % (name, timeout, why))

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


class Authority(object):
    """The lease drills' authority: moto's S3 on 127.0.0.1, a bucket, keys, and the bridge to the servers.

    Started by the first lease drill and stopped at the end of the drills.  Every playbook from then
    on gets ``-e @lease.json`` (``airflow_placement_source`` type s3 with :data:`LEASE`).
    """

    BUCKET = "failback-drills"
    KEY = "failback/placement.yml"

    def __init__(self, fleet):
        self.fleet = fleet
        work = fleet.config["log_dir"]
        os.makedirs(work, exist_ok=True)
        self.url = "http://127.0.0.1:%d" % AUTHORITY_PORT
        self.log = open(os.path.join(work, "moto.log"), "w")
        moto = os.path.join(fleet.config["repo"], ".venv-airflow", "bin", "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(AUTHORITY_PORT)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            lab.wait_port(AUTHORITY_PORT, self.proc, "moto_server", timeout=60)
        except RuntimeError as exc:
            raise DrillFailed("%s (log: %s/moto.log)" % (exc, work))
        urllib.request.urlopen(urllib.request.Request("%s/%s" % (self.url, self.BUCKET), method="PUT"), timeout=10).close()
        # moto does not check keys: these only have to be well formed (the roles deliver them as files).
        keys = {"access_key_id": "AKIADRILLSWRITER0001", "secret_access_key": "drills-writer-key"}
        writer = os.path.join(work, "placement-writer.json")
        with open(writer, "w") as handle:
            json.dump(keys, handle)
        os.chmod(writer, 0o600)
        self.vars_file = os.path.join(work, "lease.json")
        with open(self.vars_file, "w") as handle:
            json.dump({"airflow_placement_source": dict(
                LEASE, type="s3", url="s3://%s/%s" % (self.BUCKET, self.KEY), region="eu-west-1", endpoint=self.url,
                credentials={"access_key_id": "AKIADRILLSREADER0001", "secret_access_key": "drills-reader-key"},
                controller_credentials_file=writer)}, handle)
        servers = dict((name, inst) for name, inst in fleet.installations.items() if inst.get("kind") != "cluster")
        self.bridge = authority_bridge.Bridge(AUTHORITY_PORT, dict((n, i["project"]) for n, i in servers.items()),
                                              env=next(iter(servers.values())).get("env"), log=log)
        self.bridge.keep()
        self.servers = sorted(servers)
        # A copy of the inventory's hosts in which a server cannot be reached (ssh to a closed port).
        self.down = {}
        for name in self.servers:
            path = os.path.join(work, "down-%s.yml" % name)
            with open(path, "w") as handle:
                json.dump({"all": {"hosts": {name: {"ansible_connection": "ssh", "ansible_host": "127.0.0.1",
                                                    "ansible_port": 1}}}}, handle)
            self.down[name] = path
        # The drills read the object as the guards do: a signed GET (the collection's S3 client).
        sys.path.insert(0, os.path.join(fleet.config["repo"], ".collections"))
        from ansible_collections.failback.airflow.plugins.module_utils import s3_object  # pylint: disable=import-outside-toplevel
        self.bucket = s3_object.Bucket(self.BUCKET, region="eu-west-1", endpoint=self.url, credentials=keys)
        log("authority: moto's S3 on %s, bucket %s; the servers reach it through the bridge" % (self.url, self.BUCKET))

    def read(self):
        """``(generation, stage)`` of the object the guards read (a flat map is generation 0), or
        ``(None, None)`` when there is none or it cannot be read."""
        try:
            status, body, _etag = self.bucket.get(self.KEY)
        except (OSError, ValueError, RuntimeError):  # s3_object.S3Error: no answer, or an error status
            return None, None
        if status != 200:
            return None, None
        meta = (yaml.safe_load(body.decode("utf-8")) or {}).get("@failback") or {}
        return meta.get("generation", 0), meta.get("stage")

    def stop(self):
        self.bridge.stop()
        lab.stop_process(self.proc, timeout=15)
        self.log.close()


class Watcher(object):
    """The opt-in automatic failover as the airflow_watcher role sets it up, with the role's default settings.

    watch.yml writes the watcher's config and systemd unit (nothing installed: ansible-rulebook is in the
    controller's virtualenv, Java is Debian's); there is no systemd here, so the unit's own command line runs,
    with the unit's environment, until :meth:`stop`.
    """

    def __init__(self, fleet, pairs):
        self.fleet = fleet
        work = os.path.join(fleet.config["log_dir"], "watch")
        os.makedirs(work, exist_ok=True)
        servers = dict((n, i) for n, i in fleet.installations.items() if i.get("kind") != "cluster")
        settings = os.path.join(work, "settings.json")
        with open(settings, "w") as handle:
            json.dump({"airflow_watcher_pairs": pairs, "airflow_watcher_dir": work, "airflow_watcher_unit_dir": work,
                       "airflow_watcher_venv": os.path.dirname(os.path.dirname(fleet.config["ansible_playbook"])),
                       "airflow_watcher_install": False, "airflow_watcher_service": False,
                       "airflow_watcher_health_urls": dict(
                           (n, "http://127.0.0.1:%d/api/v2/monitor/health" % i["port"]) for n, i in servers.items())},
                      handle)
        rc, output, _killed = fleet.playbook("watch.yml", vars_files=[settings])
        if rc != 0:
            raise DrillFailed("watch.yml ended %s:\n%s" % (rc, output[-6000:]))
        with open(os.path.join(work, "watch.json")) as handle:
            self.state_path = json.load(handle)["state"]
        unit_env, commands = lab.systemd_unit(os.path.join(work, "failback-watch.service"))
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(fleet.config["repo"], "ansible.cfg"))
        env.update(unit_env)
        command = commands["ExecStart"][0]
        if os.path.exists(self.state_path):
            os.unlink(self.state_path)  # a watcher of an earlier run of the drills
        self.log_path = os.path.join(work, "rulebook.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(command, cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log("watcher started (ansible-rulebook, pid %d): %s" % (self.proc.pid, " ".join(command[-6:])))

    def state(self):
        try:
            with open(self.state_path) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def failovers(self):
        return [d for d in self.state().get("decisions") or [] if d.get("action") == "failover"]

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.state()):
                return
            if self.proc.poll() is not None:
                raise DrillFailed("the watcher stopped (%s): %s" % (self.proc.returncode, open(self.log_path).read()[-4000:]))
            time.sleep(1)
        raise DrillFailed("%s: not within %d s (watcher state: %s)" % (what, timeout, json.dumps(self.state())[-2000:]))

    def wait_playbooks(self, timeout):
        """Wait until no ansible-playbook the rulebook started runs any more."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = []
            for pid in os.listdir("/proc"):
                try:
                    with open("/proc/%s/stat" % pid) as handle:
                        session = int(handle.read().rsplit(")", 1)[1].split()[3])
                    with open("/proc/%s/cmdline" % pid, "rb") as handle:
                        cmdline = handle.read()
                except (OSError, ValueError, IndexError):
                    continue
                if session == self.proc.pid and b"ansible-playbook" in cmdline:
                    running.append(pid)
            if not running:
                return
            time.sleep(2)
        raise DrillFailed("the watcher's failover.yml still runs after %d s" % timeout)

    def summary(self, timeout=20):
        """The failover's summary (its "moved N: ..." message) from the rulebook's log, on one line (ansible-rulebook
        writes a playbook's output when it has ended: waited for, at most *timeout* s)."""
        deadline = time.monotonic() + timeout
        while True:
            self.log.flush()
            with open(self.log_path, errors="replace") as handle:
                lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in handle]
            starts = [i for i, line in enumerate(lines) if line.startswith("msg: 'moved ")]
            if starts or time.monotonic() >= deadline:
                break
            time.sleep(1)
        if not starts:
            return "(no summary in %s)" % self.log_path
        said = []
        for line in lines[starts[-1]:]:
            if not line or line.startswith(("TASK ", "PLAY ", "ok:", "changed:")):
                break
            said.append(line)
        return " ".join(said)

    def stop(self):
        lab.stop_process(self.proc, timeout=15)
        self.log.close()


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
            for due in never + [t.split(" ")[0] for t in twice]:
                log("%s %s due %s ran %s; the installations say:\n%s" % (
                    drill, dag_id, due, "never" if due in never else "twice", self.fleet.explain(dag_id, parse(due))))
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

    # 8 -------------------------------------------------------------------------------------------
    def watcher_killed_owner(self):
        """Automatic failover with the watcher's default settings (reads every 10 s, down after 3 failed
        readings over 30 s, cooldown 1 h), the push model: server-1's containers are killed -9 between two
        slow runs, the watcher fails everything server-1 owns over to server-2 with catch-up since its last
        healthy reading. RTO: the kill -> the first task of a moved DAG on server-2. Then server-1 flaps:
        it comes back (fenced, then published), a person fails the quick DAG back to it, and it goes down
        again within the cooldown: the watcher holds (one automatic failover), and server-1, started again
        by a person, runs the intervals it missed itself."""
        f = self.fleet
        with open(f.config["map"]) as handle:
            from_map = yaml.safe_load(handle) or {}
        moved = sorted(d for d in PERIODS if from_map.get(d) == "server-1")
        if "failback_drill_quick" not in moved or "failback_drill_slow" not in moved:
            raise DrillFailed("the watcher drill needs server-1 to own the quick and slow DAGs; the map: %s" % from_map)
        watcher = Watcher(f, {"server-1": "server-2"})
        try:
            watcher.wait(lambda st: st.get("armed") == ["server-1 -> server-2"] and set(
                (st.get("last_readings") or {}).values()) == {"healthy"}, 180, "the watcher reads both servers healthy")
            first = now()
            sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=45),
                        "after a slow run, before the next")
            f.wait_quiet("server-1", moved, lambda: (watcher.state().get("last_healthy") or {}).get("server-1"))
            f.kill("server-1")
            killed = now()
            watcher.wait(lambda st: any(d.get("action") == "failover" for d in st.get("decisions") or []), 300,
                         "the watcher decides to fail server-1 over")
            decided = now()
            deadline = time.monotonic() + 300
            started = []
            while not started and time.monotonic() < deadline:
                started = sorted(parse(e["at"]) for e in f.ledger() if e["installation"] == "server-2"
                                 and e["dag_id"] in moved and parse(e["at"]) >= killed)
                time.sleep(2)
            if not started:
                raise DrillFailed("no moved DAG ran on server-2 within 300 s of the watcher's decision")
            rto = (started[0] - killed).total_seconds()
            watcher.wait_playbooks(PLAYBOOK_TIMEOUT)
            log("the watcher's failover.yml said: %s" % watcher.summary())
            decision = watcher.failovers()[0]
            log("watcher: %s -> %s since %s, reasons %s; RTO %.0f s" % (
                decision["from"], decision["to"], decision["since"], decision["reasons"], rto))
            f.boot("server-1")
            f.wait_healthy("server-1")
            f.publish()
            f.failover(**{"from": "server-2", "to": "server-1", "dags": "failback_drill_quick"})
            watcher.wait(lambda st: (st.get("last_readings") or {}).get("server-1") == "healthy", 120,
                         "the watcher reads server-1 healthy again")
            sleep_until(f.next_due("failback_drill_quick", now()) + datetime.timedelta(seconds=8),
                        "between two quick intervals")
            down = time.time()  # before the stop: the watcher may read it failing while the containers stop
            f.ctl("server-1", "stop")

            # the watcher's rules call server-1 down once it has failed for `window` s over `probes` readings;
            # a decision round after that has decided (a repeated hold is kept once, so the proof is that no
            # second failover came and the map still gives the quick DAG to server-1)
            def down_long_enough(st):
                since = (st.get("failing_since") or {}).get("server-1")
                return since is not None and since >= down - 1 and \
                    st.get("updated_at", 0) - since >= WATCHER_WINDOW + WATCHER_INTERVAL

            watcher.wait(down_long_enough, 180, "the watcher reads server-1 down again for longer than its window")
            with open(f.config["map"]) as handle:
                owner = (yaml.safe_load(handle) or {}).get("failback_drill_quick")
            if len(watcher.failovers()) != 1 or owner != "server-1":
                raise DrillFailed("server-1 went down again within the cooldown: failovers %s, the quick DAG's owner %s"
                                  % (watcher.failovers(), owner))
            held = [d for d in watcher.state().get("decisions") or [] if d.get("action") == "hold"]
            f.ctl("server-1", "start")
            f.wait_healthy("server-1")
        finally:
            watcher.stop()
        last = now()
        self.record("watcher: owner's containers killed -9, automatic failover; owner flaps within the cooldown",
                    moved, first, last, "RTO %.0f s (decided %.0f s after the kill); server-1 down again within the cooldown: no second failover (%s)"
                    % (rto, (decided - killed).total_seconds(), held[-1]["why"] if held else "no hold recorded"))

    # 9 -------------------------------------------------------------------------------------------
    def lease_switch(self):
        """The fleet moves to the lease: site.yml with airflow_placement_source type s3 recreates every
        container with the guard's new settings (the bridge follows them); then a minute of quick intervals
        must run exactly once, decided with the map confirmed at the bucket."""
        f = self.fleet
        f.authority = Authority(f)
        f.vars_files.append(f.authority.vars_file)
        rc, output, _killed = f.playbook("site.yml")
        if rc != 0:
            raise DrillFailed("site.yml with the lease ended %s:\n%s" % (rc, output[-6000:]))
        for name in f.authority.servers:
            f.wait_healthy(name)
        if not authority_bridge.wait_ready(f.authority.bridge, f.authority.servers):
            raise DrillFailed("the bridge does not listen in every server's containers")
        generation, stage = f.authority.read()
        if generation != f.generation() or stage:
            raise DrillFailed("the authority holds generation %s (stage %s), the controller %s"
                              % (generation, stage, f.generation()))
        first = now()
        sleep_until(first + datetime.timedelta(seconds=60), "quick intervals decided with the bucket's map")
        asked = dict(f.authority.bridge.accepted)
        if not all(asked.values()):
            raise DrillFailed("a server's guard never asked the authority: %s" % asked)
        self.record("the fleet moved to the lease (site.yml)", ["failback_drill_quick"], first, now(),
                    "guards' requests to the bucket: %s" % ", ".join("%s %d" % kv for kv in sorted(asked.items())))

    # 10 ------------------------------------------------------------------------------------------
    def lease_partitioned_owner(self):
        """server-1 owns both DAGs, a slow task in flight, and is cut off from the controller and from the
        authority while it runs on. A forced failover waits for its lease and grants server-2; server-1
        fails closed by itself. When the partition heals, the failover run again with the time of the cut
        asks server-1 which runs it executed and the catch-up runs the rest: every interval exactly once."""
        f = self.fleet
        a = f.authority
        dags = "failback_drill_quick,failback_drill_slow"
        first = now()
        sleep_until(f.next_due("failback_drill_slow", now()) + datetime.timedelta(seconds=8), "slow task in flight")
        a.bridge.cut("server-1")
        cut = now()
        forced = {"from": "server-1", "to": "server-2", "dags": dags, "force": "true"}
        f.failover(inventories=[a.down["server-1"]], **forced)
        waited = f.timings[-1][2]
        sleep_until(cut + datetime.timedelta(seconds=FAIL_CLOSED_WITHIN + 25), "server-1 runs on, cut off")
        quick_s1 = [parse(e["at"]) for e in f.ledger()
                    if e["installation"] == "server-1" and e["dag_id"] == "failback_drill_quick" and parse(e["at"]) >= cut]
        late = [iso(at) for at in quick_s1 if at > cut + datetime.timedelta(seconds=FAIL_CLOSED_WITHIN)]
        if late:
            raise DrillFailed("server-1 ran quick tasks more than %d s after it was cut off: %s"
                              % (FAIL_CLOSED_WITHIN, late))
        refused = a.bridge.refused["server-1"]
        if not refused:
            raise DrillFailed("server-1's guard never tried the authority while it was cut off")
        a.bridge.heal("server-1")
        f.failover(**{"from": "server-1", "to": "server-2", "dags": dags, "force": "true", "catchup_since": iso(cut)})
        last = now()
        self.record("owner partitioned with a task in flight, forced failover, healed, run again with since",
                    dags.split(","), first, last,
                    "cut %s; forced failover %.0f s; server-1's last quick task %s s after the cut; %d requests refused"
                    % (cut.strftime("%H:%M:%S"), waited,
                       "%.0f" % (max(quick_s1) - cut).total_seconds() if quick_s1 else "none", refused))

    # 11 ------------------------------------------------------------------------------------------
    def lease_killed_waiting(self):
        """A planned failover is killed -9 while it waits for the lease (the bucket holds its revoke stage:
        the moved DAG runs nowhere); the same command run again finishes the move and catches up."""
        f = self.fleet
        a = f.authority
        first = now()
        before, _stage = a.read()

        def waiting():
            generation, stage = a.read()
            return stage == "revoke" and generation is not None and generation > before

        request = {"failover_from": "server-2", "failover_to": "server-1", "failover_dags": "failback_drill_quick"}
        _rc, _output, killed = f.playbook("failover.yml", request, kill_when=waiting)
        if not killed:
            raise DrillFailed("failover.yml ended before it wrote the revoke stage")
        sleep_until(now() + datetime.timedelta(seconds=30), "the revoke stage holds the moved DAG back")
        f.failover(**{"from": "server-2", "to": "server-1", "dags": "failback_drill_quick"})
        generation, stage = a.read()
        if stage or generation != f.generation():
            raise DrillFailed("after the second run the authority holds generation %s (stage %s), the controller %s"
                              % (generation, stage, f.generation()))
        last = now()
        self.record("failover killed -9 during its lease wait, run again", ["failback_drill_quick"], first, last)

    # 12 ------------------------------------------------------------------------------------------
    def lease_confirmed_cut_owner(self):
        """server-1 owns the quick DAG and is cut off from the authority, not from the controller. A planned
        failover to server-2 hands server-1's guards the revoke stage (their shared cache) and grants one refresh
        later instead of a lease later. server-1 decides with the revoke stage (then fails closed when its lease
        ends), server-2 runs the rest: every interval once, and the failover waited at most a refresh."""
        f = self.fleet
        a = f.authority
        with open(f.config["map"]) as handle:
            owner = (yaml.safe_load(handle) or {}).get("failback_drill_quick")
        if owner != "server-1":
            raise DrillFailed("the drill needs server-1 to own the quick DAG; it is %s's" % owner)
        first = now()
        sleep_until(f.next_due("failback_drill_quick", now()) + datetime.timedelta(seconds=3), "a quick task in flight")
        a.bridge.cut("server-1")
        cut = now()
        output = f.failover(**{"from": "server-1", "to": "server-2", "dags": "failback_drill_quick"})
        took = f.timings[-1][2]
        flat = " ".join(output.split())  # ansible folds a long message over lines
        waits = [float(w) for w in re.findall(r"waiting ([0-9.]+) s before the grant", flat)]
        if "guard was handed it" not in flat or not waits or max(waits) > LEASE["refresh"] + 1:
            raise DrillFailed("the failover did not grant within a refresh of handing server-1 the revoke stage (waits %s):\n%s"
                              % (waits, output[-6000:]))
        sleep_until(now() + datetime.timedelta(seconds=20), "server-2 runs the quick DAG while server-1 is cut off")
        a.bridge.heal("server-1")
        last = now()
        self.record("owner cut off from the authority, reachable: planned failover without the lease wait",
                    ["failback_drill_quick"], first, last, "cut %s; failover %.0f s, waited %.1f s for the grant (lease %d s)"
                    % (cut.strftime("%H:%M:%S"), took, max(waits), LEASE["lease"]))

    # 13 ------------------------------------------------------------------------------------------
    def lease_short_outage(self):
        """The authority is unreachable for 15 s (less than the lease) from every server, over a quick
        interval: nothing changes (every interval once, on its first try)."""
        f = self.fleet
        a = f.authority
        first = now()
        sleep_until(f.next_due("failback_drill_quick", now()) - datetime.timedelta(seconds=5), "before a quick interval")
        refused = dict(a.bridge.refused)
        for name in a.servers:
            a.bridge.cut(name)
        time.sleep(15)
        for name in a.servers:
            a.bridge.heal(name)
        tried = sum(a.bridge.refused.values()) - sum(refused.values())
        sleep_until(now() + datetime.timedelta(seconds=30), "intervals after the outage")
        last = now()
        self.record("authority unreachable for 15 s (lease %d s)" % LEASE["lease"], ["failback_drill_quick"],
                    first, last, "requests refused %d" % tried)
        retried = [e for e in f.ledger() if e["dag_id"] == "failback_drill_quick" and e["try"] != 1
                   and first <= parse(e["run_after"]) <= last]
        if retried:
            raise DrillFailed("quick tasks needed a retry around the short outage: %s" % retried)

    # 14 ------------------------------------------------------------------------------------------
    def lease_long_outage(self):
        """The authority is unreachable from every server for LONG_OUTAGE s, twice the lease: each server's guard
        fails its tasks closed once its lease has run out, and decides again by itself when the authority
        answers. The patient DAG's retries outlast the outage: every interval once, those due in the outage on
        a later try; nothing completes on a server between the end of its lease and the end of the outage."""
        f = self.fleet
        a = f.authority
        dag = "failback_drill_patient"
        first = now()
        sleep_until(f.next_due(dag, now()) - datetime.timedelta(seconds=5), "before a patient interval")
        refused = dict(a.bridge.refused)
        for name in a.servers:
            a.bridge.cut(name)
        cut = now()
        sleep_until(cut + datetime.timedelta(seconds=LONG_OUTAGE), "the authority unreachable for %d s" % LONG_OUTAGE)
        for name in a.servers:
            a.bridge.heal(name)
        healed = now()
        tried = sum(a.bridge.refused.values()) - sum(refused.values())
        last = healed + datetime.timedelta(seconds=20)
        sleep_until(last, "an interval after the outage")
        self.record("authority unreachable for %d s (lease %d s)" % (LONG_OUTAGE, LEASE["lease"]), [dag], first, last,
                    "requests refused %d" % tried)
        # the short tasks (the slow DAG's may have started before a lease ended and record 40 s later)
        entries = [e for e in f.ledger() if e["installation"] in a.servers and e["dag_id"] in (dag, "failback_drill_quick")]
        silent = [e for e in entries if cut + datetime.timedelta(seconds=FAIL_CLOSED_WITHIN) < parse(e["at"]) < healed]
        if silent:
            raise DrillFailed("tasks completed on a server %d s or more after the authority went away, before it came "
                              "back: %s" % (FAIL_CLOSED_WITHIN, silent))
        later = sorted(set(e["run_after"] for e in entries if e["dag_id"] == dag and e["try"] > 1
                           and cut <= parse(e["run_after"]) <= healed))
        if not later:
            raise DrillFailed("no %s interval of the outage needed a later try: nothing failed closed" % dag)
        self.rows[-1]["note"] += "; %d intervals of the outage ran on a later try, none ran %d-%d s after the cut" % (
            len(later), FAIL_CLOSED_WITHIN, LONG_OUTAGE)

    ALL = ("switchover_and_failback", "deferred_in_flight", "stopped_then_forced", "killed_mid_task",
           "interrupted_then_rerun", "cluster_switchover_and_failback", "cluster_stopped_then_forced",
           "watcher_killed_owner", "lease_switch", "lease_partitioned_owner", "lease_killed_waiting",
           "lease_confirmed_cut_owner", "lease_short_outage", "lease_long_outage")
    #: Drills that need the lease (lease_switch first: --only with one of them runs it first).
    LEASE_DRILLS = ("lease_partitioned_owner", "lease_killed_waiting", "lease_confirmed_cut_owner", "lease_short_outage",
                    "lease_long_outage")

    def table(self):
        header = "| drill | DAG | window | intervals | once | twice | never | ran on |"
        lines = [header, "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for row in self.rows:
            lines.append("| %s | %s | %s | %d | %d | %d | %d | %s |" % (
                row["drill"] + (" (%s)" % row["note"] if row["note"] else ""), row["dag"], row["window"],
                row["intervals"], row["once"], len(row["twice"]), len(row["never"]),
                ", ".join("%s %d" % kv for kv in sorted(row["where"].items()))))
        return "\n".join(lines)


def run_drills(drills, fleet, chosen, failed):
    """Run the *chosen* drills in order; stop at the first that fails (its diagnosis in fleet.diagnosis)."""
    for name in chosen:
        log("=== drill: %s" % name)
        try:
            getattr(drills, name)()
        except (DrillFailed, subprocess.CalledProcessError, OSError) as exc:
            failed.append("%s: %s" % (name, exc))
            log("DRILL FAILED: %s: %s" % (name, str(exc)[-3000:]))
            try:
                fleet.diagnosis = fleet.diagnose()
                log("the fleet when the drill failed:\n" + fleet.diagnosis[1])
            except Exception as diag:  # pylint: disable=broad-except
                fleet.diagnosis = ("no diagnosis: %s" % diag, "")
            return  # the fleet is in an unknown state: later drills would only add noise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--only", action="append", choices=Drills.ALL)
    parser.add_argument("--table", help="also write the drill table (Markdown) to this file")
    args = parser.parse_args(argv)
    with open(args.config) as handle:
        fleet = Fleet(json.load(handle))
    drills = Drills(fleet)
    failed = []
    chosen = list(args.only or Drills.ALL)
    if "lease_switch" not in chosen and any(name in Drills.LEASE_DRILLS for name in chosen):
        chosen.insert(min(chosen.index(name) for name in Drills.LEASE_DRILLS if name in chosen), "lease_switch")
    try:
        run_drills(drills, fleet, chosen, failed)
    finally:
        if fleet.authority is not None:
            fleet.authority.stop()
    diagnosis = fleet.diagnosis or ("", "")
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

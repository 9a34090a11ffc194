"""A real Airflow 3 installation on 127.0.0.1, from .venv-airflow, for the tests that need one running.

``LocalAirflow(root, name, dags={file: text})`` lays out an AIRFLOW_HOME with the collection's
guard (as the airflow_placement role does), a SQLite metadata database, the simple auth manager
with one admin whose password is in ``passwords`` and a placement directory (map and fence, as a
server or a projected ConfigMap holds them). ``start()`` runs its components (api-server,
scheduler, dag-processor, triggerer), each of which can be stopped and started alone
(``stop("scheduler")``: what scaling a Deployment to zero does). Integration tests run this with
.venv's Python; the components always run with .venv-airflow's Airflow.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request

import failback_testlib as lab

AIRFLOW = os.path.join(lab.REPO, ".venv-airflow", "bin", "airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def hello_dag(dag_id, message="hello"):
    """The source of a DAG with one PythonOperator task that prints *message* (not scheduled)."""
    return (
        "import pendulum\n"
        "from airflow.providers.standard.operators.python import PythonOperator\n"
        "from airflow.sdk import DAG\n\n"
        "with DAG(%r, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz=\"UTC\"), catchup=False):\n"
        "    PythonOperator(task_id=\"hello\", python_callable=lambda: print(%r))\n" % (dag_id, message))


class LocalAirflow(object):
    def __init__(self, root, name, dags=None, env=None, guard=True, before_migrate=None):
        if not os.path.exists(AIRFLOW):
            raise RuntimeError("Airflow is not installed in .venv-airflow: run `make .venv-airflow/.stamp`")
        self.name = name
        self.home = os.path.join(root, name)
        self.dags_dir = os.path.join(self.home, "dags")
        self.placement_dir = os.path.join(self.home, "placement")
        os.makedirs(self.dags_dir)
        os.makedirs(self.placement_dir)
        if guard:
            lab.build_guard_dir(os.path.join(self.home, "config"))
        for filename, text in (dags or {}).items():
            with open(os.path.join(self.dags_dir, filename), "w") as handle:
                handle.write(text)
        self.port = lab.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.username = "admin"
        self.password = secrets.token_urlsafe(12)
        passwords = os.path.join(self.home, "passwords.json")
        with open(passwords, "w") as handle:
            json.dump({self.username: self.password}, handle)
        self.passwords_file = passwords
        self.env = dict((k, v) for k, v in os.environ.items()
                        if not k.startswith(("FAILBACK_", "AIRFLOW", "AWS_", "VIRTUAL_ENV", "PYTHON")))
        self.env.update(
            AIRFLOW_HOME=self.home,
            AIRFLOW__CORE__DAGS_FOLDER=self.dags_dir,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="%s:admin" % self.username,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=passwords,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL="%s/execution/" % self.url,
            AIRFLOW__API_AUTH__JWT_SECRET="failback-local-airflow-%s-%s" % (name, secrets.token_hex(8)),
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(lab.free_port()),
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD="60",
            FAILBACK_INSTALLATION=name,
            FAILBACK_PLACEMENT_MAP=os.path.join(self.placement_dir, "placement.yml"),
            FAILBACK_PLACEMENT_CACHE_DIR=os.path.join(self.home, "failback-cache"),
        )
        self.env.update(env or {})
        self.processes = {}
        if before_migrate is not None:
            before_migrate(self.home)
        self.airflow("db", "migrate")

    def airflow(self, *args, timeout=300):
        proc = subprocess.run([AIRFLOW] + list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert proc.returncode == 0, "%s: airflow %s\n%s" % (self.name, " ".join(args), (proc.stdout + proc.stderr)[-6000:])
        return proc

    def start(self, *components):
        for component in components or COMPONENTS:
            if component in self.processes:
                continue
            command = [AIRFLOW, component] + (["--host", "127.0.0.1", "--port", str(self.port)]
                                              if component == "api-server" else [])
            log = open(os.path.join(self.home, component + ".out"), "a")
            self.processes[component] = (subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                          start_new_session=True), log)
            if component == "api-server":
                lab.wait_port(self.port, self.processes[component][0], "%s api-server" % self.name)

    def stop(self, *components):
        for component in components or list(self.processes):
            proc, log = self.processes.pop(component, (None, None))
            if proc is not None:
                lab.stop_process(proc)
                log.close()

    def running(self, component):
        entry = self.processes.get(component)
        return entry is not None and entry[0].poll() is None

    def log(self, component, tail=4000):
        path = os.path.join(self.home, component + ".out")
        return open(path).read()[-tail:] if os.path.exists(path) else ""

    def token(self):
        request = urllib.request.Request(self.url + "/auth/token", method="POST", headers={"Content-Type": "application/json"},
                                         data=json.dumps({"username": self.username, "password": self.password}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def api(self, method, path, body=None, token=None):
        headers = {"Accept": "application/json", "Authorization": "Bearer " + (token or self.token())}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def wait(self, predicate, what, timeout=120, interval=1.0):
        """Wait (bounded) until *predicate()* is true; fail naming *what* with the components' logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                pass
            time.sleep(interval)
        raise AssertionError("%s: %s not within %d s\n%s" % (self.name, what, timeout, "\n".join(
            "--- %s\n%s" % (c, self.log(c)) for c in COMPONENTS)))

    def write_map(self, text):
        lab_path = os.path.join(self.placement_dir, "placement.yml")
        tmp = lab_path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.rename(tmp, lab_path)

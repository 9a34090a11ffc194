"""Task logs in one S3 folder for the whole fleet, with real Airflow 3 and moto's S3 on 127.0.0.1.

Two installations ("server-1" and "server-2": Airflow homes with the guard, one placement map in
which server-1 owns the DAG) get the remote-logging settings the airflow_server role derives from
the fleet's airflow_remote_log_* variables (read from the role's own vars by Ansible) and log to
the same ``s3://`` folder of a moto server. Both create the same run: server-2's guard skips the
task first, then server-1 runs it. The task's output - written on server-1 - is read back through
server-2's REST API, and is in the bucket. Every AWS_* variable is removed: the keys can only come
from the connection. Run with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

import failback_testlib as lab
from failback_ansible import REPO, run_playbook
from test_secrets_backend_airflow import ACCESS_KEY, SECRET_KEY, moto_endpoint  # noqa: F401 pylint: disable=unused-import

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
DAG_ID = "failback_remote_log_check"
RUN_ID = "fleet-run-1"
BUCKET = "fleet-task-logs"
MARKER = "remote-log-marker written by"
DAG = '''
import os
import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

with DAG("%s", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    PythonOperator(task_id="hello", python_callable=lambda: print("%s " + os.environ["FAILBACK_INSTALLATION"]))
''' % (DAG_ID, MARKER)


def _role_log_env(tmp_path):
    """The remote-logging environment of the airflow_server role (its vars/main.yml), for the fleet's settings."""
    playbook = tmp_path / "log_env.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_vars: %s\n" % os.path.join(REPO, "roles", "airflow_server", "vars", "main.yml")
        + "    - ansible.builtin.include_vars: %s\n" % os.path.join(REPO, "roles", "airflow_server", "defaults", "main.yml")
        + "    - ansible.builtin.debug:\n        msg: \"{{ _airflow_server_remote_log_env | to_json }}\"\n")
    run = run_playbook(str(playbook), "localhost,", extra_vars={
        "airflow_remote_logging": True, "airflow_remote_log_folder": "s3://%s/fleet" % BUCKET,
        "airflow_remote_log_conn_id": "task_logs"})
    assert run.rc == 0, run
    [hosts] = run.results("debug")
    return json.loads(hosts["localhost"]["msg"])


class Installation(object):
    def __init__(self, root, name, log_env, endpoint):
        self.name = name
        self.home = os.path.join(root, name)
        lab.build_guard_dir(os.path.join(self.home, "config"))
        os.makedirs(os.path.join(self.home, "dags"))
        with open(os.path.join(self.home, "dags", DAG_ID + ".py"), "w") as handle:
            handle.write(DAG)
        placement = os.path.join(root, "placement.yml")
        with open(placement, "w") as handle:
            handle.write("%s: server-1\n" % DAG_ID)
        self.port = lab.free_port()
        self.env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("FAILBACK_", "AIRFLOW", "AWS_")))
        self.env.update(log_env)
        self.env.update(
            AIRFLOW_HOME=self.home,
            AIRFLOW__CORE__DAGS_FOLDER=os.path.join(self.home, "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:%d/execution/" % self.port,
            AIRFLOW__API_AUTH__JWT_SECRET="failback-remote-log-test-jwt-secret-%s" % name,
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(lab.free_port()),
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            AIRFLOW_CONN_TASK_LOGS=json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                                               "extra": {"endpoint_url": endpoint, "region_name": "eu-west-1"}}),
            FAILBACK_INSTALLATION=name,
            FAILBACK_PLACEMENT_MAP=placement,
            FAILBACK_PLACEMENT_CACHE_DIR=os.path.join(self.home, "failback-cache"),
        )
        self.processes = []
        self.airflow("db", "migrate")
        self.airflow("dags", "reserialize")
        self.airflow("dags", "trigger", DAG_ID, "--run-id", RUN_ID)

    def airflow(self, *args):
        proc = subprocess.run([AIRFLOW] + list(args), env=self.env, capture_output=True, text=True, timeout=300,
                              check=False)
        assert proc.returncode == 0, "%s: airflow %s\n%s" % (self.name, " ".join(args), (proc.stdout + proc.stderr)[-6000:])
        return proc

    def start(self):
        for command in (["api-server", "--host", "127.0.0.1", "--port", str(self.port)], ["scheduler"]):
            log = open(os.path.join(self.home, command[0] + ".out"), "w")
            self.processes.append((subprocess.Popen([AIRFLOW] + command, env=self.env, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True), log))
            if command[0] == "api-server":
                lab.wait_port(self.port, self.processes[-1][0], "%s api-server" % self.name)

    def stop(self):
        for proc, log in self.processes:
            lab.stop_process(proc)
            log.close()
        self.processes = []

    def api(self, path, accept="application/json"):
        request = urllib.request.Request("http://127.0.0.1:%d/api/v2%s" % (self.port, path), headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode()

    def task_state(self):
        return json.loads(self.api("/dags/%s/dagRuns/%s/taskInstances/hello" % (DAG_ID, RUN_ID)))["state"]

    def wait_task(self, timeout=180):
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.task_state()
            if state in ("success", "failed", "skipped", "upstream_failed"):
                return state
            time.sleep(2)
        raise AssertionError("%s: the task is still %s after %d s:\n%s" % (
            self.name, state, timeout, open(os.path.join(self.home, "scheduler.out")).read()[-4000:]))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, moto_endpoint):  # noqa: F811 (pytest fixture)
    import boto3

    boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", aws_access_key_id=ACCESS_KEY,
                 aws_secret_access_key=SECRET_KEY).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    root = str(tmp_path_factory.mktemp("remote_logs"))
    log_env = _role_log_env(tmp_path_factory.mktemp("remote_log_env"))
    installations = [Installation(root, name, log_env, moto_endpoint) for name in ("server-1", "server-2")]
    yield installations
    for installation in installations:
        installation.stop()


def test_the_role_sets_remote_logging_to_the_fleet_folder(fleet):
    env = fleet[0].env
    assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://%s/fleet" % BUCKET
    assert env["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "task_logs"


def test_a_log_written_on_the_owner_is_read_through_the_other_installation(fleet, moto_endpoint):  # noqa: F811
    import boto3

    owner, other = fleet
    # The non-owner first (its guard skips the task and uploads its own short log), then the owner.
    other.start()
    assert other.wait_task() == "skipped"
    owner.start()
    assert owner.wait_task() == "success"
    owner.stop()  # the owner is gone: its local files and log server cannot answer any more

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="fleet/").get("Contents", [])]
    key = "fleet/dag_id=%s/run_id=%s/task_id=hello/attempt=1.log" % (DAG_ID, RUN_ID)
    assert key in keys, keys
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert MARKER + " server-1" in stored and MARKER + " server-2" not in stored, stored
    # Both installations' texts of that attempt: Airflow appends to an existing object.
    assert "decision=skip" in stored and stored.index("decision=skip") < stored.index(MARKER), stored

    # server-2's local log holds its own skip only; the owner's output can only come from the bucket.
    local = os.path.join(other.home, "logs", "dag_id=" + DAG_ID, "run_id=" + RUN_ID, "task_id=hello", "attempt=1.log")
    assert MARKER not in open(local).read()
    shown = other.api("/dags/%s/dagRuns/%s/taskInstances/hello/logs/1?full_content=true" % (DAG_ID, RUN_ID))
    assert MARKER + " server-1" in shown, shown[-4000:]
    assert SECRET_KEY not in shown

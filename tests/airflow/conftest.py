"""Real Airflow 3 for the guard tests: an AIRFLOW_HOME with the guard installed as the role lays it out.

``run_dag(dag_id, **env)`` runs ``airflow dags test`` in a subprocess and returns the exit code,
the output, the state of every task instance of that run and the guard's records (XComs
``failback_guard_<decision>``, a list per task instance, oldest first), both read from the sqlite
database.
Run these tests with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

import failback_testlib as lab

HERE = os.path.dirname(os.path.abspath(__file__))
AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
DAG_TIMEOUT = 300


class DagRun(object):
    def __init__(self, proc, states, out_dir, guard_records):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.states = states
        self.out_dir = out_dir
        self.guard_records = guard_records

    def side_effects(self):
        return sorted(os.listdir(self.out_dir))

    def __repr__(self):
        return "DagRun(rc=%s, states=%s)\n%s" % (self.rc, self.states, self.output[-8000:])


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    if not os.path.exists(AIRFLOW):
        pytest.fail("Airflow is not installed in this interpreter's environment: run with .venv-airflow")
    home = str(tmp_path_factory.mktemp("airflow_home"))
    lab.build_guard_dir(os.path.join(home, "config"))
    shutil.copy(os.path.join(HERE, "support", "failback_test_triggers.py"), os.path.join(home, "config"))
    shutil.copytree(os.path.join(HERE, "dags"), os.path.join(home, "dags"))
    env = base_env(home)
    proc = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return home


def base_env(home):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("FAILBACK_", "AIRFLOW")))
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__DAGS_FOLDER=os.path.join(home, "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        FAILBACK_PLACEMENT_CACHE_DIR=os.path.join(home, "failback-cache"),
    )
    return env


def ti_key(task_id, map_index):
    return task_id if map_index < 0 else "%s[%d]" % (task_id, map_index)


@pytest.fixture
def run_dag(airflow_home, tmp_path):
    counter = [0]

    def run(dag_id, **failback_env):
        counter[0] += 1
        out = tmp_path / ("out%d" % counter[0])
        out.mkdir()
        env = base_env(airflow_home)
        env["FAILBACK_TEST_OUT"] = str(out)
        env.update((k, str(v)) for k, v in failback_env.items())
        proc = subprocess.run([AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True,
                              timeout=DAG_TIMEOUT, check=False)
        with sqlite3.connect(os.path.join(airflow_home, "airflow.db")) as db:
            row = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)).fetchone()
            states, records = {}, {}
            if row:
                for task_id, map_index, state in db.execute(
                        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                        (dag_id, row[0])):
                    states[ti_key(task_id, map_index)] = state
                for task_id, map_index, value in db.execute(
                        "SELECT task_id, map_index, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key LIKE ?"
                        " ORDER BY timestamp", (dag_id, row[0], "failback_guard_%")):
                    records.setdefault(ti_key(task_id, map_index), []).append(json.loads(value))
        return DagRun(proc, states, str(out), records)

    return run


@pytest.fixture
def placement_map(tmp_path):
    """Write a map file (in its own directory, like the role does) and return its path."""
    directory = tmp_path / "placement"
    directory.mkdir()
    path = directory / "placement.yml"

    def write(text):
        path.write_text(text)
        return str(path)

    return write

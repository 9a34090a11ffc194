"""Drill DAGs: every task appends one line to a ledger outside Airflow's database when it completes.

The ledger is ``$AIRFLOW_HOME/logs/failback-ledger.jsonl`` (the installation's ``logs/`` on the
host), one JSON object per completed task: DAG, run id, logical date, due time (``run_after``),
installation and try number.  The drills read the ledgers of every installation and check that each
scheduled interval of the drill window is in them exactly once.

All DAGs start at the time in ``failback_drills.start`` next to this file (written once when the
scenario deploys them, the same on every installation) and catch up, so their intervals are the
same everywhere.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import pendulum
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseOperator, dag, task

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "failback_drills.start")) as _start:
    START = pendulum.parse(_start.read().strip())

LEDGER = os.path.join(os.environ.get("AIRFLOW_HOME", "/opt/airflow"), "logs", "failback-ledger.jsonl")


def record(context):
    run = context["dag_run"]
    line = {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "logical_date": run.logical_date.isoformat() if run.logical_date else None,
        "run_after": run.run_after.isoformat(),
        "installation": os.environ.get("FAILBACK_INSTALLATION", "?"),
        "try": context["ti"].try_number,
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    with open(LEDGER, "a") as handle:  # one short O_APPEND write per line
        handle.write(json.dumps(line, sort_keys=True) + "\n")


COMMON = dict(start_date=START, catchup=True, default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=5)})


@dag(dag_id="failback_drill_quick", schedule=datetime.timedelta(seconds=20), max_active_runs=4, **COMMON)
def failback_drill_quick():
    @task
    def work(**context):
        record(context)

    work()


# Retries for 80 s, as a team sets a DAG up to ride out a short loss of the fleet's authority: a guard
# past its lease fails the task closed, and a later try runs it once the authority answers again (the
# long authority outage drill). The other drill DAGs keep one quick retry.
@dag(dag_id="failback_drill_patient", schedule=datetime.timedelta(seconds=30), max_active_runs=4, start_date=START,
     catchup=True, default_args={"retries": 4, "retry_delay": datetime.timedelta(seconds=20)})
def failback_drill_patient():
    @task
    def work(**context):
        record(context)

    work()


@dag(dag_id="failback_drill_slow", schedule=datetime.timedelta(seconds=60), max_active_runs=1, **COMMON)
def failback_drill_slow():
    @task
    def work(**context):
        time.sleep(40)
        record(context)

    work()


class Deferring(BaseOperator):
    """Waits 30 s in the triggerer, then records on resume."""

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(datetime.timedelta(seconds=30)), method_name="resume")

    def resume(self, context, event=None):
        record(context)


@dag(dag_id="failback_drill_deferred", schedule=datetime.timedelta(seconds=60), max_active_runs=1, **COMMON)
def failback_drill_deferred():
    Deferring(task_id="work")


failback_drill_quick()
failback_drill_patient()
failback_drill_slow()
failback_drill_deferred()

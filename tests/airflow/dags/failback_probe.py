"""Test DAGs for the guard: every task leaves a side effect (a file) in $FAILBACK_TEST_OUT."""

from __future__ import annotations

import os

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import dag, task

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def touch(name):
    out = os.environ["FAILBACK_TEST_OUT"]
    with open(os.path.join(out, name), "w") as handle:
        handle.write(os.environ.get("FAILBACK_INSTALLATION", "?"))


@dag(dag_id="failback_probe", schedule=None, start_date=START, catchup=False)
def failback_probe():
    """A TaskFlow task, a mapped task, a BashOperator and a classic operator with its own pre_execute hook."""

    @task
    def first():
        touch("first")

    @task
    def mapped(item):
        touch("mapped-%s" % item)

    bash = BashOperator(task_id="bash", bash_command='touch "$FAILBACK_TEST_OUT/bash"')
    hooked = PythonOperator(
        task_id="hooked",
        python_callable=touch,
        op_args=["hooked"],
        pre_execute=lambda context: touch("user_pre_execute"),
    )
    first() >> mapped.expand(item=[1, 2]) >> bash >> hooked


@dag(dag_id="failback_handover", schedule=None, start_date=START, catchup=False)
def failback_handover():
    """The first task hands the DAG to another installation on disk; the second must see it.

    $FAILBACK_TEST_HANDOVER: ``before`` puts the handover before this run was due (the run moves
    with the DAG: the second task is skipped); ``now`` is a planned switchover (the run was due
    before it, stays here and finishes).
    """

    @task
    def hand_over(dag_run=None):
        import datetime

        import failback_placement

        path = os.environ["FAILBACK_PLACEMENT_MAP"]
        cut = None
        if os.environ.get("FAILBACK_TEST_HANDOVER", "before") == "before":
            cut = dag_run.run_after - datetime.timedelta(seconds=1)
        current = failback_placement.read_map_file(path)
        moved = failback_placement.stamp(current, failback_placement.assign(current, {"failback_handover": "server-2"}),
                                         cut=cut)
        failback_placement.atomic_write(path, failback_placement.dump_map(moved))
        touch("hand_over")

    @task
    def after():
        touch("after")

    hand_over() >> after()


failback_probe()
failback_handover()

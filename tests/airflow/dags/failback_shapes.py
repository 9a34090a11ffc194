"""DAG shapes the guard must cover (found by an adversarial run against Airflow 3.3.2).

Every piece of work leaves a file in $FAILBACK_TEST_OUT: a mapped ``pre_execute``, mapped keyword
arguments carrying ``pre_execute`` (strict and not), a task that asks to start in the triggerer,
a templated field that calls a side-effecting macro, and deferred tasks whose DAG moves away
while they are deferred (with the handover before the run was due, and at that moment).
"""

from __future__ import annotations

import datetime
import os

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import BaseOperator, dag
from airflow.triggers.base import StartTriggerArgs

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def touch(name):
    with open(os.path.join(os.environ["FAILBACK_TEST_OUT"], name), "w") as handle:
        handle.write(os.environ.get("FAILBACK_INSTALLATION", "?"))
    return name


def pre_hook_1(context):
    touch("pre_hook-1")


def pre_hook_2(context):
    touch("pre_hook-2")


class TriggerStarted(BaseOperator):
    """Asks to start in the triggerer (start_from_trigger), skipping the worker and so the guard."""

    start_trigger_args = StartTriggerArgs(
        trigger_cls="failback_test_triggers.SideEffectTrigger", trigger_kwargs={"name": "trigger_started"},
        next_method="execute_complete", next_kwargs=None, timeout=None)
    start_from_trigger = True

    def execute(self, context):  # a worker start defers to the same trigger
        from failback_test_triggers import SideEffectTrigger

        self.defer(trigger=SideEffectTrigger(name="trigger_started"), method_name="execute_complete")

    def execute_complete(self, context, event=None):
        touch("trigger_started_complete")


class DocsShape(BaseOperator):
    """Starts in the triggerer exactly as Airflow's docs write it ("Triggering deferral from task start"):
    ``start_trigger_args``, ``start_from_trigger = True`` and no ``execute()``."""

    start_trigger_args = StartTriggerArgs(
        trigger_cls="failback_test_triggers.SideEffectTrigger", trigger_kwargs={"name": "docs_shape"},
        next_method="execute_complete", next_kwargs=None, timeout=datetime.timedelta(minutes=5))
    start_from_trigger = True

    def execute_complete(self, context, event=None):  # `airflow dags test` resumes with the event only
        touch("docs_shape_complete_%s" % (event or {}).get("name"))


class StubShape(BaseOperator):
    """Starts in the triggerer, with a stub ``execute()`` that must never be what runs."""

    start_trigger_args = StartTriggerArgs(
        trigger_cls="failback_test_triggers.SideEffectTrigger", trigger_kwargs={"name": "stub_shape"},
        next_method="execute_complete", next_kwargs=None, timeout=None)
    start_from_trigger = True

    def execute(self, context):
        touch("stub_shape_execute")

    def execute_complete(self, context, event=None):
        touch("stub_shape_complete")


class Deferred(BaseOperator):
    """Defers; its trigger moves the DAG to server-2 before it fires.

    ``handover="before"``: the handover is put before the run was due (a forced failover with
    failover_catchup_since), so the run is server-2's now and the resume must be skipped.
    ``handover="now"``: a planned switchover while the task is deferred; the run was due before the
    handover, stays server-1's and resumes there.
    """

    def __init__(self, handover, **kwargs):
        super().__init__(**kwargs)
        self.handover = handover

    def execute(self, context):
        from failback_test_triggers import SideEffectTrigger

        touch("deferred_start")
        cut = None
        if self.handover == "before":
            cut = (context["dag_run"].run_after - datetime.timedelta(seconds=1)).isoformat()
        self.defer(trigger=SideEffectTrigger(name="deferred_trigger", flip_to="server-2", dag_id=self.dag_id, cut=cut),
                   method_name="resume")

    def resume(self, context, event=None):
        touch("deferred_resumed")


@dag(dag_id="failback_mapped_hooks", schedule=None, start_date=START, catchup=False)
def failback_mapped_hooks():
    PythonOperator.partial(task_id="mapped_pre_execute", python_callable=touch).expand(
        op_args=[["mapped-1"], ["mapped-2"]], pre_execute=[pre_hook_1, pre_hook_2])
    PythonOperator.partial(task_id="kwargs_strict", python_callable=touch).expand_kwargs(
        [{"op_args": ["strict-1"], "pre_execute": pre_hook_1}, {"op_args": ["strict-2"], "pre_execute": pre_hook_2}])
    PythonOperator.partial(task_id="kwargs_loose", python_callable=touch).expand_kwargs(
        [{"op_args": ["loose-1"], "pre_execute": pre_hook_1}], strict=False)


@dag(dag_id="failback_trigger_start", schedule=None, start_date=START, catchup=False)
def failback_trigger_start():
    TriggerStarted(task_id="trigger_started")


@dag(dag_id="failback_trigger_shapes", schedule=None, start_date=START, catchup=False)
def failback_trigger_shapes():
    DocsShape(task_id="docs_shape")
    StubShape(task_id="stub_shape")


@dag(dag_id="failback_macro", schedule=None, start_date=START, catchup=False,
     user_defined_macros={"touch": touch})
def failback_macro():
    BashOperator(task_id="templated", bash_command='echo "{{ touch("macro") }}"')


@dag(dag_id="failback_deferred", schedule=None, start_date=START, catchup=False)
def failback_deferred():
    Deferred(task_id="deferred", handover="before")


@dag(dag_id="failback_deferred_inflight", schedule=None, start_date=START, catchup=False)
def failback_deferred_inflight():
    Deferred(task_id="deferred", handover="now")


failback_mapped_hooks()
failback_trigger_start()
failback_trigger_shapes()
failback_macro()
failback_deferred()
failback_deferred_inflight()

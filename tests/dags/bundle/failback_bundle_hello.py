"""failback_bundle_hello: the DAG the Molecule podman scenario keeps in a Git DAG bundle.

One Python task that prints the DAG's CODE_VERSION, so a run's log shows which commit's code ran
(the run also records the bundle version, the commit). The scenario commits new versions of this
file to its repository and watches both installations follow them without an Ansible run.
"""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

CODE_VERSION = "1"

with DAG(
    dag_id="failback_bundle_hello",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["failback"],
):
    PythonOperator(task_id="hello", python_callable=lambda: print("failback_bundle_hello code version " + CODE_VERSION))

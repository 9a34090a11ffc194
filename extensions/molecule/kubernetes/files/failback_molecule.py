"""DAGs of the kubernetes Molecule scenario: one task each, run by the KubernetesExecutor."""

import os

import pendulum
from airflow.sdk import DAG, task


@task
def where():
    print("running in worker pod %s of installation %s" % (os.environ.get("HOSTNAME"), os.environ.get("FAILBACK_INSTALLATION")))


for dag_id in ("failback_molecule", "failback_molecule_b"):
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False):
        where()

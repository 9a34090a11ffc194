"""A DAG task that reads a connection and a variable, as a user's DAG would, from whatever secrets
backend the airflow_credentials role configured (AWS Secrets Manager in the test), and writes what
it saw to $FAILBACK_TEST_OUT."""

from __future__ import annotations

import json
import os

import pendulum

from airflow.sdk import BaseHook, Variable, dag, task


@dag(dag_id="failback_secrets_backend_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False)
def failback_secrets_backend_check():
    @task
    def use_backend():
        warehouse = BaseHook.get_connection("warehouse")
        seen = {
            "warehouse": {"conn_type": warehouse.conn_type, "host": warehouse.host, "login": warehouse.login,
                          "password": warehouse.password, "port": warehouse.port, "schema": warehouse.schema},
            "variable": Variable.get("report_to"),
            "json_variable": Variable.get("limits", deserialize_json=True),
        }
        with open(os.path.join(os.environ["FAILBACK_TEST_OUT"], "seen.json"), "w") as handle:
            json.dump(seen, handle)
        print("read from the secrets backend: %s" % ", ".join(sorted(seen)))  # names only

    use_backend()


failback_secrets_backend_check()

"""The explicit guard: GuardedDockerOperator (docker_url from $FAILBACK_TEST_DOCKER_URL)."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG
from failback_operators import GuardedDockerOperator

with DAG(dag_id="failback_docker", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False):
    GuardedDockerOperator(
        task_id="container",
        image="localhost/failback-test:latest",
        command="true",
        docker_url=os.environ.get("FAILBACK_TEST_DOCKER_URL", "unix:///nonexistent/docker.sock"),
        mount_tmp_dir=False,
        retries=0,
    )

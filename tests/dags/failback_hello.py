"""failback_hello: the README's example DAG, shared by the tests.

One DockerOperator task that starts a container through the engine socket mounted into the
scheduler (Podman's or Docker's) and leaves a side effect on the host: a file
``failback_hello-<installation>-<run_id>.txt`` in FAILBACK_HELLO_OUTPUT_DIR (a host directory,
default /tmp). The placement guard (cluster policy) lets it run on the DAG's owner only and
ends it *skipped* everywhere else, before any container starts.
"""

from __future__ import annotations

import os

import pendulum
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk import DAG
from docker.types import Mount

OUTPUT_DIR = os.environ.get("FAILBACK_HELLO_OUTPUT_DIR", "/tmp")
IMAGE = os.environ.get("FAILBACK_HELLO_IMAGE", "localhost/failback/debian:bookworm")
INSTALLATION = os.environ.get("FAILBACK_INSTALLATION", "unknown")

with DAG(
    dag_id="failback_hello",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["failback"],
):
    DockerOperator(
        task_id="hello",
        image=IMAGE,
        command=["sh", "-c", 'echo "hello from $INSTALLATION, run $RUN_ID" > "/out/failback_hello-$INSTALLATION-$RUN_ID.txt"'],
        environment={"INSTALLATION": INSTALLATION, "RUN_ID": "{{ run_id }}"},
        docker_url="unix://var/run/docker.sock",
        mount_tmp_dir=False,
        mounts=[Mount(source=OUTPUT_DIR, target="/out", type="bind")],
        network_mode="none",
        auto_remove="success",
        retries=0,
    )

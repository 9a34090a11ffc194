# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operators that carry the failback.airflow guard explicitly.

For teams that want the guard visible in the DAG (or run without the cluster policy)::

    from failback_operators import GuardedDockerOperator

    GuardedDockerOperator(task_id="load", image="localhost/etl:1", command="python load.py",
                          docker_url="unix://var/run/docker.sock", mount_tmp_dir=False)

It behaves exactly like ``DockerOperator`` on the DAG's owner and ends *skipped* elsewhere,
before any container is created.  With the cluster policy installed as well, the guard still
runs once per task.
"""

from airflow.providers.docker.operators.docker import DockerOperator

import failback_guard


class GuardedDockerOperator(DockerOperator):
    """``DockerOperator`` that runs only on the installation owning its DAG."""

    # Tells the cluster policy that this operator guards itself.
    failback_explicit_guard = True

    def __init__(self, **kwargs):
        kwargs["pre_execute"] = failback_guard.guarded_hook(kwargs.get("pre_execute"))
        super().__init__(**kwargs)

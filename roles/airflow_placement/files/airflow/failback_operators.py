# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Operators that carry the failback.airflow guard explicitly.

For teams that want the guard visible in the DAG (or run without the cluster policy)::

    from failback_operators import GuardedDockerOperator

    GuardedDockerOperator(task_id="load", image="localhost/etl:1", command="python load.py",
                          docker_url="unix://var/run/docker.sock", mount_tmp_dir=False)

It behaves exactly like ``DockerOperator`` on the owner of the task's run and ends *skipped*
elsewhere, before its templated fields are rendered and before any container is created.  With
the cluster policy installed as well, the guard still runs once per task.
"""

from airflow.providers.docker.operators.docker import DockerOperator

import failback_guard


class GuardedDockerOperator(DockerOperator):
    """``DockerOperator`` that runs only on the installation owning its run."""

    # Tells the cluster policy that this operator guards itself.
    failback_explicit_guard = True

    def prepare_for_execution(self, *args, **kwargs):
        # Where Airflow prepares the task, before templates and pre_execute (see failback_guard).
        failback_guard.guard_task(self)
        return super().prepare_for_execution(*args, **kwargs)

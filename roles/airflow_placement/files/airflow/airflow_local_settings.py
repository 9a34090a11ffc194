# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Airflow cluster policy installed by failback.airflow.

Every task of every DAG gets the placement guard: it executes only on the installation that
owns its DAG in the placement map and ends *skipped* everywhere else.  No DAG is edited.

If you already have an ``airflow_local_settings.py``, keep yours and call the guard from your
own ``task_policy``::

    import failback_guard

    def task_policy(task):
        failback_guard.apply(task)
        ...  # your own rules
"""

from failback_guard import task_policy

# Airflow looks task_policy up in this module.
__all__ = ["task_policy"]

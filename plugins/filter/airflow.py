# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the Airflow REST API rules (plugins/module_utils/airflow_api.py)."""

from __future__ import annotations

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api


def airflow_health_problems(health, components=None):
    """``{component: reason}`` for every wanted component of ``/api/v2/monitor/health`` that is not healthy."""
    return airflow_api.health_problems(health, list(components or airflow_api.HEALTH_COMPONENTS))


class FilterModule(object):
    def filters(self):
        return {"airflow_health_problems": airflow_health_problems}

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the DAG bundle rules (plugins/module_utils/dag_bundles.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.module_utils import dag_bundles


def dag_bundle_config(bundles, dags_folder="/opt/airflow/dags", connections=None, secrets_backend="local"):
    """Airflow's ``dag_bundle_config_list`` for the fleet's ``airflow_dag_bundles`` ([] for none)."""
    try:
        return dag_bundles.config_list(bundles, dags_folder=dags_folder, connections=connections,
                                       secrets_backend=secrets_backend)
    except dag_bundles.BundleError as exc:
        raise AnsibleFilterError(str(exc))


def dag_bundle_local_repos(bundles):
    """Paths of the bundles' repositories on the machine itself (file:// or absolute repo_url)."""
    try:
        return dag_bundles.local_repos(bundles)
    except dag_bundles.BundleError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"dag_bundle_config": dag_bundle_config, "dag_bundle_local_repos": dag_bundle_local_repos}

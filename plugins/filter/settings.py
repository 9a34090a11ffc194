# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja filters over the settings rules the server and cluster roles share (plugins/module_utils/settings.py)."""

from __future__ import annotations

from ansible_collections.failback.airflow.plugins.module_utils import auth_settings, settings


def remote_logging_problems(enabled, folder, conn_id, connections=None, secrets_backend="local", prefix="airflow"):
    """What is wrong with the remote-logging settings (settings.remote_logging_problems)."""
    return settings.remote_logging_problems(enabled, folder, conn_id, connections, secrets_backend, prefix)


def secret_env_problems(env, name="the environment"):
    """What is wrong with a plain environment mapping (settings.secret_env_problems)."""
    return settings.secret_env_problems(env, name)


def auth_settings_problems(manager, auth_type, users, admin, oauth_providers=None, ldap=None, roles_mapping=None):
    """What is wrong with the airflow_auth settings across values (auth_settings.problems)."""
    return auth_settings.problems(manager, auth_type, users, admin, oauth_providers or [], ldap or {}, roles_mapping or {})


class FilterModule(object):
    def filters(self):
        return {"remote_logging_problems": remote_logging_problems, "secret_env_problems": secret_env_problems,
                "auth_settings_problems": auth_settings_problems}

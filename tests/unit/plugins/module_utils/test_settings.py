"""The settings rules both installation roles share (plugins/module_utils/settings.py)."""

from __future__ import annotations

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import settings

CONNECTIONS = {"task_logs": {"conn_type": "aws"}}


@pytest.mark.parametrize("folder, conn_id, backend, expected", [
    ("s3://acme-logs/fleet", "task_logs", "local", []),
    ("s3://acme-logs", "task_logs", "local", []),
    ("s3://acme-logs/fleet", "elsewhere", "aws_secrets_manager", []),  # a backend holds its own connections
    ("/var/log/airflow", "task_logs", "local", ["airflow_x_remote_log_folder is '/var/log/airflow': give s3://"]),
    ("s3://A/fleet", "task_logs", "local", ["airflow_x_remote_log_folder is 's3://A/fleet'"]),  # not a bucket name
    ("s3://acme-logs/fleet", "", "local", ["airflow_x_remote_log_conn_id is empty"]),
    ("s3://acme-logs/fleet", "other", "local",
     ["airflow_x_remote_log_conn_id 'other' is not one of airflow_credentials_connections (task_logs)"]),
])
def test_remote_logging(folder, conn_id, backend, expected):
    found = settings.remote_logging_problems(True, folder, conn_id, CONNECTIONS, backend, prefix="airflow_x")
    assert len(found) == len(expected) and all(found[i].startswith(expected[i]) for i in range(len(expected))), found


def test_remote_logging_off_checks_nothing():
    assert settings.remote_logging_problems(False, "", "", {}) == []


@pytest.mark.parametrize("env, expected", [
    ({"AIRFLOW__CORE__PARALLELISM": "32", "TZ": "UTC"}, []),
    ({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "cat /run/secrets/conn"}, []),
    ({"AIRFLOW__SECRETS__BACKEND": "airflow.providers.amazon...SecretsManagerBackend"}, []),
    ({"AIRFLOW__API_AUTH__JWT_SECRET_FILE": "/run/x"}, []),
    ({"AIRFLOW__CORE__FERNET_KEY": "abc"}, ["the env holds what looks like a secret (AIRFLOW__CORE__FERNET_KEY)"]),
    ({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://u:p@h/d"}, ["looks like a secret (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"]),
    ({"GIT_PRIVATE_KEY": "x", "MY_PASSWD": "y", "AWS_CREDENTIALS": "z"}, ["looks like a secret (AWS_CREDENTIALS, GIT_PRIVATE_KEY, MY_PASSWD)"]),
    ({"BAD-NAME": "1"}, ["the env has names that are not environment variable names: BAD-NAME"]),
    ({"FAILBACK_INSTALLATION": "other"}, ["the env sets FAILBACK_INSTALLATION, which the roles set for the guard"]),
])
def test_secret_env(env, expected):
    found = settings.secret_env_problems(env, "the env")
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), found


def test_secret_env_needs_a_mapping():
    assert settings.secret_env_problems(["A=1"], "the env") == ["the env must be a mapping of variable names to values, got list"]

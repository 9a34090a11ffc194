"""AWS Secrets Manager as the secrets backend, configured by the airflow_credentials role, used by
real Airflow 3 against moto's server mode on 127.0.0.1 (a maintained AWS emulator).

The role writes the backend's own AWS keys to backend/aws_credentials (a shared credentials file)
and publishes the backend class and kwargs as settings; the test strips every AWS_* variable from
the environment, so the keys can only come from that file. A DAG task then reads a connection and
two variables that exist only in the emulated Secrets Manager.
Run with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import failback_testlib as lab
from test_credentials_airflow import prepared_installation, task_states

MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")
DAG_ID = "failback_secrets_backend_check"
ACCESS_KEY = "AKIAFAILBACKTEST0001"
SECRET_KEY = "moto-secret-Zq8w+backend/key"
WAREHOUSE = {"conn_type": "postgres", "host": "dwh.example.com", "login": "etl", "password": "sm p@ss/word",
             "port": 5432, "schema": "dwh"}


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    if not os.path.exists(MOTO):
        pytest.fail("moto[server] is not installed in this interpreter's environment: run with .venv-airflow")
    port = lab.free_port()
    log = open(str(tmp_path_factory.mktemp("moto") / "moto.log"), "w")
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = "http://127.0.0.1:%d" % port
    try:
        lab.wait_port(port, proc, "moto_server", timeout=60)
    except RuntimeError as exc:
        proc.kill()
        pytest.fail(str(exc))
    yield endpoint
    lab.stop_process(proc, timeout=15)
    log.close()


@pytest.fixture(scope="module")
def aws_installation(tmp_path_factory, moto_endpoint):
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="eu-west-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_secret(Name="airflow/connections/warehouse", SecretString=json.dumps(WAREHOUSE))
    client.create_secret(Name="airflow/variables/report_to", SecretString="sm-ops@example.com")
    client.create_secret(Name="airflow/variables/limits", SecretString=json.dumps({"rows": 7}))

    return prepared_installation(
        tmp_path_factory.mktemp("secrets_backend"),
        airflow_credentials_connections={},
        airflow_credentials_variables={},
        airflow_credentials_secrets_backend="aws_secrets_manager",
        airflow_credentials_secrets_backend_kwargs={"region_name": "eu-west-1", "endpoint_url": moto_endpoint},
        airflow_credentials_aws_access_key_id=ACCESS_KEY,
        airflow_credentials_aws_secret_access_key=SECRET_KEY,
    )


def test_a_task_reads_a_connection_and_variables_from_aws_secrets_manager(aws_installation):
    proc = aws_installation.airflow("dags", "test", DAG_ID)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert task_states(aws_installation.database, DAG_ID) == {"use_backend": "success"}, output
    with open(os.path.join(proc.out_dir, "seen.json")) as handle:
        seen = json.load(handle)
    assert seen == {"warehouse": WAREHOUSE, "variable": "sm-ops@example.com", "json_variable": {"rows": 7}}
    assert WAREHOUSE["password"] not in output and SECRET_KEY not in output


def test_the_backend_keys_are_a_file_and_the_settings_hold_no_secret(aws_installation):
    env = aws_installation.facts["env"]
    assert env["AIRFLOW__SECRETS__BACKEND"] == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    kwargs = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"])
    assert kwargs["region_name"] == "eu-west-1" and kwargs["connections_prefix"] == "airflow/connections"
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/opt/airflow/secrets/backend/aws_credentials"
    assert SECRET_KEY not in json.dumps(env) and ACCESS_KEY not in json.dumps(env)
    path = os.path.join(aws_installation.secrets, "backend", "aws_credentials")
    assert oct(os.stat(path).st_mode & 0o777) in ("0o640", "0o600")
    with open(path) as handle:
        text = handle.read()
    assert "aws_secret_access_key = %s" % SECRET_KEY in text and text.count("[default]") == 1

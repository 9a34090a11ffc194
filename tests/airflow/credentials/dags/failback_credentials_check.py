"""A DAG task that uses what the airflow_credentials role delivers, as a DAG of a user would.

It reads a connection through BaseHook.get_connection (served by the LocalFilesystemBackend from
/opt/airflow/secrets/backend/connections.yaml), a variable, and credential files from their
read-only mount under /opt/airflow/credentials, then writes what it saw to $FAILBACK_TEST_OUT.
"""

from __future__ import annotations

import configparser
import errno
import json
import os

import pendulum
import yaml

from airflow.sdk import BaseHook, Variable, dag, task

CREDENTIALS = os.environ.get("FAILBACK_CREDENTIALS_DIR", "/opt/airflow/credentials")


def read_env_file(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _sep, value = line.partition("=")
                values[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return values


@dag(dag_id="failback_credentials_check", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
     catchup=False)
def failback_credentials_check():
    @task
    def use_credentials():
        from airflow.configuration import conf

        warehouse = BaseHook.get_connection("warehouse")
        partner = BaseHook.get_connection("partner_api")
        ini = configparser.ConfigParser(interpolation=None)
        ini.read(os.path.join(CREDENTIALS, "legacy.ini"))
        try:
            with open(os.path.join(CREDENTIALS, "intruder"), "w") as handle:
                handle.write("x")
            write_error = None
        except OSError as exc:
            write_error = errno.errorcode.get(exc.errno, str(exc.errno))
        with open(os.path.join(CREDENTIALS, "service.json")) as handle:
            service = json.load(handle)
        with open(os.path.join(CREDENTIALS, "settings.yaml")) as handle:
            settings = yaml.safe_load(handle)
        seen = {
            "warehouse": {"conn_type": warehouse.conn_type, "host": warehouse.host, "login": warehouse.login,
                          "password": warehouse.password, "port": warehouse.port, "schema": warehouse.schema},
            "partner_api": {"conn_type": partner.conn_type, "host": partner.host, "password": partner.password,
                            "port": partner.port, "extra": partner.extra_dejson},
            "variable": Variable.get("report_to"),
            "json_variable": Variable.get("limits", deserialize_json=True),
            "env_file": read_env_file(os.path.join(CREDENTIALS, "warehouse.env")),
            "json_file": service,
            "yaml_file": settings,
            "ini_file": {section: dict(ini[section]) for section in ini.sections()},
            "credentials_dir_write": write_error,
            "config": {"fernet_key": conf.get("core", "fernet_key"),
                       "sql_alchemy_conn": conf.get("database", "sql_alchemy_conn"),
                       "api_secret_key": conf.get("api", "secret_key"),
                       "jwt_secret": conf.get("api_auth", "jwt_secret")},
        }
        with open(os.path.join(os.environ["FAILBACK_TEST_OUT"], "seen.json"), "w") as handle:
            json.dump(seen, handle)
        print("credentials read: %s" % ", ".join(sorted(seen)))  # names only, never values

    use_credentials()


failback_credentials_check()

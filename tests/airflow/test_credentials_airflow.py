"""What the airflow_credentials role renders, used by real Airflow 3.

The role (run with .venv's ansible-playbook) renders the backend files, the credential files and
Airflow's own secrets into a temporary directory. Airflow then runs in a private mount namespace in
which those directories are mounted read-only at the paths of the contract (/opt/airflow/secrets,
/opt/airflow/credentials), configured only with the role's ``airflow_credentials_env`` (the _CMD
settings and the LocalFilesystemBackend), like the containers of the server and Kubernetes roles.
Run with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import yaml

from failback_ansible import run_playbook

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "credentials")
AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
TIMEOUT = 600
DAG_ID = "failback_credentials_check"

CONNECTIONS = {
    "warehouse": "postgres://etl:w%40re%2Fhouse%20pw@db.example.com:5433/dwh",
    "partner_api": {"conn_type": "http", "host": "api.example.com", "password": "p'art\"ner tok$en", "port": 8443,
                    "extra": {"timeout": 30, "verify": False}},
}
VARIABLES = {"report_to": "ops@example.com", "limits": {"rows": 10}}
FILES = {
    "warehouse.env": {"data": {"WAREHOUSE_USER": "etl", "WAREHOUSE_PASSWORD": "w@re/house pw$1"}},
    "service.json": {"data": {"user": "svc", "token": "t0k\"en"}},
    "settings.yaml": {"data": {"db": {"password": "yes", "port": 5432}}},
    "legacy.ini": {"data": {"db": {"user": "u", "password": "p%w;d#"}}},
}

# Mount the role's directories read-only where containers see them; /opt is a private tmpfs, so the
# host's /opt is neither used nor changed.
NAMESPACE_SCRIPT = r"""
set -eu
mount -t tmpfs -o mode=0755 failback-test-opt /opt
while [ "$1" != "--" ]; do
    mkdir -p "$2"
    mount --bind -o ro "$1" "$2"
    shift 2
done
shift
exec "$@"
"""


def _namespaces_work():
    try:
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                              timeout=30, check=False)
    except OSError:
        return False
    return proc.returncode == 0


class Installation(object):
    def __init__(self, root, **host_vars):
        self.host_vars = host_vars
        self.root = str(root)
        self.home = os.path.join(self.root, "home")
        self.database = os.path.join(self.root, "metadata.db")
        self.inventory = os.path.join(self.root, "hosts.yml")
        self.secrets = os.path.join(self.root, "secrets")
        self.namespaced = _namespaces_work()
        self.facts = None
        self.runs = 0

    def write_inventory(self):
        owner = "50000" if os.geteuid() == 0 else str(os.geteuid())
        group = "0" if os.geteuid() == 0 else str(os.getegid())
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.join(os.path.dirname(os.path.dirname(HERE)), ".venv", "bin", "python"),
            "airflow_credentials_dir": self.secrets,
            "airflow_credentials_store_dir": os.path.join(self.root, "store"),
            "airflow_credentials_file_owner": owner,
            "airflow_credentials_file_group": group,
            "airflow_credentials_database_url": "sqlite:///" + self.database,
            "airflow_credentials_connections": CONNECTIONS,
            "airflow_credentials_variables": VARIABLES,
            "airflow_credentials_files": FILES,
        }
        host.update(self.host_vars)
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"all": {"hosts": {"airflow-1": host}}}, handle)

    def ansible(self, playbook, **extra_vars):
        run = run_playbook(os.path.join(FIXTURES, playbook), self.inventory, extra_vars=extra_vars)
        assert run.rc == 0, run
        for play in run.json.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"].endswith("Show the credentials facts"):
                    self.facts = task["hosts"]["airflow-1"]["msg"]
        return run

    def secret(self, name):
        with open(os.path.join(self.secrets, "airflow", name)) as handle:
            return handle.read()

    def airflow(self, *args):
        """Run the airflow CLI as a container of the installation would: env from the role, files mounted."""
        self.runs += 1
        out = os.path.join(self.root, "out%d" % self.runs)
        os.mkdir(out)
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAILBACK_", "AWS_")))
        env.update(self.facts["env"])
        env.update(
            AIRFLOW_HOME=self.home,
            AIRFLOW__CORE__DAGS_FOLDER=os.path.join(self.home, "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            FAILBACK_TEST_OUT=out,
        )
        command = [AIRFLOW] + list(args)
        if self.namespaced:
            mounts = []
            for mount in self.facts["mounts"]:
                mounts += [mount["source"], mount["target"]]
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh"] + \
                mounts + ["--"] + command
        else:  # no mount namespace here: the same layout, reached through the host paths
            for key, value in list(env.items()):
                env[key] = value.replace("/opt/airflow/secrets", self.secrets)
            env["FAILBACK_CREDENTIALS_DIR"] = os.path.join(self.secrets, "files")
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        proc.out_dir = out
        return proc


def prepared_installation(root, **host_vars):
    """An installation whose credentials the role rendered, with the fixture DAGs and a migrated database."""
    if not os.path.exists(AIRFLOW):
        pytest.fail("Airflow is not installed in this interpreter's environment: run with .venv-airflow")
    inst = Installation(root, **host_vars)
    inst.write_inventory()
    inst.ansible("site.yml")
    os.makedirs(inst.home)
    shutil.copytree(os.path.join(FIXTURES, "dags"), os.path.join(inst.home, "dags"))
    migrate = inst.airflow("db", "migrate")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return inst


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    return prepared_installation(tmp_path_factory.mktemp("credentials_airflow"))


def task_states(database, dag_id):
    with sqlite3.connect(database) as db:
        return dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,)).fetchall())


def test_the_metadata_database_comes_from_the_sql_alchemy_conn_file(installation):
    assert installation.secret("sql_alchemy_conn") == "sqlite:///" + installation.database
    assert os.path.getsize(installation.database) > 0, "airflow db migrate did not use the _CMD database URL"
    assert not os.path.exists(os.path.join(installation.home, "airflow.db"))


def test_a_dag_task_reads_a_connection_a_variable_and_credential_files(installation):
    proc = installation.airflow("dags", "test", DAG_ID)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert task_states(installation.database, DAG_ID) == {"use_credentials": "success"}, output
    with open(os.path.join(proc.out_dir, "seen.json")) as handle:
        seen = json.load(handle)

    assert seen["warehouse"] == {"conn_type": "postgres", "host": "db.example.com", "login": "etl",
                                 "password": "w@re/house pw", "port": 5433, "schema": "dwh"}
    assert seen["partner_api"] == {"conn_type": "http", "host": "api.example.com", "password": "p'art\"ner tok$en",
                                   "port": 8443, "extra": {"timeout": 30, "verify": False}}
    assert seen["variable"] == "ops@example.com" and seen["json_variable"] == {"rows": 10}
    assert seen["env_file"] == FILES["warehouse.env"]["data"]
    assert seen["json_file"] == FILES["service.json"]["data"]
    assert seen["yaml_file"] == FILES["settings.yaml"]["data"]
    assert seen["ini_file"] == FILES["legacy.ini"]["data"]
    for name in ("fernet_key", "sql_alchemy_conn", "api_secret_key", "jwt_secret"):
        assert seen["config"][name] == installation.secret(name), "%s was not read through its _CMD setting" % name
    if installation.namespaced:
        assert seen["credentials_dir_write"] == "EROFS", "the credential files must be mounted read-only"
    # Airflow masks connection passwords in task logs; the DAG prints names only.
    assert "w@re/house pw" not in output and "tok$en" not in output


def test_fernet_rotation_re_keys_the_metadata_then_retires_the_old_key(installation):
    from cryptography.fernet import Fernet, InvalidToken

    proc = installation.airflow("variables", "set", "db_only_secret", "kept-through-rotation")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first_key = installation.secret("fernet_key")

    def stored_value():
        with sqlite3.connect(installation.database) as db:
            return db.execute("SELECT val, is_encrypted FROM variable WHERE key = 'db_only_secret'").fetchone()

    before, encrypted = stored_value()
    assert encrypted and Fernet(first_key.encode()).decrypt(before.encode()) == b"kept-through-rotation"

    installation.ansible("site.yml", airflow_credentials_rotate="fernet_key")
    assert installation.facts["changed"] == ["fernet_key"] and installation.facts["fernet_rekey"] is True
    new_key, old_key = installation.secret("fernet_key").split(",")
    assert old_key == first_key

    proc = installation.airflow("rotate-fernet-key")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after, _encrypted = stored_value()
    assert after != before
    with pytest.raises(InvalidToken):
        Fernet(new_key.encode()).decrypt(before.encode())  # without the re-key the old data would be lost

    installation.ansible("retire.yml")
    assert installation.secret("fernet_key") == new_key
    proc = installation.airflow("variables", "get", "db_only_secret")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "kept-through-rotation"

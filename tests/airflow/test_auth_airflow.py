"""The airflow_auth role against real Airflow 3 with the FAB auth manager.

The role (run with .venv's ansible-playbook) writes an installation's auth directory; Airflow then
runs in a private mount namespace in which that directory is mounted at /opt/airflow/auth, the path
the containers of the server role see, with the role's ``airflow_auth_env`` and a sqlite metadata
database. The role's `users` entry point runs fab_users.py there, so users are created, updated and
disabled by FAB's own security manager; sign-in goes through FAB's own code (the password check
behind /auth/token) and FAB's login page is rendered from the role's webserver_config.py.
Run with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from failback_ansible import run_playbook
from test_credentials_airflow import NAMESPACE_SCRIPT, _namespaces_work

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PLAYBOOK = os.path.join(HERE, "auth", "site.yml")
AIRFLOW_BIN = os.path.dirname(sys.executable)
TIMEOUT = 600
ADMIN_PASSWORD = "adm1n-Pa55-given"
GOOGLE_SECRET = "g00gle-client-secret-value"
CORP_SECRET = "c0rp-oidc-secret-value"

# Signs in inside the installation's namespace with FAB's own code and prints JSON.
PROBE = r"""
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
attempts = json.load(sys.stdin)
out = {}
with get_application_builder() as appbuilder:
    sm = appbuilder.sm
    for name, password in attempts:
        user = sm.auth_user_db(name, password, rotate_session_id=False)
        out[name] = sorted(role.name for role in user.roles) if user else None
print("PROBE " + json.dumps(out))
"""

# Renders FAB's login page with the installation's webserver_config.py (FAB's own Flask app).
LOGIN_PAGE = r"""
from airflow.providers.fab.www.app import create_app
app = create_app(enable_plugins=False)
with app.test_client() as client:
    page = client.get("/login/")
    print("STATUS %d" % page.status_code)
    print(page.get_data(as_text=True))
"""


class AuthInstallation(object):
    def __init__(self, root):
        self.root = str(root)
        self.auth = os.path.join(self.root, "auth")
        self.home = os.path.join(self.root, "home")
        self.inventory = os.path.join(self.root, "hosts.yml")
        self.database = os.path.join(self.root, "metadata.db")
        self.facts = None
        os.makedirs(self.home)

    def env(self):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAILBACK_")))
        env.update(self.facts["env"] if self.facts else {})
        env.update(
            PATH=AIRFLOW_BIN + os.pathsep + env.get("PATH", ""),
            AIRFLOW_HOME=self.home,
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///" + self.database,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__AUTH_MANAGER="airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
            AIRFLOW__FAB__CONFIG_FILE="/opt/airflow/auth/webserver_config.py",
        )
        return env

    def exec_prefix(self):
        """The role's airflow_auth_exec: a program runs with the auth directory at /opt/airflow/auth."""
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", NAMESPACE_SCRIPT, "sh",
                self.auth, "/opt/airflow/auth", "--"]

    def ansible(self, users=(), check=False, **host_vars):
        owner = str(os.geteuid())
        group = str(os.getegid())
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.join(REPO, ".venv", "bin", "python"),
            "airflow_auth_dir": self.auth,
            "airflow_auth_file_owner": owner,
            "airflow_auth_file_group": group,
            "airflow_auth_admin_password": ADMIN_PASSWORD,
            "airflow_auth_users": list(users),
            "airflow_auth_exec": self.exec_prefix(),
            "airflow_auth_exec_environment": self.env(),
        }
        host.update(host_vars)
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"all": {"hosts": {"airflow-1": host}}}, handle)
        run = run_playbook(PLAYBOOK, self.inventory, check=check)
        for play in run.json.get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"].endswith("Show the auth facts") and "msg" in task["hosts"].get("airflow-1", {}):
                    self.facts = task["hosts"]["airflow-1"]["msg"]
        return run

    def python(self, script, stdin=""):
        proc = subprocess.run(self.exec_prefix() + [sys.executable, "-c", script], input=stdin, env=self.env(),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        return proc

    def sign_in(self, **attempts):
        proc = self.python(PROBE, json.dumps(sorted(attempts.items())))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        line = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")][-1]
        return json.loads(line[len("PROBE "):])

    def passwords(self):
        with open(os.path.join(self.auth, "passwords.json")) as handle:
            return json.load(handle)


def report(run):
    for hosts in run.results("Report the users that changed"):
        return hosts["airflow-1"]["msg"]
    return None


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    if not _namespaces_work():
        pytest.skip("no mount namespaces here (unshare --mount): the auth directory cannot be mounted at its path")
    inst = AuthInstallation(tmp_path_factory.mktemp("auth_airflow"))
    first = inst.ansible(run_users=False)
    assert first.rc == 0, first
    migrate = subprocess.run([os.path.join(AIRFLOW_BIN, "airflow"), "db", "migrate"], env=inst.env(),
                             capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return inst


USERS = [
    {"username": "viewer", "role": "Viewer"},
    {"username": "operator", "role": "Op", "password": "0perator-pw", "email": "ops@example.com"},
]


def test_users_are_created_kept_updated_and_disabled_by_fab(installation):
    run = installation.ansible(USERS)
    assert run.rc == 0, run
    assert "created admin, viewer, operator" in report(run)
    assert installation.facts["env"]["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
    passwords = installation.passwords()
    assert passwords["admin"] == ADMIN_PASSWORD and len(passwords["viewer"]) == 24
    assert installation.sign_in(admin=ADMIN_PASSWORD, viewer=passwords["viewer"], operator="0perator-pw",
                                nobody="x") == {"admin": ["Admin"], "viewer": ["Viewer"], "operator": ["Op"],
                                                "nobody": None}

    again = installation.ansible(USERS)
    assert again.rc == 0 and again.changed("airflow-1") == 0, again
    assert installation.passwords() == passwords, "a generated password must be kept"

    # Role and password changed in the inventory, operator removed from it.
    changed = installation.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}])
    assert changed.rc == 0, changed
    assert "updated viewer: ['password', 'role']" in report(changed) or "updated viewer: ['role', 'password']" in report(changed)
    assert "disabled operator" in report(changed)
    assert installation.sign_in(viewer="new-viewer-pw", operator="0perator-pw") == {"viewer": ["User"], "operator": None}
    assert "operator" not in installation.passwords()

    # Listed again: enabled again, with its password.
    back = installation.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}, USERS[1]])
    assert back.rc == 0 and "updated operator: ['active']" in report(back), back
    assert installation.sign_in(operator="0perator-pw") == {"operator": ["Op"]}


def test_check_mode_reports_and_changes_nothing(installation):
    run = installation.ansible([{"username": "viewer", "role": "Viewer", "password": "new-viewer-pw"}], check=True)
    assert run.rc == 0, run
    assert "(check mode: would be)" in report(run) and "updated viewer: ['role']" in report(run)
    assert "disabled operator" in report(run)
    signed_in = installation.sign_in(viewer="new-viewer-pw", operator="0perator-pw")
    assert signed_in == {"viewer": ["User"], "operator": ["Op"]}


def test_an_unknown_role_and_a_taken_email_are_named_and_nothing_changes(installation):
    run = installation.ansible([{"username": "viewer", "role": "Auditor"}])
    assert run.rc != 0 and "user viewer has role" in run.text() and "Auditor" in run.text(), run
    assert "allowed with the fab auth manager: Admin, Op, User, Viewer, Public" in run.text()
    run = installation.ansible([{"username": "intruder", "role": "Viewer", "email": "ops@example.com"},
                                {"username": "operator", "role": "Op", "password": "0perator-pw", "email": "ops@example.com"}])
    assert run.rc != 0 and "users intruder and operator have the same email ops@example.com" in run.text(), run
    assert run.changed("airflow-1") == 0, "a refused request must change nothing"
    assert installation.sign_in(operator="0perator-pw") == {"operator": ["Op"]}
    for secret in (ADMIN_PASSWORD, "0perator-pw", "new-viewer-pw"):
        assert secret not in run.text()


def test_fab_shows_the_oauth_providers_of_webserver_config_and_secrets_stay_in_files(installation):
    providers = [
        {"name": "google", "client_id": "g-client.apps.example", "client_secret": GOOGLE_SECRET,
         "allowed_domains": ["example.com"]},
        {"name": "corp", "client_id": "corp-client", "client_secret": CORP_SECRET,
         "server_metadata_url": "https://sso.example.com/.well-known/openid-configuration"},
    ]
    run = installation.ansible(USERS, airflow_auth_type="oauth", airflow_auth_oauth_providers=providers,
                               airflow_auth_roles_mapping={"airflow-ops": ["Op"]})
    assert run.rc == 0, run
    assert "config" in installation.facts["changed"]
    with open(os.path.join(installation.auth, "webserver_config.py")) as handle:
        config = handle.read()
    assert GOOGLE_SECRET not in config and CORP_SECRET not in config and "AUTH_TYPE = AUTH_OAUTH" in config
    with open(os.path.join(installation.auth, "oauth-google.secret")) as handle:
        assert handle.read().strip() == GOOGLE_SECRET
    assert oct(os.stat(os.path.join(installation.auth, "oauth-corp.secret")).st_mode & 0o777) == "0o600"
    for secret in (GOOGLE_SECRET, CORP_SECRET, ADMIN_PASSWORD):
        assert secret not in run.text()

    proc = installation.python(LOGIN_PAGE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "STATUS 200" in proc.stdout, proc.stdout[-3000:]
    page = proc.stdout
    assert 'id="btn-signin-google"' in page and 'id="btn-signin-corp"' in page, page[-3000:]
    # Users of the inventory still sign in with their password (/auth/token, failover.yml).
    assert installation.sign_in(operator="0perator-pw") == {"operator": ["Op"]}

    # Back to passwords: the secret files go away.
    run = installation.ansible(USERS)
    assert run.rc == 0 and not [n for n in os.listdir(installation.auth) if n.endswith(".secret")], run

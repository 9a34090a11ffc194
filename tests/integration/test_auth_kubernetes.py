"""Who may sign in to a Kubernetes installation: the airflow_auth role's kubernetes target and its users Job.

Against a Kubernetes API on 127.0.0.1 (tests/fake_kube.py: Secrets, ConfigMaps, Namespaces and Jobs),
auth/kubernetes.yml runs the airflow_kubernetes role's sign-in steps: the auth ConfigMap and Secret, then the
users Job from the role's own template. No controller runs Jobs there, so the test does what the kubelet would:
it lays out the Job's projected auth volume (the ConfigMap and Secret items the Job names) in a directory, runs the
Job's command with .venv-airflow's Airflow 3 and FAB provider against a sqlite metadata database, and completes or
fails the Job with the output as its pod's log. So:

* the role creates, keeps (generated passwords) and leaves alone (a second run) the ConfigMap and Secret;
* the users Job creates, updates and disables users through FAB's own security manager, as the role reports from
  the Job's log, and people then sign in with FAB's own password check;
* a request that ran is not run again while its Job exists, check mode starts no Job, and the script's error
  fails the run with the script's message.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from failback_ansible import REPO, run_playbook

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "credentials"))
from fake_kube import FakeKube  # noqa: E402  (tests/fake_kube.py)

PLAYBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "auth", "kubernetes.yml")
AIRFLOW_PYTHON = os.path.join(REPO, ".venv-airflow", "bin", "python")
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
NAMESPACE = "af"
ADMIN_PASSWORD = "adm1n-Pa55-k8s"
TIMEOUT = 600
USERS = [
    {"username": "viewer", "role": "Viewer"},
    {"username": "operator", "role": "Op", "password": "0perator-pw", "email": "ops@example.com"},
]

# Signs in with FAB's own password check and prints JSON (names -> roles, or None).
PROBE = r"""
import json, sys
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
attempts = json.load(sys.stdin)
out = {}
with get_application_builder() as appbuilder:
    for name, password in attempts:
        user = appbuilder.sm.auth_user_db(name, password, rotate_session_id=False)
        out[name] = sorted(role.name for role in user.roles) if user else None
print("PROBE " + json.dumps(out))
"""


class Cluster(object):
    """One cluster installation (namespace af) behind the fake API, with a real Airflow metadata database."""

    def __init__(self, root, kube=None):
        self.root, self.kube = str(root), kube
        self.home = os.path.join(self.root, "home")
        self.database = os.path.join(self.root, "metadata.db")
        self.kubeconfig = os.path.join(self.root, "kubeconfig")
        self.inventory = os.path.join(self.root, "hosts.yml")
        self.jobs_run = []
        self.facts = None
        os.makedirs(self.home)
        if kube is not None:
            with open(self.kubeconfig, "w") as handle:
                handle.write(kube.kubeconfig())
            kube.on_job = self.run_job

    def env(self, config_file):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAILBACK_")))
        env.update(AIRFLOW_HOME=self.home, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///" + self.database,
                   AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__UNIT_TEST_MODE="False",
                   AIRFLOW__CORE__AUTH_MANAGER=FAB, AIRFLOW__FAB__CONFIG_FILE=config_file)
        return env

    def migrate(self):
        config = os.path.join(self.home, "webserver_config.py")
        with open(config, "w") as handle:
            handle.write("from flask_appbuilder.const import AUTH_DB\nAUTH_TYPE = AUTH_DB\n")
        proc = subprocess.run([AIRFLOW_PYTHON, "-m", "airflow", "db", "migrate"], env=self.env(config),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    def lay_out(self, spec, container, directory):
        """Write the Job's projected auth volume (only the items it names) into *directory*; return the mount path."""
        mount = [m for m in container["volumeMounts"] if m["name"] == "auth"][0]
        volume = [v for v in spec["volumes"] if v["name"] == "auth"][0]
        os.makedirs(directory)
        for source in volume["projected"]["sources"]:
            kind = "secrets" if "secret" in source else "configmaps"
            ref = source.get("secret") or source.get("configMap")
            data = self.kube.objects[(kind, NAMESPACE, ref["name"])]["data"]
            for item in ref["items"]:
                value = base64.b64decode(data[item["key"]]).decode() if kind == "secrets" else data[item["key"]]
                with open(os.path.join(directory, item["path"]), "w") as handle:
                    handle.write(value)
        return mount["mountPath"]

    def run_job(self, job):
        """The kubelet: run the Job's container command with its auth volume laid out, then finish the Job."""
        name = job["metadata"]["name"]
        self.jobs_run.append(name)
        try:
            spec = job["spec"]["template"]["spec"]
            container = spec["containers"][0]
            directory = os.path.join(self.root, "pods", "%s-%d" % (name, len(self.jobs_run)))
            mount_path = self.lay_out(spec, container, directory)
            args = [arg.replace(mount_path, directory) for arg in container["args"]]
            assert args[0] == "python", args
            proc = subprocess.run([AIRFLOW_PYTHON] + args[1:], env=self.env(os.path.join(directory, "webserver_config.py")),
                                  capture_output=True, text=True, timeout=TIMEOUT, check=False)
            log, ok = proc.stderr + proc.stdout, proc.returncode == 0
        except Exception as exc:  # the test's own failure shows in the Job's log
            log, ok = "test kubelet failed: %r\n" % exc, False
        self.kube.finish_job(job["metadata"]["namespace"], name, ok, log)

    def ansible(self, users=(), check=False, **host_vars):
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": os.path.join(REPO, ".venv", "bin", "python"),
            "airflow_kubernetes_namespace": NAMESPACE,
            "airflow_kubernetes_kubeconfig": self.kubeconfig,
            "airflow_kubernetes_wait_timeout": 300,
            "airflow_auth_admin_password": ADMIN_PASSWORD,
            "airflow_auth_users": list(users),
        }
        host.update(host_vars)
        fd = os.open(self.inventory, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump({"all": {"children": {"airflow_clusters": {"hosts": {"k8s-prod": host}}}}}, handle)
        run = run_playbook(PLAYBOOK, self.inventory, check=check)
        for hosts in run.results("Show the auth facts"):
            if "msg" in hosts.get("k8s-prod", {}):
                self.facts = hosts["k8s-prod"]["msg"]
        return run

    def secret(self):
        obj = self.kube.objects[("secrets", NAMESPACE, "failback-airflow-auth")]
        return dict((k, base64.b64decode(v).decode()) for k, v in obj["data"].items())

    def configmap(self):
        return self.kube.configmap(NAMESPACE, "failback-airflow-auth")

    def sign_in(self, **attempts):
        config = os.path.join(self.home, "webserver_config.py")
        proc = subprocess.run([AIRFLOW_PYTHON, "-c", PROBE], input=json.dumps(sorted(attempts.items())), env=self.env(config),
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return json.loads([line for line in proc.stdout.splitlines() if line.startswith("PROBE ")][-1][len("PROBE "):])


def report(run):
    for hosts in run.results("Report the users that changed") + run.results("Report that this request ran already"):
        if "msg" in hosts.get("k8s-prod", {}):
            return hosts["k8s-prod"]["msg"]
    return None


def job_posts(kube, since=0):
    return [r for r in kube.requests[since:] if r["method"] == "POST" and "/jobs" in r["path"]]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A metadata database migrated once (with the FAB tables), copied for each test."""
    if not os.path.exists(AIRFLOW_PYTHON):
        pytest.fail("%s is missing: run `make integration` (it sets up .venv-airflow)" % AIRFLOW_PYTHON)
    template = Cluster(tmp_path_factory.mktemp("auth_k8s_db"))
    template.migrate()
    return template.database


@pytest.fixture
def cluster(tmp_path, migrated):
    """A fresh cluster installation: the auth objects written (no users Job yet), the database migrated."""
    with FakeKube(namespaces=[NAMESPACE]) as kube:
        inst = Cluster(tmp_path, kube)
        shutil.copyfile(migrated, inst.database)
        first = inst.ansible(USERS, run_users=False)
        assert first.rc == 0, first
        yield inst


def test_the_auth_configmap_and_secret_hold_what_the_api_server_and_the_job_read(cluster):
    assert cluster.facts["env"]["AIRFLOW__CORE__AUTH_MANAGER"] == FAB
    assert cluster.facts["env"]["AIRFLOW__FAB__CONFIG_FILE"] == "/opt/airflow/auth/webserver_config.py"
    assert cluster.facts["changed"] == ["config", "passwords"]  # everything is new
    config = cluster.configmap()
    assert sorted(config["data"]) == ["fab_users.py", "webserver_config.py"]
    assert config["metadata"]["labels"]["app.kubernetes.io/instance"] == "failback-airflow"
    secret = cluster.secret()
    assert sorted(secret) == ["checksum-salt", "passwords.json", "users-request.json", "users.json"]
    passwords = json.loads(secret["passwords.json"])
    assert passwords["admin"] == ADMIN_PASSWORD and passwords["operator"] == "0perator-pw" and len(passwords["viewer"]) == 24
    request = json.loads(secret["users-request.json"])
    assert [u["username"] for u in request["users"]] == ["admin", "viewer", "operator"] and request["disable"] == []
    # A second run changes nothing and keeps the generated password.
    again = cluster.ansible(USERS, run_users=False)
    assert again.rc == 0 and again.changed() == 0, again
    assert cluster.facts["changed"] == []
    assert cluster.secret() == secret
    for value in (ADMIN_PASSWORD, "0perator-pw", passwords["viewer"]):
        assert value not in again.text()


def test_the_users_job_brings_the_users_in_line_runs_a_request_once_and_disables_removed_users(cluster):
    before = len(cluster.kube.requests)
    run = cluster.ansible(USERS)
    assert run.rc == 0, run
    assert "created admin, viewer, operator" in report(run), report(run)
    assert run.changed() == 2, run  # the report and the managed users in the Secret, as on servers
    jobs = job_posts(cluster.kube, before)
    assert len(jobs) == 1 and jobs[0]["path"] == "/apis/batch/v1/namespaces/af/jobs"
    job = jobs[0]["body"]
    assert job["metadata"]["name"] == "failback-airflow-users-" + cluster.facts["job"]["name_suffix"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0 and job["spec"]["backoffLimit"] == 0
    passwords = json.loads(cluster.secret()["passwords.json"])
    assert cluster.sign_in(admin=ADMIN_PASSWORD, viewer=passwords["viewer"], operator="0perator-pw", nobody="x") == {
        "admin": ["Admin"], "viewer": ["Viewer"], "operator": ["Op"], "nobody": None}
    assert json.loads(cluster.secret()["users.json"]) == ["admin", "viewer", "operator"]
    for value in (ADMIN_PASSWORD, "0perator-pw", passwords["viewer"]):
        assert value not in run.text()

    # The same request again: its Job exists, nothing runs, nothing changes.
    before = len(cluster.kube.requests)
    again = cluster.ansible(USERS)
    assert again.rc == 0 and again.changed() == 0, again
    assert job_posts(cluster.kube, before) == [] and "ran this request already" in report(again)

    # Gone after its TTL: the Job runs again and finds the users in line.
    for name in list(cluster.kube.jobs(NAMESPACE)):
        del cluster.kube.objects[("jobs", NAMESPACE, name)]
    before = len(cluster.kube.requests)
    later = cluster.ansible(USERS)
    assert later.rc == 0 and later.changed() == 0, later
    assert len(job_posts(cluster.kube, before)) == 1 and "created none; updated none; disabled none" in report(later)

    # A changed inventory: check mode tells and starts no Job; the new request's Job disables operator.
    before = len(cluster.kube.requests)
    check = cluster.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}], check=True)
    assert check.rc == 0 and check.changed() > 0, check
    assert job_posts(cluster.kube, before) == [], "check mode runs no Job"
    assert "would run" in [h["k8s-prod"]["msg"] for h in check.results("Report what check mode leaves out")][0]

    run = cluster.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}])
    assert run.rc == 0, run
    text = report(run)
    assert "updated viewer: ['password', 'role']" in text or "updated viewer: ['role', 'password']" in text, text
    assert "disabled operator" in text, text
    assert cluster.sign_in(viewer="new-viewer-pw", operator="0perator-pw") == {"viewer": ["User"], "operator": None}
    assert json.loads(cluster.secret()["users.json"]) == ["admin", "viewer"]

    # The next run asks to disable nobody: a new request, whose Job changes nothing; check mode knows.
    check = cluster.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}], check=True)
    assert check.rc == 0 and check.changed() == 0, check
    settled = cluster.ansible([{"username": "viewer", "role": "User", "password": "new-viewer-pw"}])
    assert settled.rc == 0 and settled.changed() == 0, settled


def test_the_scripts_error_fails_the_run_and_the_managed_users_stay(cluster):
    first = cluster.ansible(USERS)
    assert first.rc == 0 and "created admin, viewer, operator" in report(first), report(first)
    managed = cluster.secret()["users.json"]
    # FAB refuses a user whose e-mail belongs to another user of the database.
    run = cluster.ansible([{"username": "intruder", "role": "Viewer", "email": "ops@example.com"}])
    assert run.rc != 0, run
    assert "the email ops@example.com of user intruder belongs to the existing user operator" in run.text(), run
    assert cluster.secret()["users.json"] == managed, "a failed Job keeps the users this role manages"
    assert cluster.sign_in(operator="0perator-pw") == {"operator": ["Op"]}, "a refused request changes nothing"
    # The failed Job of that request runs again (and fails again) on the next run.
    before = len(cluster.kube.requests)
    again = cluster.ansible([{"username": "intruder", "role": "Viewer", "email": "ops@example.com"}])
    assert again.rc != 0 and "belongs to the existing user operator" in again.text(), again
    assert len(job_posts(cluster.kube, before)) == 1
    for value in (ADMIN_PASSWORD, "0perator-pw"):
        assert value not in run.text() + again.text()

"""Leak test: the airflow_credentials and airflow_auth roles with -vvv, --diff and canary values for
every secret input (Airflow's secrets, connections, variables, task files, the AWS secrets backend's
keys, the admin's and users' passwords, an OAuth client secret, an LDAP bind password).

No canary (nor a generated secret) may appear in the Ansible output or log (diffs included), in a
ConfigMap or env literal rendered for Kubernetes, in any process argument list or environment seen
while the playbooks run, or in a file with a mode wider than 0640.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
import sys
import threading
import time
from urllib.parse import quote

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "credentials"))

import credential_helpers as ch  # noqa: E402  (path set just above)
from failback_ansible import run_playbook  # noqa: E402

POLL_SECONDS = 0.01
_B64_RE = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")


def canary(label):
    return "Canary-%s-%s" % (label, secrets.token_hex(8))


def make_canaries():
    values = {name: canary(name) for name in (
        "api_secret_key", "jwt_secret", "db_password", "database_url_password", "uri_password", "field_password",
        "field_login", "extra_token", "variable", "json_variable", "env_file", "json_file", "yaml_file", "ini_file",
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "admin_password", "user_password",
        "oauth_client_secret", "ldap_bind_password")}
    values["fernet_key"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values["db_password"] += "!@:/%"  # needs escaping inside the database URL
    return values


# Stands in for `podman exec -i CONTAINER` in the airflow_auth role's users entry point: reads the
# request (passwords included) from standard input, as fab_users.py does, and answers like it.
USERS_STAND_IN = (
    "import json, sys; request = json.load(sys.stdin); "
    "print(json.dumps({'changed': True, 'created': [u['username'] for u in request['users']], "
    "'updated': {}, 'disabled': [], 'roles': []}))"
)


def auth_vars(root, name, c, **extra):
    values = dict(
        test_auth=True,
        airflow_auth_dir=os.path.join(str(root), name, "auth"),
        airflow_auth_file_owner=ch.OWNER,
        airflow_auth_file_group=ch.GROUP,
        airflow_auth_admin_password=c["admin_password"],
        airflow_auth_users=[{"username": "given", "role": "Op", "password": c["user_password"]},
                            {"username": "generated", "role": "Viewer"}],
        airflow_auth_exec=[sys.executable, "-c", USERS_STAND_IN],
    )
    values.update(extra)
    return values


def inventory_hosts(root, c):
    every_input = dict(
        airflow_credentials_fernet_key=c["fernet_key"],
        airflow_credentials_api_secret_key=c["api_secret_key"],
        airflow_credentials_jwt_secret=c["jwt_secret"],
        airflow_credentials_db_password=c["db_password"],
        airflow_credentials_connections={
            "uri_conn": "postgres://etl:%s@db.example.com:5432/dwh" % c["uri_password"],
            "field_conn": {"conn_type": "http", "host": "api.example.com", "login": c["field_login"],
                           "password": c["field_password"], "extra": {"token": c["extra_token"]}},
        },
        airflow_credentials_variables={"plain": c["variable"], "nested": {"inner": c["json_variable"]}},
        airflow_credentials_files={
            "task.env": {"data": {"TASK_PASSWORD": c["env_file"]}},
            "task.json": {"data": {"password": c["json_file"]}},
            "task.yaml": {"data": {"password": c["yaml_file"]}},
            "task.ini": {"data": {"db": {"password": c["ini_file"]}}},
        },
    )
    return {
        "leak-given": ch.host_vars(root, "leak-given", **every_input),
        "leak-external": ch.host_vars(root, "leak-external", airflow_credentials_database_url=(
            "postgresql+psycopg2://ext:%s@db.internal:5432/airflow" % c["database_url_password"])),
        "leak-generated": ch.host_vars(root, "leak-generated"),
        "leak-backend": ch.host_vars(
            root, "leak-backend",
            airflow_credentials_secrets_backend="aws_secrets_manager",
            airflow_credentials_secrets_backend_kwargs={"region_name": "eu-west-1"},
            airflow_credentials_aws_access_key_id=c["aws_access_key_id"],
            airflow_credentials_aws_secret_access_key=c["aws_secret_access_key"],
            airflow_credentials_aws_session_token=c["aws_session_token"],
            **auth_vars(root, "leak-backend", c, airflow_auth_type="oauth", airflow_auth_oauth_providers=[
                {"name": "google", "client_id": "client-id.example", "client_secret": c["oauth_client_secret"]}])),
        "leak-ldap": ch.host_vars(
            root, "leak-ldap",
            **auth_vars(root, "leak-ldap", c, airflow_auth_type="ldap", airflow_auth_ldap={
                "server": "ldap://127.0.0.1:3389", "search": "ou=people,dc=example,dc=com",
                "bind_user": "cn=airflow,dc=example,dc=com", "bind_password": c["ldap_bind_password"]})),
    }


class ProcessWatcher(object):
    """Collects the argument list and environment of every process while a playbook runs (bounded)."""

    def __init__(self, limit_seconds):
        self.seen = set()
        self.polls = 0
        self._stop = threading.Event()
        self._limit = limit_seconds
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self._limit
        own = str(os.getpid())
        while not self._stop.is_set() and time.monotonic() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or pid == own:
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        with open("/proc/%s/%s" % (pid, name), "rb") as handle:
                            self.seen.add(handle.read())
                    except OSError:
                        continue
            self.polls += 1
            self._stop.wait(POLL_SECONDS)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def forms(values):
    """Every form a secret could take when leaked: raw, base64 (whole value) and URL-quoted."""
    found = set()
    for value in values:
        found.update(ch.encodings(value))
    return sorted(found)


def leaked(data, secret_forms):
    """The secret forms found in *data* (bytes), also inside base64 blobs (e.g. Secret data)."""
    hits = [form for form in secret_forms if form.encode() in data]
    for blob in _B64_RE.findall(data):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(blob + b"=" * (-len(blob) % 4))
            except (binascii.Error, ValueError):
                continue
            hits += [form for form in secret_forms if form.encode() in decoded]
    return sorted(set(hits))


def test_no_secret_leaks_anywhere(tmp_path):
    c = make_canaries()
    inventory = ch.write_inventory(tmp_path / "hosts.yml", inventory_hosts(tmp_path, c))
    log_path = tmp_path / "ansible.log"
    env = {
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "ANSIBLE_LOG_PATH": str(log_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
    }
    outputs, watcher_polls = [], 0
    processes = set()

    def run(playbook_name, callback=None, **kwargs):
        run_env = dict(env)
        if callback:
            run_env["ANSIBLE_STDOUT_CALLBACK"] = callback
        with ProcessWatcher(limit_seconds=900) as watcher:
            result = run_playbook(ch.playbook(playbook_name), inventory, verbosity=3, diff=True, env=run_env, **kwargs)
        processes.update(watcher.seen)
        outputs.append(("%s %s" % (playbook_name, kwargs), result.text()))
        assert result.rc == 0, result.text()[-6000:]
        return watcher.polls

    watcher_polls += run("site.yml", check=True)
    watcher_polls += run("site.yml")
    watcher_polls += run("site.yml", callback="ansible.posix.json")
    watcher_polls += run("render.yml")
    hosts = inventory_hosts(tmp_path, c)
    hosts["leak-generated"]["airflow_credentials_rotate"] = [
        "fernet_key", "api_secret_key", "jwt_secret", "db_password"]
    generated_before = ch.read_tree(tmp_path / "leak-generated" / "secrets")
    ch.write_inventory(tmp_path / "hosts.yml", hosts)
    watcher_polls += run("site.yml")
    del hosts["leak-generated"]["airflow_credentials_rotate"]  # rotation is asked for one run only
    ch.write_inventory(tmp_path / "hosts.yml", hosts)
    watcher_polls += run("retire.yml")
    assert watcher_polls > 20, "the process watcher hardly ran"

    generated = []
    for tree in (generated_before, ch.read_tree(tmp_path / "leak-generated" / "secrets")):
        generated += [tree["airflow/" + n] for n in ("api_secret_key", "jwt_secret", "db_password")]
        generated += tree["airflow/fernet_key"].split(",")
    with open(str(tmp_path / "leak-backend" / "auth" / "passwords.json")) as handle:
        generated.append(json.load(handle)["generated"])  # a user password the role generated
    secret_forms = forms(list(c.values()) + generated)
    clear_forms = sorted(set(list(c.values()) + generated + [quote(v, safe="") for v in list(c.values()) + generated]))

    # The runs did what they should, so the scans below are meaningful.
    text = "\n".join(out for _name, out in outputs)
    assert "connections/field_conn: (hidden, added)" in text and "files/task.ini: (hidden, added)" in text
    assert "the output has been hidden due to the fact that 'no_log: true' was specified" in text
    assert "AIRFLOW__CORE__FERNET_KEY_CMD" in text and "secretName: failback-airflow-secrets" in text
    assert "airflow_credentials_rotate" not in text or "jwt_secret" in text
    assert "FAB users of leak-backend: created admin, given, generated" in text

    # 1. Ansible output (every run, -vvv, --diff, both callbacks) and the Ansible log.
    for name, out in outputs:
        assert leaked(out.encode(), secret_forms) == [], "secret in the output of %s" % name
    assert log_path.exists() and leaked(log_path.read_bytes(), secret_forms) == []

    # 2. Process argument lists and environments seen while the playbooks ran.
    for seen in processes:
        assert leaked(seen, secret_forms) == [], "secret in a process argument list or environment"

    # 3. Kubernetes: only Secrets are rendered; their data holds the canaries, nothing else does.
    manifests = tmp_path / "leak-given" / "manifests"
    kinds, decoded = set(), b""
    for name in sorted(os.listdir(str(manifests))):
        raw = (manifests / name).read_bytes()
        definition = yaml.safe_load(raw)
        kinds.add(definition["kind"])
        assert [form for form in clear_forms if form.encode() in raw] == [], "clear-text secret in %s" % name
        decoded += b"".join(base64.b64decode(value) for value in definition["data"].values())
        stripped = dict(definition, data={})
        assert leaked(yaml.safe_dump(stripped).encode(), secret_forms) == [], "secret outside Secret data"
    assert kinds == {"Secret"}, "only Secrets may carry credentials (no ConfigMap)"
    for value in c.values():
        if value not in (c["database_url_password"], c["admin_password"], c["user_password"],
                         c["oauth_client_secret"], c["ldap_bind_password"]) and not value.startswith("Canary-aws"):
            assert value.encode() in decoded or ch.encodings(value)[-1].encode() in decoded, "missing from Secrets"

    # 4. Files: anything that holds a secret is at most 0640 (no group write, nothing for others).
    checked = 0
    for directory, _dirs, files in os.walk(str(tmp_path)):
        for name in files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            if leaked(data, secret_forms):
                checked += 1
                assert stat.S_IMODE(st.st_mode) & 0o137 == 0, "%s holds a secret with mode %o" % (
                    path, stat.S_IMODE(st.st_mode))
    assert checked >= 20, "expected the secrets, store, manifests and inventory to hold secrets"
    leftovers = [p for d in ("ansible-local", "ansible-remote") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert leftovers == [], "Ansible left temporary files behind: %s" % leftovers

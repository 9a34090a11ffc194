"""Git DAG bundles as the roles configure them, used by real Airflow 3 (the Git provider).

A bare repository is served by ``git daemon`` on 127.0.0.1. Two Airflow homes ("server-1" and
"server-2", sqlite) get the environment the airflow_server role gives its containers for the
fleet's ``airflow_dag_bundles`` - Airflow's bundle list from the collection's
``dag_bundle_config`` filter, rendered by Ansible. Both parse the repository's commit; a new
commit reaches both at their next refresh; a run records the commit it was created at and its task
runs that commit's code even after a newer commit was parsed (a scheduler and an API server on
127.0.0.1 execute it).
Run with .venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import failback_testlib as lab
from failback_ansible import REPO, run_playbook

sys.path.insert(0, os.path.join(REPO, "plugins", "module_utils"))
import dag_bundles  # noqa: E402  pylint: disable=wrong-import-position

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
DAG_FILE = os.path.join(REPO, "tests", "dags", "bundle", "failback_bundle_hello.py")
DAG_ID = "failback_bundle_hello"
DAG_REPO = os.path.join(REPO, "tests", "dag-repo.sh")
TIMEOUT = 300
TOKEN = "glpat-canary-git-token-4b7e9d"


def _git_commit(repo, version):
    """Commit version *version* of the DAG file; return the new commit."""
    source = open(DAG_FILE).read()
    assert 'CODE_VERSION = "1"' in source
    changed = os.path.join(os.path.dirname(repo), "v%d" % version, os.path.basename(DAG_FILE))
    os.makedirs(os.path.dirname(changed), exist_ok=True)
    with open(changed, "w") as handle:
        handle.write(source.replace('CODE_VERSION = "1"', 'CODE_VERSION = "%d"' % version))
    proc = subprocess.run(["bash", DAG_REPO, "commit", repo, changed], capture_output=True, text=True, timeout=60,
                          check=True)
    return proc.stdout.split()[-1]


@pytest.fixture(scope="module")
def git_server(tmp_path_factory):
    """A bare repository with the DAG, served read-only by git daemon on 127.0.0.1."""
    if not shutil.which("git"):
        pytest.fail("git is not installed (tests/setup-host.sh installs it)")
    base = str(tmp_path_factory.mktemp("git"))
    repo = os.path.join(base, "dags.git")
    first = subprocess.run(["bash", DAG_REPO, "create", repo, DAG_FILE], capture_output=True, text=True, timeout=60,
                           check=True).stdout.split()[-1]
    port = lab.free_port()
    log = open(os.path.join(base, "daemon.log"), "w")
    proc = subprocess.Popen(["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", "--port=%d" % port,
                             "--base-path=" + base, "--export-all", base], stdout=log, stderr=subprocess.STDOUT)
    lab.wait_port(port, proc, "git daemon")
    yield {"repo": repo, "url": "git://127.0.0.1:%d/dags.git" % port, "first": first}
    lab.stop_process(proc)
    log.close()


def _bundle_env(tmp_path, url):
    """The bundle settings the airflow_server role puts in every container's environment."""
    playbook = tmp_path / "bundle_env.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ airflow_dag_bundles | failback.airflow.dag_bundle_config | to_json }}\"\n")
    bundles = [{"name": "dags", "repo_url": url, "tracking_ref": "main", "subdir": "dags", "refresh_interval": 0}]
    run = run_playbook(str(playbook), "localhost,", extra_vars={"airflow_dag_bundles": bundles})
    assert run.rc == 0, run
    [hosts] = run.results("debug")
    config = hosts["localhost"]["msg"]
    assert json.loads(config)[0]["classpath"] == "airflow.providers.git.bundles.git.GitDagBundle"
    return config


class Home(object):
    """One Airflow installation: its own AIRFLOW_HOME, sqlite database and bundle clones."""

    def __init__(self, root, name, bundle_config):
        self.name = name
        self.home = os.path.join(root, name)
        os.makedirs(self.home)
        self.env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("FAILBACK_", "AIRFLOW")))
        self.env.update(
            AIRFLOW_HOME=self.home,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__API_AUTH__JWT_SECRET="failback-bundle-test-jwt-secret-0123456789",
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=bundle_config,
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH=os.path.join(self.home, "bundles"),
        )
        self.database = os.path.join(self.home, "airflow.db")
        self.airflow("db", "migrate")

    def airflow(self, *args, timeout=TIMEOUT):
        proc = subprocess.run([AIRFLOW] + list(args), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)
        assert proc.returncode == 0, "%s: airflow %s\n%s" % (self.name, " ".join(args), (proc.stdout + proc.stderr)[-6000:])
        return proc

    def parse(self):
        """One pass of the DAG processor: refresh the bundles, parse their files."""
        return self.airflow("dag-processor", "--num-runs", "1")

    def query(self, sql, *args):
        with sqlite3.connect(self.database) as db:
            return db.execute(sql, args).fetchall()

    def parsed(self):
        return dict((row[0], row[1:]) for row in self.query("SELECT dag_id, bundle_name, bundle_version FROM dag"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, git_server):
    root = tmp_path_factory.mktemp("bundle_fleet")
    config = _bundle_env(root, git_server["url"])
    return [Home(str(root), name, config) for name in ("server-1", "server-2")]


def test_both_installations_follow_the_repository_without_ansible(git_server, fleet):
    for home in fleet:
        home.parse()
        assert home.parsed() == {DAG_ID: ("dags", git_server["first"])}, home.name
    second = _git_commit(git_server["repo"], 2)
    assert second != git_server["first"]
    for home in fleet:
        home.parse()
        assert home.parsed() == {DAG_ID: ("dags", second)}, home.name
        [(code,)] = home.query("SELECT source_code FROM dag_code WHERE dag_id = ? ORDER BY last_updated DESC LIMIT 1",
                               DAG_ID)
        assert 'CODE_VERSION = "2"' in code, home.name


def test_a_run_records_its_commit_and_runs_that_code_after_a_newer_commit(git_server, fleet):
    home = fleet[0]
    third = _git_commit(git_server["repo"], 3)
    home.parse()
    assert home.parsed()[DAG_ID] == ("dags", third)
    home.airflow("dags", "trigger", DAG_ID, "--run-id", "bundle-v3")
    # A newer commit parsed before the run's task starts: the task still runs its run's commit.
    fourth = _git_commit(git_server["repo"], 4)
    home.parse()
    assert home.parsed()[DAG_ID] == ("dags", fourth)
    port = lab.free_port()
    env = dict(home.env, AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:%d/execution/" % port)
    logs = [open(os.path.join(home.home, name + ".out"), "w") for name in ("api-server", "scheduler")]
    api = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                           stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)
    scheduler = None
    try:
        lab.wait_port(port, api, "airflow api-server")
        scheduler = subprocess.Popen([AIRFLOW, "scheduler"], env=env, stdout=logs[1], stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline, state = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            [(state, version)] = home.query("SELECT state, bundle_version FROM dag_run WHERE run_id = 'bundle-v3'")
            if state in ("success", "failed"):
                break
            time.sleep(2)
    finally:
        for proc in (scheduler, api):
            if proc is not None:
                lab.stop_process(proc)
        for log in logs:
            log.close()
    assert (state, version) == ("success", third), open(os.path.join(home.home, "scheduler.out")).read()[-4000:]
    task_logs = []
    for folder, _dirs, files in os.walk(os.path.join(home.home, "logs", "dag_id=" + DAG_ID, "run_id=bundle-v3")):
        task_logs.extend(open(os.path.join(folder, name)).read() for name in files)
    assert any("failback_bundle_hello code version 3" in text for text in task_logs), task_logs
    assert not any("code version 4" in text for text in task_logs), task_logs


# --------------------------------------------------------------------------- a token over HTTP


class _GitHttp(http.server.BaseHTTPRequestHandler):
    """Git's smart HTTP protocol (git http-backend as CGI) behind HTTP basic auth: user fleet, TOKEN."""

    root = None
    seen = []

    def log_message(self, *_args):  # quiet
        pass

    def _serve(self):
        expected = "Basic " + base64.b64encode(("fleet:" + TOKEN).encode()).decode()
        self.seen.append(self.headers.get("Authorization") == expected)
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="dags"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _sep, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=self.root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_USER="fleet", REMOTE_ADDR="127.0.0.1",
                   CONTENT_TYPE=self.headers.get("Content-Type") or "", CONTENT_LENGTH=str(len(body)),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding") or "")
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60,
                             check=False).stdout
        head, _sep, payload = out.partition(b"\r\n\r\n") if b"\r\n\r\n" in out else out.partition(b"\n\n")
        headers = [line.split(":", 1) for line in head.decode().splitlines() if ":" in line]
        status = dict((k.strip().lower(), v.strip()) for k, v in headers).get("status", "200 OK")
        self.send_response(int(status.split()[0]))
        for key, value in headers:
            if key.strip().lower() != "status":
                self.send_header(key.strip(), value.strip())
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve


@pytest.fixture(scope="module")
def http_git_server(git_server):
    """The same repository over HTTP on 127.0.0.1, readable with the token only."""
    _GitHttp.root = os.path.dirname(git_server["repo"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GitHttp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/dags.git" % server.server_address[1]
    server.shutdown()
    thread.join(timeout=30)


def _connection_home(root, name, url, token):
    """An installation whose bundle names only a git connection (repo_url from its host, the token its password)."""
    home = Home(str(root), name, json.dumps(dag_bundles.config_list([{"name": "dags", "conn_id": "git_dags",
                                                                      "subdir": "dags"}])))
    home.env["AIRFLOW_CONN_GIT_DAGS"] = json.dumps({"conn_type": "git", "host": url, "login": "fleet",
                                                    "password": token})
    return home


def test_a_token_in_the_git_connection_reaches_an_http_repository_and_shows_nowhere(
        tmp_path, git_server, http_git_server):
    head = subprocess.run(["git", "--git-dir", git_server["repo"], "rev-parse", "main"], capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()
    home = _connection_home(tmp_path, "with-token", http_git_server, TOKEN)
    proc = home.parse()
    assert home.parsed() == {DAG_ID: ("dags", head)}
    assert any(_GitHttp.seen), "the repository was never asked with the token"
    shown = [proc.stdout, proc.stderr]
    for folder, _dirs, files in os.walk(os.path.join(home.home, "logs")):
        shown.extend(open(os.path.join(folder, name), errors="replace").read() for name in files)
    assert not [text for text in shown if TOKEN in text]

    wrong = _connection_home(tmp_path, "wrong-token", http_git_server, "not-the-token")
    wrong.parse()
    assert wrong.parsed() == {}, "a repository behind HTTP auth was read with a wrong token"

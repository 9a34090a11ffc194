"""Shared helpers of the airflow_credentials tests: inventories, file fingerprints, playbook results."""

from __future__ import annotations

import base64
import os
import stat
from urllib.parse import quote

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
IS_ROOT = os.geteuid() == 0
# The Airflow uid of the contract when the tests can chown, else the user running them.
OWNER = "50000" if IS_ROOT else str(os.geteuid())
GROUP = "0" if IS_ROOT else str(os.getegid())

FERNET_LIKE = base64.urlsafe_b64encode(b"\x01" * 32).decode()


def playbook(name):
    return os.path.join(HERE, name)


def host_vars(root, name, **extra):
    """Variables of one local test installation whose files all live under *root*."""
    values = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "airflow_credentials_dir": os.path.join(str(root), name, "secrets"),
        "airflow_credentials_store_dir": os.path.join(str(root), "store"),
        "airflow_credentials_file_owner": OWNER,
        "airflow_credentials_file_group": GROUP,
        "airflow_credentials_kubernetes_manifest_dir": os.path.join(str(root), name, "manifests"),
    }
    values.update(extra)
    return values


def write_inventory(path, hosts):
    """An inventory (mode 0600: it holds test secrets) with the given hosts -> variables."""
    text = yaml.safe_dump({"all": {"hosts": hosts}}, default_flow_style=False, sort_keys=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return str(path)


def fingerprint(root):
    """Content, inode, mtime, mode and owner of every file and directory under *root*."""
    found = {}
    for directory, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    content = handle.read()
            found[os.path.relpath(path, str(root))] = (content, st.st_ino, st.st_mtime_ns, st.st_mode, st.st_uid,
                                                       st.st_gid)
    return found


def changed_files(before, after):
    """Regular files whose fingerprint differs (directories' mtimes change with every rename)."""
    return sorted(path for path in set(before) | set(after)
                  if before.get(path) != after.get(path) and (before.get(path) or after.get(path))[0] is not None)


def read_tree(root):
    tree = {}
    for directory, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(directory, name)
            with open(path) as handle:
                tree[os.path.relpath(path, str(root))] = handle.read()
    return tree


def host_results(run):
    """{host: [task results in order]} from a JSON-callback run."""
    found = {}
    for play in run.json.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                entry = dict(result)
                entry["_task"] = task["task"]["name"]
                found.setdefault(host, []).append(entry)
    return found


def failures(run):
    """{host: message of its failed task}."""
    messages = {}
    for host, results in host_results(run).items():
        for result in results:
            if result.get("failed"):
                messages[host] = "%s: %s" % (result["_task"], result.get("msg", ""))
    return messages


def facts(run, host):
    """The msg of the last 'Show the credentials facts' task for *host*."""
    shown = [r["msg"] for r in host_results(run).get(host, []) if r["_task"].endswith("Show the credentials facts")]
    assert shown, "no facts shown for %s:\n%r" % (host, run)
    return shown[-1]


def task_result(run, host, name):
    """The last result of the task whose name contains *name*, for *host*."""
    shown = [r for r in host_results(run).get(host, []) if name in r["_task"]]
    assert shown, "no task %r for %s:\n%r" % (name, host, run)
    return shown[-1]


def report(run, host):
    """The result of the role's 'Show which credentials changed' task for *host*."""
    shown = [r for r in host_results(run).get(host, []) if "Show which credentials changed" in r["_task"]]
    assert shown, "no credential report for %s:\n%r" % (host, run)
    return shown[-1]


def encodings(value):
    """The forms in which a secret could leak: raw, base64 (Kubernetes data), URL-quoted."""
    forms = {value, base64.b64encode(value.encode()).decode(), quote(value, safe="")}
    return sorted(form for form in forms if form)

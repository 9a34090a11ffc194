"""Helpers for tests that run the collection's playbooks with ansible-playbook.

``run_playbook(playbook, inventory, ...)`` runs ansible-playbook with the JSON callback and
returns a ``PlaybookRun`` with ``rc``, ``stats`` (per-host ok/changed/failures/unreachable),
``tasks`` (the JSON callback's plays/tasks) and the raw ``stdout``/``stderr``.

``run_module(capsys, module, ...)`` runs one of the collection's modules in-process, the way unit
tests do, and returns its JSON result with the exit code as ``rc``.
"""

from __future__ import annotations

import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")
PLAYBOOK_TIMEOUT = 900


class PlaybookRun(object):
    def __init__(self, args, proc):
        self.args = args
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.json = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            self.json = {"plays": [], "stats": {}}
        self.stats = self.json.get("stats", {})

    def changed(self, host=None):
        hosts = [host] if host else list(self.stats)
        return sum(self.stats.get(h, {}).get("changed", 0) for h in hosts)

    def results(self, task_name):
        """Per-host results of every task whose name contains *task_name*."""
        found = []
        for play in self.json.get("plays", []):
            for task in play.get("tasks", []):
                if task_name in task["task"]["name"]:
                    found.append(task["hosts"])
        return found

    def text(self):
        return self.stdout + self.stderr

    def failed_tasks(self):
        """``"task on host: message"`` for every task that failed (also the rescued and ignored ones)."""
        found = []
        for play in self.json.get("plays", []):
            for task in play.get("tasks", []):
                for host, result in task["hosts"].items():
                    if result.get("failed") or result.get("unreachable"):
                        found.append("%s on %s: %s" % (task["task"]["name"], host, str(result.get("msg"))[:2000]))
        return found

    def __repr__(self):
        return "PlaybookRun(rc=%s, stats=%s)\nFAILED TASKS:\n%s\nSTDERR:\n%s\nSTDOUT (tail):\n%s" % (
            self.rc, self.stats, "\n".join(self.failed_tasks()) or "-", self.stderr[-3000:], self.stdout[-6000:])


def run_playbook(playbook, inventory, extra_vars=None, check=False, diff=False, verbosity=0, env=None, timeout=PLAYBOOK_TIMEOUT):
    args = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), os.path.join(REPO, "playbooks", playbook)
            if not os.path.isabs(playbook) else playbook]
    for key, value in (extra_vars or {}).items():
        args += ["-e", json.dumps({key: value})]
    if check:
        args.append("--check")
    if diff:
        args.append("--diff")
    if verbosity:
        args.append("-" + "v" * verbosity)
    full_env = dict(os.environ)
    full_env.update(
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    )
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(args, proc)


def start_playbook(playbook, inventory, extra_vars=None):
    """Start ansible-playbook in its own process group (``os.killpg(proc.pid, SIGKILL)`` kills it
    whole, as a kill -9 of the operator's run would); stdout and stderr together, as text."""
    args = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), os.path.join(REPO, "playbooks", playbook)]
    for key, value in (extra_vars or {}).items():
        args += ["-e", json.dumps({key: value})]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def run_module(capsys, module, check_mode=False, diff=False, **args):
    """Run ``module.main()`` with *args* as module arguments; return its JSON result plus ``rc``."""
    import pytest
    from ansible.module_utils.testing import patch_module_args

    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            module.main()
    result = json.loads(capsys.readouterr().out)
    result["rc"] = exit_info.value.code
    return result

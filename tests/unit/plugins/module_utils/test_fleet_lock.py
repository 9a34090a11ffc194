"""The fleet lock: held by a process that lives as long as the run; records name no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ansible_collections.failback.airflow.plugins.module_utils import fleet_lock


def test_the_lock_file_is_next_to_the_real_map(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "placement.yml").write_text("{}\n")
    (tmp_path / "placement.yml").symlink_to(tmp_path / "repo" / "placement.yml")
    assert fleet_lock.lock_path(str(tmp_path / "placement.yml")) == str(tmp_path / "repo" / "placement.lock")


def test_the_command_names_extra_vars_but_never_their_values():
    argv = ["/venv/bin/python3.11", "/venv/bin/ansible-playbook", "-i", "inv", "playbooks/failover.yml",
            "-e", "failover_from=server-1 failover_to=server-2", "-e", '{"airflow_credentials_fernet_key": "SECRET"}',
            "--extra-vars=token=SECRET2", "-eother=SECRET3", "--vault-password-file=/etc/v", "--check"]
    command = fleet_lock.describe_command(argv)
    assert command == ("ansible-playbook -i inv playbooks/failover.yml -e failover_from=... failover_to=... -e "
                       "{airflow_credentials_fernet_key} --extra-vars=token=... -eother=... --vault-password-file --check")
    assert "SECRET" not in command


def _hold(path, watch, record=None):
    proc = subprocess.Popen(fleet_lock.holder_argv(sys.executable, str(path), watch.pid,
                                                   fleet_lock.process_start(watch.pid), record or {"pid": watch.pid}),
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    return proc, proc.stdout.readline().strip()


def test_a_second_holder_is_busy_and_the_lock_ends_with_the_run(tmp_path):
    path = tmp_path / "placement.lock"
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder, first = _hold(path, run, {"playbook": "failover.yml", "pid": run.pid})
        assert first.startswith("locked")
        assert json.loads(path.read_text())["playbook"] == "failover.yml"
        other, second = _hold(path, run)
        assert second == "busy" and other.wait(10) == 1
        run.kill()
        run.wait(10)
        assert holder.wait(10) == 0, "the holder exits when the run it watches is gone"
        third_run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        third, line = _hold(path, third_run)
        try:
            assert line.startswith("locked")
        finally:
            third_run.kill()
            third_run.wait(10)
            third.wait(10)
    finally:
        if run.poll() is None:
            run.kill()


def test_alive_tells_a_reused_pid_apart():
    me = os.getpid()
    assert fleet_lock.alive(me, fleet_lock.process_start(me))
    assert not fleet_lock.alive(me, "1")
    assert not fleet_lock.alive(2 ** 22 + 11, None)


def test_explain_names_the_holder_and_the_way_out(tmp_path):
    text = fleet_lock.explain("/x/placement.lock", {"playbook": "failover.yml", "holder": "alice@ctl", "pid": 42,
                                                    "since": "2026-12-01T10:00:00Z", "command": "ansible-playbook f.yml",
                                                    "host": "ctl"})
    assert "locked by another run: failover.yml by alice@ctl (process 42, since 2026-12-01T10:00:00Z" in text
    assert "remove /x/placement.lock" in text
    assert time.time() > 0


def test_the_playbook_is_the_last_positional_yml_argument():
    argv = ["/venv/bin/python3.11", "/venv/bin/ansible-playbook", "-i", "hosts.yml", "--limit", "x.yml",
            "/repo/playbooks/site.yml", "-e", "@vars.yml"]
    assert fleet_lock.playbook_name(argv) == "site.yml"
    assert fleet_lock.playbook_name(["ansible-playbook", "-i", "inv.yml"]) is None

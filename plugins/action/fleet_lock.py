# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of failback.airflow.fleet_lock (documented in plugins/modules/fleet_lock.py).

Runs on the controller only: it starts the holder process of module_utils/fleet_lock.py, which
keeps an flock next to the controller's map while this ansible-playbook run lives.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import subprocess
import sys
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.failback.airflow.plugins.module_utils import fleet_lock

#: A run that was just killed: its holder notices within POLL_SECONDS; wait a little for it.
STALE_WAIT_SECONDS = 5.0


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return [part.decode("utf-8", "replace") for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=dict(
            path=dict(type="path", required=True),
            playbook=dict(type="str", default=""),
        ))
        map_path = args["path"]
        lockfile = fleet_lock.lock_path(map_path)
        result.update(changed=False, path=lockfile)
        if not os.path.isdir(os.path.dirname(lockfile)):
            raise AnsibleActionFail("the directory of the controller's map %s does not exist" % map_path)
        run_pid = os.getppid()  # workers are forked from the ansible-playbook process
        run_start = fleet_lock.process_start(run_pid)
        host = socket.gethostname()
        argv = _cmdline(run_pid)
        record = dict(
            holder="%s@%s" % (getpass.getuser(), host), host=host, pid=run_pid, start=run_start,
            playbook=args["playbook"] or fleet_lock.playbook_name(argv) or "a playbook",
            command=fleet_lock.describe_command(argv),
            since=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if self._task.check_mode:
            try:
                current = fleet_lock.read_record(lockfile)
            except fleet_lock.LockError as exc:
                raise AnsibleActionFail(str(exc))
            result["msg"] = "check mode: the fleet lock is not taken (it changes nothing)"
            result["holder"] = current or None
            return result
        deadline = time.monotonic() + STALE_WAIT_SECONDS
        while True:
            proc = subprocess.Popen(fleet_lock.holder_argv(sys.executable, lockfile, run_pid, run_start, record),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    start_new_session=True, close_fds=True)
            line = proc.stdout.readline().decode("utf-8", "replace").strip()
            proc.stdout.close()
            if line.startswith("locked"):
                _word, pid, left = (line.split(None, 2) + [""])[:3]
                result.update(msg="fleet lock taken: %s" % lockfile, holder=record, holder_pid=int(pid))
                if left:
                    result["warnings"] = [self._left_behind(lockfile, left)]
                return result
            proc.wait(timeout=10)
            if line != "busy":
                reason = line[len("error "):] if line.startswith("error ") else line
                raise AnsibleActionFail("cannot take the fleet lock %s: %s" % (lockfile, reason or "the holder process failed"))
            try:
                current = fleet_lock.read_record(lockfile)
            except fleet_lock.LockError as exc:
                raise AnsibleActionFail(str(exc))
            if not current.get("pid") and time.monotonic() < deadline:
                time.sleep(0.1)  # a holder that has just taken it is still writing its record
                continue
            if current.get("host") == host and current.get("pid") == run_pid and current.get("start") == run_start:
                result.update(msg="this run holds the fleet lock already", holder=current)
                return result
            stale = current.get("host") == host and not fleet_lock.alive(int(current.get("pid") or 0), current.get("start"))
            if stale and time.monotonic() < deadline:
                time.sleep(0.1)  # the run that held it has ended; its holder is exiting
                continue
            raise AnsibleActionFail(fleet_lock.explain(lockfile, current), result=dict(result, holder=current))

    @staticmethod
    def _left_behind(lockfile, text):
        """The warning for a lock record whose holder was killed without letting go."""
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return "took over the fleet lock %s; it held a record that is not one of ours: %s" % (lockfile, text[:200])
        return ("took over the fleet lock %s left by %s of %s (process %s on %s, since %s: %s): its holder ended without "
                "letting go (killed, or its machine stopped). If that run was a failover, this run finishes it."
                % (lockfile, record.get("playbook", "a playbook"), record.get("holder", "someone"), record.get("pid", "?"),
                   record.get("host", "?"), record.get("since", "?"), record.get("command", "?")))

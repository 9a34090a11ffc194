# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet lock: one site.yml, publish.yml or failover.yml at a time per controller map.

The lock is an ``flock`` on ``<map stem>.lock`` next to the controller's map (the map's real
path, so every inventory that links to one map shares one lock).  It is held by a small holder
process that lives exactly as long as the ``ansible-playbook`` run that took it: the holder
watches that process (pid and start time) and exits with it, and the kernel drops an ``flock``
when its holder exits.  So the lock is released on every exit path (success, failure, Ctrl-C,
``kill -9``) and a later run never meets a lock left behind by a dead run on this machine.

The lock file holds a record of the run that took it (who, which playbook, the extra vars it
was given by name only, since when), which a refused run prints.

This file has no Ansible import: the action plugin runs it as the holder process
(``python fleet_lock.py hold ...``).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - POSIX only
    fcntl = None

#: A holder gives up after this long even if its run still goes on (a forgotten run cannot
#: block the fleet for ever).
MAX_HOLD_SECONDS = 12 * 3600
POLL_SECONDS = 0.2


class LockError(RuntimeError):
    """The lock is held by another run, or cannot be taken; the message says by whom and what to do."""


def lock_path(map_path):
    """``<dir>/<stem>.lock`` next to the real controller map (``placement.yml`` -> ``placement.lock``)."""
    real = os.path.realpath(map_path)
    stem = os.path.basename(real)
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return os.path.join(os.path.dirname(real), stem + ".lock")


def process_start(pid):
    """Start time of *pid* in clock ticks since boot (field 22 of /proc/PID/stat), or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'.
    return data[data.rindex(")") + 2:].split()[19]


def alive(pid, start):
    """True while process *pid* runs and is the same process (same start time)."""
    current = process_start(pid)
    return current is not None and (start is None or current == start)


def describe_command(argv):
    """The playbook command without values that could be secret: extra vars by name only."""
    args = list(argv)
    if len(args) > 1 and "python" in os.path.basename(args[0]):
        args = args[1:]  # /proc/PID/cmdline of a script starts with its interpreter
    words = [os.path.basename(args[0]) if args else "ansible-playbook"]
    skip_value = False
    for arg in args[1:]:
        if skip_value:
            skip_value = False
            words.append(_extra_var_names(arg))
        elif arg in ("-e", "--extra-vars"):
            words.append(arg)
            skip_value = True
        elif arg.startswith("--extra-vars="):
            words.append("--extra-vars=" + _extra_var_names(arg.split("=", 1)[1]))
        elif arg.startswith("-e") and len(arg) > 2:
            words.append("-e" + _extra_var_names(arg[2:]))
        elif arg.startswith(("--vault", "--ask", "--private-key", "--become-password", "--connection-password")):
            words.append(arg.split("=", 1)[0])
        else:
            words.append(arg)
    return " ".join(words)


_TAKES_VALUE = ("-i", "--inventory", "--inventory-file", "-e", "--extra-vars", "-l", "--limit", "-t", "--tags",
                "--skip-tags", "-u", "--user", "-c", "--connection", "-f", "--forks", "-M", "--module-path",
                "--vault-id", "--vault-password-file", "--private-key", "--start-at-task", "-T", "--timeout")


def playbook_name(argv):
    """The playbook of an ansible-playbook command line (its last positional .yml argument)."""
    name, skip = None, True  # skip argv[0] (and the interpreter, see describe_command)
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _TAKES_VALUE:
            skip = True
        elif not arg.startswith("-") and arg.endswith((".yml", ".yaml")):
            name = os.path.basename(arg)
    return name


def _extra_var_names(value):
    value = value.strip()
    if value.startswith("@"):
        return value  # a file name
    if value.startswith("{"):
        try:
            return "{%s}" % ",".join(sorted(str(key) for key in json.loads(value)))
        except ValueError:
            return "{...}"
    names = [part.split("=", 1)[0] for part in value.split() if "=" in part]
    return " ".join("%s=..." % name for name in names) or "..."


def read_record(path):
    try:
        with open(path, "r") as handle:
            return json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}


def explain(path, record):
    """Why a run is refused: who holds the lock and how to tell a stale one."""
    return (
        "the controller's map is locked by another run: %s by %s (process %s, since %s: %s). Wait for it to end; "
        "a lock ends with its run, so it cannot outlive a run that was stopped or killed on %s. If %s shows a holder "
        "on another machine that no longer runs, remove %s."
        % (record.get("playbook", "a playbook"), record.get("holder", "someone"), record.get("pid", "?"),
           record.get("since", "?"), record.get("command", "?"), record.get("host", "its machine"), path, path))


def hold(path, watch_pid, watch_start, record_text):
    """Holder process: take the lock, say so on stdout, keep it while the watched run lives."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        sys.stdout.write("busy\n" if exc.errno in (errno.EAGAIN, errno.EACCES) else "error %s\n" % exc.strerror)
        sys.stdout.flush()
        return 1
    os.ftruncate(fd, 0)
    os.pwrite(fd, (record_text + "\n").encode("utf-8"), 0)
    os.fsync(fd)
    sys.stdout.write("locked %d\n" % os.getpid())
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # the action plugin stops reading: nothing more goes to it
    deadline = time.monotonic() + MAX_HOLD_SECONDS
    while alive(watch_pid, watch_start) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    os.close(fd)  # releases the flock
    return 0


def holder_argv(python, path, watch_pid, watch_start, record):
    return [python, os.path.abspath(__file__), "hold", path, str(watch_pid), watch_start or "", json.dumps(record, sort_keys=True)]


def main(argv):
    if len(argv) != 6 or argv[1] != "hold":
        sys.stderr.write("usage: fleet_lock.py hold LOCKFILE PID START RECORD\n")
        return 2
    return hold(argv[2], int(argv[3]), argv[4] or None, argv[5])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

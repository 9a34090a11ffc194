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
was given by name only, since when), which a refused run prints; the holder clears it when it
lets go, so a record found by the next run that takes the lock was left by a holder that was
killed, and that run says so.  The lock file is never opened through a symbolic link, and
anything but a regular file in its place (a FIFO that would hang a run, a directory) is refused.

This file has no Ansible import: the action plugin runs it as the holder process
(``python fleet_lock.py hold ...``).
"""

from __future__ import annotations

import errno
import json
import os
import stat
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


#: The largest lock record read back (a record is a few hundred bytes).
MAX_RECORD_BYTES = 65536


def open_lock_file(path, create=False):
    """A descriptor of the lock file, opened without following a link and without blocking.

    Raises LockError naming the file when it is a symbolic link, a FIFO, a directory or anything
    but a regular file: a root-run controller never writes through a link it did not create, and
    a FIFO never hangs a run.  Returns None when it does not exist and *create* is false.
    """
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not create:
            return None
        if exc.errno == errno.ELOOP:
            raise LockError("the fleet lock file %s is a symbolic link: the lock is never taken through a link; "
                            "remove it" % path)
        raise LockError("cannot open the fleet lock file %s: %s" % (path, exc.strerror))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "directory" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else "special file"
        raise LockError("the fleet lock file %s is a %s, not a regular file: remove it" % (path, kind))
    return fd


def read_record(path):
    """The record of the run that holds (or last held) the lock; {} when there is none or it is not JSON.

    Raises LockError when the lock file is not a regular file (see open_lock_file).
    """
    fd = open_lock_file(path)
    if fd is None:
        return {}
    try:
        data = os.read(fd, MAX_RECORD_BYTES)
    except OSError:
        return {}
    finally:
        os.close(fd)
    try:
        record = json.loads(data.decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


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
    try:
        fd = open_lock_file(path, create=True)
    except LockError as exc:
        sys.stdout.write("error %s\n" % exc)
        sys.stdout.flush()
        return 1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        sys.stdout.write("busy\n" if exc.errno in (errno.EAGAIN, errno.EACCES) else "error %s\n" % exc.strerror)
        sys.stdout.flush()
        return 1
    # A holder clears its record when it lets go: one still there was left by a holder that was killed
    # (or a machine that stopped) while its run held the lock. It is reported, never taken over silently.
    previous = os.read(fd, MAX_RECORD_BYTES).decode("utf-8", "replace").strip()
    os.ftruncate(fd, 0)
    os.pwrite(fd, (record_text + "\n").encode("utf-8"), 0)
    os.fsync(fd)
    sys.stdout.write("locked %d %s\n" % (os.getpid(), " ".join(previous.split())))
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # the action plugin stops reading: nothing more goes to it
    deadline = time.monotonic() + MAX_HOLD_SECONDS
    while alive(watch_pid, watch_start) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    os.ftruncate(fd, 0)  # let go cleanly: the next run finds no record left behind
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

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files of failback.airflow credentials on a host: read a tree, plan and apply changes atomically.

Standard library only (it runs on the managed host, Python 3.8+).  A *tree* is
``{relative path: text}``; every path is ``DIR/NAME`` with DIR one of the managed directories
(``.`` for the top directory itself).  Files are written to a temporary file in the same directory,
created 0600, given their owner, group and mode, flushed to disk and renamed over the old file, so
readers (and containers that mount the directory) see the old or the new content, never a mix, and
never a file with wider permissions.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
import stat

from ansible_collections.failback.airflow.plugins.module_utils import placement

_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
#: Permission bits a credential file or directory must never have (group write, anything for others).
FILE_FORBIDDEN_BITS = 0o137
DIR_FORBIDDEN_BITS = 0o027


class CredentialFsError(Exception):
    """A path, owner, group or mode is not acceptable, or the file system refused an operation."""


def parse_mode(value, what, forbidden):
    """An octal mode string such as "0640" as an int; refuses modes wider than allowed."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value or "").strip()
        if not re.match(r"^0?[0-7]{3}$", text):
            raise CredentialFsError("%s %r is not an octal mode such as \"0640\"" % (what, value))
        mode = int(text, 8)
    if mode & forbidden or mode & 0o7000:
        raise CredentialFsError("%s %s is too wide for secrets: no write for the group and nothing for others "
                                "(allowed e.g. %s)" % (what, oct(mode)[2:].zfill(4),
                                                       "0600, 0640" if forbidden == FILE_FORBIDDEN_BITS else "0700, 0750"))
    return mode


def resolve_uid(owner):
    if owner is None or owner == "":
        return None
    text = str(owner)
    if text.isdigit():
        return int(text)
    try:
        return pwd.getpwnam(text).pw_uid
    except KeyError:
        raise CredentialFsError("owner %r is neither a uid nor a user on this host" % (owner,))


def resolve_gid(group):
    if group is None or group == "":
        return None
    text = str(group)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise CredentialFsError("group %r is neither a gid nor a group on this host" % (group,))


def _dir_path(root, directory):
    return root if directory in (".", "") else os.path.join(root, directory)


def check_tree_paths(files, directories):
    """Every path must be DIR/NAME (or NAME when "." is managed) with a plain NAME."""
    for path in files:
        directory, _sep, name = path.rpartition("/")
        directory = directory or "."
        if directory not in directories:
            raise CredentialFsError("%r is not in a managed directory (%s)" % (path, ", ".join(directories)))
        if not _NAME_RE.match(name):
            raise CredentialFsError("%r has a file name that is not allowed (letters, digits, '.', '_', '-', "
                                    "not starting with '.')" % path)


def read_tree(root, directories):
    """``{relative path: text}`` of the regular files (symlinks and hidden files are skipped)."""
    tree = {}
    for directory in directories:
        base = _dir_path(root, directory)
        try:
            names = sorted(os.listdir(base))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            raise CredentialFsError("cannot list %s: %s" % (base, exc.strerror))
        for name in names:
            if name.startswith(".") or not _NAME_RE.match(name):
                continue
            full = os.path.join(base, name)
            try:
                fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOENT, errno.EISDIR):
                    continue
                raise CredentialFsError("cannot read %s: %s" % (full, exc.strerror))
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                chunks = []
                while True:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
            key = name if directory in (".", "") else "%s/%s" % (directory, name)
            tree[key] = b"".join(chunks).decode("utf-8", "replace")
    return tree


class Plan(object):
    """What apply() will do; every list holds paths relative to the root, sorted."""

    def __init__(self):
        self.directories = []  # created or given owner/mode
        self.writes = []  # new or changed content
        self.attributes = []  # same content, owner/group/mode fixed
        self.removals = []  # not in the tree any more

    @property
    def changed(self):
        return bool(self.directories or self.writes or self.attributes or self.removals)

    def changed_files(self):
        return sorted(set(self.writes) | set(self.attributes))


def _attrs_differ(st, uid, gid, mode):
    return ((uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)
            or stat.S_IMODE(st.st_mode) != mode)


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise CredentialFsError("cannot inspect %s: %s" % (path, exc.strerror))


def plan(root, files, directories, uid, gid, mode, dir_mode, purge=True):
    """Compare the wanted tree with the host; nothing is changed.  *purge* removes unlisted files."""
    check_tree_paths(files, directories)
    result = Plan()
    for directory in ["."] + [d for d in directories if d not in (".", "")]:
        full = _dir_path(root, directory)
        st = _lstat(full)
        if st is not None and not os.path.isdir(full):
            raise CredentialFsError("%s exists and is not a directory" % full)
        if st is None or (not stat.S_ISLNK(st.st_mode) and _attrs_differ(st, uid, gid, dir_mode)):
            result.directories.append(directory)
    for path in sorted(files):
        full = os.path.join(root, path)
        st = _lstat(full)
        if st is None or not stat.S_ISREG(st.st_mode):
            result.writes.append(path)
            continue
        with open(full, "rb") as handle:
            current = handle.read()
        if current != files[path].encode("utf-8"):
            result.writes.append(path)
        elif _attrs_differ(st, uid, gid, mode):
            result.attributes.append(path)
    for directory in directories if purge else []:
        base = _dir_path(root, directory)
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            key = name if directory in (".", "") else "%s/%s" % (directory, name)
            if key in files:
                continue
            st = _lstat(os.path.join(base, name))
            if st is not None and not stat.S_ISDIR(st.st_mode):
                result.removals.append(key)
    result.removals.sort()
    return result


def atomic_write(path, data, uid=None, gid=None, mode=0o600):
    """Write *data* (text) to *path* atomically with owner and mode set before the rename."""
    placement.atomic_write(path, data, mode=mode, uid=uid, gid=gid)


def apply(root, files, result, uid, gid, mode, dir_mode):
    """Carry out a Plan made by plan() with the same arguments."""
    try:
        for directory in result.directories:
            full = _dir_path(root, directory)
            if not os.path.isdir(full):
                os.makedirs(full, mode=dir_mode)
            if uid is not None or gid is not None:
                os.chown(full, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(full, dir_mode)
        for path in result.writes:
            atomic_write(os.path.join(root, path), files[path], uid, gid, mode)
        for path in result.attributes:
            full = os.path.join(root, path)
            if uid is not None or gid is not None:
                os.chown(full, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(full, mode)
        for path in result.removals:
            os.unlink(os.path.join(root, path))
        for directory in set(os.path.dirname(path) or "." for path in result.removals):
            placement.fsync_dir(_dir_path(root, directory))
    except OSError as exc:
        raise CredentialFsError("cannot update %s: %s%s" % (
            exc.filename or root, exc.strerror,
            " (setting owner %s needs root: use become)" % uid if exc.errno == errno.EPERM else ""))

"""The drills' way from a Podman installation's containers to the authority, and a switch to cut it.

A server installation's containers live in their own network namespaces (a compose project on a
bridge network); the authority (moto's S3 on 127.0.0.1 of this machine) is not reachable from
there.  A :class:`Bridge` opens a listening socket on 127.0.0.1:PORT *inside* each container's
network namespace (a thread joins the namespace with setns(2), binds, and ends; the socket stays in
that namespace) and forwards every connection to 127.0.0.1:PORT of this namespace.  The guard in
the containers then reads ``http://127.0.0.1:PORT`` as the controller and the test cluster do, and
no traffic leaves the loopback interfaces.

A partition is :meth:`Bridge.cut`: the installation's open connections are closed and new ones are
accepted and closed at once (the guard's request fails, as with a network that drops it); it is
healed with :meth:`Bridge.heal`.  :meth:`Bridge.refresh` follows containers that were recreated or
restarted (a new namespace); the drills call it every second from a thread (:meth:`Bridge.keep`).
Needs root (setns into another process's network namespace).
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _listen_in(netns_path, port):
    """A listening socket on 127.0.0.1:*port* in the network namespace at *netns_path*."""
    result = {}

    def inside():
        try:
            with open(netns_path) as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns(%s): %s" % (netns_path, os.strerror(ctypes.get_errno())))
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            result["sock"] = sock
        except OSError as exc:
            result["error"] = exc

    # This thread ends in the other namespace; the caller's thread never leaves its own.
    thread = threading.Thread(target=inside, daemon=True)
    thread.start()
    thread.join(10)
    if "error" in result:
        raise result["error"]
    if "sock" not in result:
        raise OSError("no socket in %s within 10 s" % netns_path)
    return result["sock"]


def _pump(source, target):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Bridge(object):
    def __init__(self, port, projects, env=None, log=print):
        """*projects*: ``{installation: compose project}``; *env*: the environment podman needs."""
        self.port = port
        self.projects = dict(projects)
        self.env = dict(os.environ, **(env or {}))
        self.log = log
        self.lock = threading.Lock()
        self.listeners = {}   # (installation, netns inode) -> listening socket
        self.open = {}        # installation -> set of connected sockets
        self.cut_off = set()
        self.stopped = threading.Event()
        self.accepted = dict((name, 0) for name in projects)
        self.refused = dict((name, 0) for name in projects)

    # ------------------------------------------------------------------ namespaces
    def namespaces(self, installation):
        """``{netns inode: /proc/PID/ns/net}`` of the project's running containers."""
        label = "label=io.podman.compose.project=%s" % self.projects[installation]
        proc = subprocess.run(["podman", "ps", "--filter", label, "--format", "json"], env=self.env,
                              capture_output=True, text=True, timeout=60, check=False)
        found = {}
        try:
            containers = json.loads(proc.stdout or "[]")
        except ValueError:
            return found
        for container in containers:
            pid = container.get("Pid") or 0
            path = "/proc/%d/ns/net" % pid
            try:
                found.setdefault(os.stat(path).st_ino, path)
            except OSError:
                continue  # it just stopped
        return found

    def refresh(self):
        """Listen in every namespace that appeared; close the listeners of namespaces that are gone."""
        for installation in self.projects:
            current = self.namespaces(installation)
            for inode, path in current.items():
                if (installation, inode) in self.listeners:
                    continue
                try:
                    sock = _listen_in(path, self.port)
                except OSError as exc:
                    self.log("bridge %s: cannot listen in %s: %s" % (installation, path, exc))
                    continue
                with self.lock:
                    self.listeners[(installation, inode)] = sock
                threading.Thread(target=self._accept, args=(installation, sock), daemon=True).start()
            for key in [k for k in self.listeners if k[0] == installation and k[1] not in current]:
                with self.lock:
                    sock = self.listeners.pop(key)
                sock.close()

    def keep(self, interval=1.0):
        """Refresh every *interval* seconds in a thread until :meth:`stop`."""
        def loop():
            while not self.stopped.wait(interval):
                try:
                    self.refresh()
                except Exception as exc:  # pylint: disable=broad-except
                    self.log("bridge refresh failed: %s" % exc)
        self.refresh()
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self):
        self.stopped.set()
        with self.lock:
            for sock in self.listeners.values():
                sock.close()
            self.listeners.clear()
            for conns in self.open.values():
                for sock in conns:
                    sock.close()

    # ------------------------------------------------------------------ partitions
    def cut(self, installation):
        with self.lock:
            self.cut_off.add(installation)
            conns = list(self.open.get(installation, ()))
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.log("bridge: %s cut off from the authority" % installation)

    def heal(self, installation):
        with self.lock:
            self.cut_off.discard(installation)
        self.log("bridge: %s reaches the authority again" % installation)

    def is_ready(self, installation):
        with self.lock:
            return any(k[0] == installation for k in self.listeners)

    # ------------------------------------------------------------------ connections
    def _accept(self, installation, listener):
        while not self.stopped.is_set():
            try:
                client, _addr = listener.accept()
            except OSError:
                return  # closed
            with self.lock:
                cut = installation in self.cut_off
            if cut:
                self.refused[installation] += 1
                client.close()
                continue
            self.accepted[installation] += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.setdefault(installation, set()).update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._forward, args=(installation, source, target), daemon=True).start()

    def _forward(self, installation, source, target):
        _pump(source, target)
        with self.lock:
            self.open.get(installation, set()).discard(source)
        source.close()


def wait_ready(bridge, installations, timeout=120):
    """Wait (bounded) until the bridge listens in a namespace of every installation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(bridge.is_ready(name) for name in installations):
            return True
        time.sleep(1)
    return False

"""Shared test helpers: the guard's delivered layout and a placement map server on 127.0.0.1.

Used by the guard's unit tests (.venv) and the real-Airflow tests (.venv-airflow).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEMENT_ROLE = os.path.join(REPO, "roles", "airflow_placement")


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port, proc, what, timeout=90):
    """Wait (bounded) until *proc* listens on 127.0.0.1:*port*; raise if it ends or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("%s ended (rc %s) before it listened on %d" % (what, proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("%s did not listen on 127.0.0.1:%d within %d s" % (what, port, timeout))


def stop_process(proc, timeout=20):
    """Terminate *proc*, kill it when it does not end within *timeout* seconds.

    A process started with ``start_new_session=True`` leads its own process group: the whole group
    is signalled, so the children it leaves behind (Airflow's scheduler leaves its log server and
    executor workers running when it ends) end with it.
    """
    try:
        group = os.getpgid(proc.pid) == proc.pid
    except OSError:
        group = False

    def signal_all(sig):
        try:
            if group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    signal_all(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_all(signal.SIGKILL)
        proc.wait(timeout=timeout)
    if group:
        signal_all(signal.SIGKILL)  # whatever of the group outlived its leader


class SetUpOnce(object):
    """A fleet set up once per test module (and xdist worker), handed to each test as it was then.

    ``build(root)`` sets the fleet up in *root* (a ``site.yml`` run, ~20 s); :meth:`fresh` makes
    *root* an exact copy of that state again (files, modes and times), at the same path, since the
    fleet's files name their own paths. A worker runs its tests one after the other, so no two
    tests share *root* at once.
    """

    def __init__(self, tmp_path_factory, name, build):
        self.root = str(tmp_path_factory.mktemp(name))
        self.golden = self.root + ".set-up"
        self.value = build(self.root)
        shutil.copytree(self.root, self.golden, symlinks=True)

    def fresh(self):
        shutil.rmtree(self.root)
        shutil.copytree(self.golden, self.root, symlinks=True)
        return self.value


def systemd_unit(path):
    """A systemd unit's ``Environment=`` values and command lines, for running what it runs where there is no
    systemd: ``(env, {"ExecStartPre": [argv, ...], "ExecStart": [argv, ...], ...})``, each in the unit's order."""
    env, commands = {}, {}
    with open(path) as handle:
        for line in handle.read().splitlines():
            key, sep, value = line.partition("=")
            if not sep:
                continue
            if key == "Environment":
                name, _sep, setting = value.partition("=")
                env[name] = setting
            elif key.startswith("Exec"):
                commands.setdefault(key, []).append(shlex.split(value))
    return env, commands


def guard_files():
    """The guard's files, name -> source path: the airflow_placement role's own list."""
    import yaml

    with open(os.path.join(PLACEMENT_ROLE, "vars", "main.yml")) as handle:
        files = yaml.safe_load(handle)["_airflow_placement_guard_files"]
    return dict((name, os.path.normpath(os.path.join(PLACEMENT_ROLE, source))) for name, source in files.items())


def build_guard_dir(dest):
    """Lay the guard out as the airflow_placement role does."""
    os.makedirs(dest, exist_ok=True)
    for name, source in guard_files().items():
        shutil.copyfile(source, os.path.join(dest, name))
    return dest


def make_tls_cert(directory):
    """A self-signed certificate for 127.0.0.1; returns (cert, key). The cert is its own CA."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler for test servers: no access log, JSON answers and bodies made easy."""

    def log_message(self, *args):  # keep test output quiet
        return

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class LocalHTTPServer(object):
    """A threaded HTTP(S) server on 127.0.0.1 with an ephemeral port, for one test.

    ``base_url`` is where it listens; ``stop()`` (or leaving the ``with`` block) closes the listening
    socket, so later requests are refused like those to an unreachable host.
    """

    def __init__(self, handler, tls=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.base_url = "%s://127.0.0.1:%d" % (scheme, self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class MapServer(LocalHTTPServer):
    """Serves one placement map at /placement.yml with ETag and Last-Modified, counting requests.

    ``body`` can be changed at any time; ``status`` forces an error answer; ``stop()`` closes the
    listening socket (so later requests are refused, like an unreachable Git host).
    """

    def __init__(self, body="", tls=None):
        self.body = body
        self.status = None
        self.requests = 0
        self.not_modified = 0
        self.headers_seen = []
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                with server._lock:
                    server.requests += 1
                    server.headers_seen.append(dict(self.headers))
                    body, status = server.body.encode("utf-8"), server.status
                if self.path != "/placement.yml":
                    self.send_error(404)
                    return
                if status:
                    self.send_error(status)
                    return
                etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
                if self.headers.get("If-None-Match") == etag:
                    with server._lock:
                        server.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", email.utils.formatdate(usegmt=True))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler, tls)
        self.url = self.base_url + "/placement.yml"

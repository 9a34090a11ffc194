"""A minimal Kubernetes API on 127.0.0.1 that stores Secrets, for testing the role's kubernetes target.

No cluster can run on the build machines, so this serves exactly what kubernetes.core's k8s_info
and k8s (server-side apply) use for v1 Secrets: discovery (/version, /api, /apis, /api/v1), GET of
one Secret, and PATCH with ``application/apply-patch+yaml`` (including ``dryRun=All`` for check
mode). It keeps every request so tests can check what was sent.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

_DISCOVERY = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
}


class FakeKube(object):
    def __init__(self):
        self.secrets = {}  # (namespace, name) -> object
        self.requests = []
        self._lock = threading.Lock()
        self._version = 100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _secret_path(self, path):
                parts = path.strip("/").split("/")
                if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    return parts[3], parts[5]
                return None

            def do_GET(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                api.record("GET", url, self.headers, None)
                if url.path in _DISCOVERY:
                    self._send(200, _DISCOVERY[url.path])
                    return
                key = self._secret_path(url.path)
                with api._lock:
                    found = copy.deepcopy(api.secrets.get(key)) if key else None
                if found is None:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                     "code": 404, "message": "not found"})
                else:
                    self._send(200, found)

            def do_PATCH(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                applied = yaml.safe_load(body)
                api.record("PATCH", url, self.headers, applied)
                key = self._secret_path(url.path)
                if key is None or self.headers.get("Content-Type") != "application/apply-patch+yaml":
                    self._send(415, {"kind": "Status", "code": 415, "message": "only server-side apply of Secrets"})
                    return
                dry_run = parse_qs(url.query).get("dryRun") == ["All"]
                code, result = api.apply(key, applied, dry_run)
                self._send(code, result)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def record(self, method, url, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query),
                                  "content_type": headers.get("Content-Type"), "body": body})

    def apply(self, key, applied, dry_run):
        """Server-side apply by a single field manager: the applied fields replace the managed ones."""
        with self._lock:
            existing = self.secrets.get(key)
            result = copy.deepcopy(applied)
            result.setdefault("type", "Opaque")
            metadata = result.setdefault("metadata", {})
            if existing:
                for field in ("uid", "creationTimestamp", "resourceVersion"):
                    metadata[field] = existing["metadata"][field]
                if result != existing:
                    self._version += 1
                    metadata["resourceVersion"] = str(self._version)
            else:
                self._version += 1
                metadata.update(uid=str(uuid.uuid4()), creationTimestamp="2026-11-21T00:00:00Z",
                                resourceVersion=str(self._version))
            if not dry_run:
                self.secrets[key] = copy.deepcopy(result)
            return (200 if existing else 201), result

    def kubeconfig(self):
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        })

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

"""A minimal Kubernetes API on 127.0.0.1 that stores Secrets, for testing the role's kubernetes target.

No cluster can run on the build machines, so this serves exactly what kubernetes.core's k8s_info
and k8s (server-side apply) use for v1 Secrets: discovery (/version, /api, /apis, /api/v1), GET of
one Secret, and PATCH with ``application/apply-patch+yaml`` (including ``dryRun=All`` for check
mode). It keeps every request so tests can check what was sent.
"""

from __future__ import annotations

import copy
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import yaml

from failback_testlib import LocalHTTPServer, QuietHandler

_DISCOVERY = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
}


class FakeKube(LocalHTTPServer):
    def __init__(self):
        self.secrets = {}  # (namespace, name) -> object
        self.requests = []
        self._lock = threading.Lock()
        self._version = 100
        api = self

        class Handler(QuietHandler):

            def _secret_path(self, path):
                parts = path.strip("/").split("/")
                if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "secrets":
                    return parts[3], parts[5]
                return None

            def do_GET(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                api.record("GET", url, self.headers, None)
                if url.path in _DISCOVERY:
                    self.send_json(200, _DISCOVERY[url.path])
                    return
                key = self._secret_path(url.path)
                with api._lock:
                    found = copy.deepcopy(api.secrets.get(key)) if key else None
                if found is None:
                    self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                                         "code": 404, "message": "not found"})
                else:
                    self.send_json(200, found)

            def do_PATCH(self):  # noqa: N802 (http.server API)
                url = urlsplit(self.path)
                body = self.read_body()
                applied = yaml.safe_load(body)
                api.record("PATCH", url, self.headers, applied)
                key = self._secret_path(url.path)
                if key is None or self.headers.get("Content-Type") != "application/apply-patch+yaml":
                    self.send_json(415, {"kind": "Status", "code": 415, "message": "only server-side apply of Secrets"})
                    return
                dry_run = parse_qs(url.query).get("dryRun") == ["All"]
                code, result = api.apply(key, applied, dry_run)
                self.send_json(code, result)

        super().__init__(Handler)
        self.url = self.base_url

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

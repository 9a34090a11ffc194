"""A minimal Kubernetes API on 127.0.0.1, for testing the roles' kubernetes targets.

No cluster can run on the build machines, so this serves what kubernetes.core's k8s_info and k8s
use for v1 Secrets, ConfigMaps and Namespaces: discovery (/version, /api, /apis, /api/v1), GET of
one object or a list, POST (409 when it exists), PUT with optimistic concurrency (409 when the
body's resourceVersion is not the stored one, as the API server does), PATCH as server-side
apply (``application/apply-patch+yaml``, including ``dryRun=All`` for check mode) or as a merge
patch, and DELETE. It keeps every request so tests can check what was sent; ``before_get`` lets a
test change an object right after a client read it (a concurrent writer).

batch/v1 Jobs are kept too (POST, GET, DELETE; no controller runs them): ``on_job`` is called with
each Job created, and ``finish_job`` completes or fails it with a pod whose log k8s_log reads
(pods are listed by the Job's selector, their log served as text).

Every request must carry the kubeconfig's token (``Bearer not-a-secret``), else 401, as a real API
server answers an unauthenticated client. The Service proxy
(``/api/v1/namespaces/NS/services/[SCHEME:]NAME:PORT/proxy/PATH``) forwards to the URL a test
gave with ``serve(namespace, service, url)`` - a real Airflow on 127.0.0.1 - without the
Authorization header, which the API server keeps for itself.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import yaml

from failback_testlib import LocalHTTPServer, QuietHandler

_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}
#: Kinds kept as plain objects (apply, get, list, delete), for the installation roles: (group/version, plural) -> kind.
_GENERIC = {
    ("v1", "services"): "Service",
    ("v1", "serviceaccounts"): "ServiceAccount",
    ("v1", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("v1", "events"): "Event",
    ("apps/v1", "deployments"): "Deployment",
    ("apps/v1", "statefulsets"): "StatefulSet",
    ("rbac.authorization.k8s.io/v1", "roles"): "Role",
    ("rbac.authorization.k8s.io/v1", "rolebindings"): "RoleBinding",
}
_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


def _resource(plural, kind, verbs=_VERBS):
    return {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind, "verbs": verbs}


_DISCOVERY = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": group, "versions": [{"groupVersion": group + "/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": group + "/v1", "version": "v1"}}
        for group in ("batch", "apps", "rbac.authorization.k8s.io")]},
    "/apis/apps/v1": {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
        _resource("deployments", "Deployment"), _resource("statefulsets", "StatefulSet"),
        {"name": "deployments/scale", "singularName": "", "namespaced": True, "group": "autoscaling", "version": "v1",
         "kind": "Scale", "verbs": ["get", "patch", "update"]}]},
    "/apis/rbac.authorization.k8s.io/v1": {"kind": "APIResourceList", "groupVersion": "rbac.authorization.k8s.io/v1",
                                           "resources": [_resource("roles", "Role"), _resource("rolebindings", "RoleBinding")]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]} for plural, kind in _KINDS.items()] + [
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list", "delete"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
        {"name": "services/proxy", "singularName": "", "namespaced": True, "kind": "ServiceProxyOptions",
         "verbs": ["create", "delete", "get", "patch", "update"]}]
        + [_resource(plural, kind) for (gv, plural), kind in sorted(_GENERIC.items()) if gv == "v1"]},
    "/apis/batch/v1": {"kind": "APIResourceList", "groupVersion": "batch/v1", "resources": [
        {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
}


def _status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
                  "message": message}


def _selected(obj, query):
    """Whether *obj* matches the labelSelector (k=v, k!=v, k) and fieldSelector (metadata.name, status.phase) of *query*."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in ",".join(query.get("labelSelector", [])).split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    for term in ",".join(query.get("fieldSelector", [])).split(","):
        if "=" not in term:
            continue
        field, value = term.split("=", 1)
        where = obj
        for part in field.split("."):
            where = (where or {}).get(part) if isinstance(where, dict) else None
        if (where or "") != value.lstrip("="):
            return False
    return True


def _merge(base, patch):
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


class FakeKube(LocalHTTPServer):
    def __init__(self, namespaces=()):
        self.objects = {}  # (plural, namespace, name) -> object
        self.namespaces = set(namespaces)
        self.namespace_objects = {}  # name -> Namespace object (made when first read, for those given above)
        self.requests = []
        self.before_get = None  # callable(key) run after a GET of one object was answered
        self.on_job = None  # callable(job) run (in its own thread) after a Job was created
        self.on_scale = None  # callable(namespace, name, replicas, object) after a Deployment's replicas changed
        self.on_pod_deleted = None  # callable(namespace, name, pod) after a pod was deleted
        self.on_write = None  # callable(plural, namespace, name, object or None) after a Secret or ConfigMap changed
        self.pods = {}  # (namespace, name) -> {"labels": ..., "log": ..., "phase", "annotations", "owner"}
        self.scales = {}  # (namespace, Deployment or StatefulSet) -> replicas the controller last saw
        self._lock = threading.Lock()
        self._version = 100
        self.token = "not-a-secret"
        self.proxies = {}  # (namespace, service) -> base URL of what the Service stands for
        api = self

        class Handler(QuietHandler):
            def _answer(self, method):
                url = urlsplit(self.path)
                body = self.read_body() if method in ("POST", "PUT", "PATCH") else b""
                if self.headers.get("Authorization") != "Bearer " + api.token:
                    self.send_json(*_status(401, "Unauthorized", "Unauthorized"))
                    return
                proxied = api.proxy_target(url)
                if proxied is not None:
                    api.record(method, url, self.headers, None)
                    if proxied.startswith("missing:"):
                        self.send_json(*_status(404, "NotFound", 'services "%s" not found' % proxied[len("missing:"):]))
                    else:
                        self.forward(method, proxied, body)
                    return
                content_type = self.headers.get("Content-Type")
                parsed = (yaml.safe_load(body) if content_type == "application/apply-patch+yaml"
                          else json.loads(body)) if body else None
                api.record(method, url, self.headers, parsed)
                if method == "GET" and url.path in _DISCOVERY:
                    self.send_json(200, _DISCOVERY[url.path])
                    return
                generic = api.handle_generic(method, url, content_type, parsed)
                if generic is not None:
                    self.send_json(*generic)
                    return
                batch = api.handle_batch(method, url, parsed)
                if batch is not None and isinstance(batch[1], str):  # a pod's log
                    data = batch[1].encode()
                    self.send_response(batch[0])
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                code, result = batch if batch is not None else api.handle(method, url, content_type, parsed)
                self.send_json(code, result)
                if method == "GET" and code == 200 and api.before_get is not None and result.get("kind") != "List":
                    api.before_get(api.key_of(url.path))

            def forward(self, method, target, body):
                headers = dict((k, v) for k, v in self.headers.items()
                               if k.lower() not in ("authorization", "host", "content-length", "connection"))
                request = urllib.request.Request(target, data=body or None, headers=headers, method=method)
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        code, data, kind = response.status, response.read(), response.headers.get("Content-Type")
                except urllib.error.HTTPError as exc:
                    code, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
                except OSError as exc:  # the Service has no ready endpoint
                    self.send_json(*_status(503, "ServiceUnavailable", "no endpoints available for service: %s" % exc))
                    return
                self.send_response(code)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server API)
                self._answer("GET")

            def do_POST(self):  # noqa: N802
                self._answer("POST")

            def do_PUT(self):  # noqa: N802
                self._answer("PUT")

            def do_PATCH(self):  # noqa: N802
                self._answer("PATCH")

            def do_DELETE(self):  # noqa: N802
                self._answer("DELETE")

        super().__init__(Handler)
        self.url = self.base_url

    def _written(self, key):
        """A Secret or ConfigMap was stored (or deleted): tell ``on_write`` (the kubelet projects volumes)."""
        if self.on_write is not None:
            self.on_write(key[0], key[1], key[2], copy.deepcopy(self.objects.get(key)))

    def serve(self, namespace, service, url):
        """Let the Service *service* of *namespace* stand for *url* (its proxy forwards there)."""
        self.proxies[(namespace, service)] = url.rstrip("/")

    def proxy_target(self, url):
        """The URL a Service proxy path forwards to ("missing:NAME" for a Service nobody serves), or None for any
        other path."""
        parts = url.path.split("/")
        # ['', 'api', 'v1', 'namespaces', NS, 'services', '[scheme:]name:port', 'proxy', ...]
        if len(parts) < 8 or parts[1:4] != ["api", "v1", "namespaces"] or parts[5] != "services" or parts[7] != "proxy":
            return None
        fields = parts[6].split(":")
        name = fields[1] if len(fields) == 3 else fields[0]
        base = self.proxies.get((parts[4], name))
        if base is None:
            return "missing:" + name
        return base + "/" + "/".join(parts[8:]) + ("?" + url.query if url.query else "")

    @property
    def secrets(self):
        """Secrets by (namespace, name), as the credentials tests know them."""
        return dict(((ns, name), obj) for (plural, ns, name), obj in self.objects.items() if plural == "secrets")

    def configmap(self, namespace, name):
        return self.objects.get(("configmaps", namespace, name))

    @staticmethod
    def key_of(path):
        parts = path.strip("/").split("/")
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] in _KINDS:
            return parts[4], parts[3], parts[5]
        return None

    def record(self, method, url, headers, body):
        with self._lock:
            self.requests.append({"method": method, "path": url.path, "query": parse_qs(url.query),
                                  "content_type": headers.get("Content-Type"), "body": body})

    def bump(self, key):
        """A concurrent writer: the object gets a new resourceVersion."""
        with self._lock:
            self._version += 1
            self.objects[key]["metadata"]["resourceVersion"] = str(self._version)

    def _stamp(self, obj, existing=None):
        metadata = obj.setdefault("metadata", {})
        self._version += 1
        metadata["resourceVersion"] = str(self._version)
        metadata["uid"] = existing["metadata"]["uid"] if existing else str(uuid.uuid4())
        metadata["creationTimestamp"] = existing["metadata"]["creationTimestamp"] if existing else "2026-11-21T00:00:00Z"
        return obj

    def handle(self, method, url, content_type, body):
        parts = url.path.strip("/").split("/")
        dry_run = parse_qs(url.query).get("dryRun") == ["All"]
        with self._lock:
            if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4 and method == "GET":
                if parts[3] in self.namespaces:
                    return 200, {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": parts[3]}}
                return _status(404, "NotFound", 'namespaces "%s" not found' % parts[3])
            if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] in _KINDS:
                plural, namespace = parts[4], parts[3]
                if method == "GET":
                    items = [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items()) if (p, ns) == (plural, namespace)]
                    return 200, {"kind": _KINDS[plural] + "List", "apiVersion": "v1", "items": items,
                                 "metadata": {"resourceVersion": str(self._version)}}
                if method == "POST":
                    key = (plural, namespace, body["metadata"]["name"])
                    if namespace not in self.namespaces:
                        return _status(404, "NotFound", 'namespaces "%s" not found' % namespace)
                    if key in self.objects:
                        return _status(409, "AlreadyExists", '%s "%s" already exists' % (plural, key[2]))
                    created = self._stamp(copy.deepcopy(body))
                    if not dry_run:
                        self.objects[key] = created
                        self._written(key)
                    return 201, copy.deepcopy(created)
            key = self.key_of(url.path)
            if key is None:
                return _status(404, "NotFound", "no such path %s" % url.path)
            existing = self.objects.get(key)
            if method == "GET":
                return (200, copy.deepcopy(existing)) if existing else _status(404, "NotFound", '%s "%s" not found' % (key[0], key[2]))
            if method == "DELETE":
                if not existing:
                    return _status(404, "NotFound", '%s "%s" not found' % (key[0], key[2]))
                if not dry_run:
                    del self.objects[key]
                    self._written(key)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            if method == "PUT":
                if not existing:
                    return _status(404, "NotFound", '%s "%s" not found' % (key[0], key[2]))
                wanted = (body.get("metadata") or {}).get("resourceVersion")
                if wanted and wanted != existing["metadata"]["resourceVersion"]:
                    return _status(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                                   "modified; please apply your changes to the latest version and try again" % (key[0], key[2]))
                replaced = self._stamp(copy.deepcopy(body), existing)
                if not dry_run:
                    self.objects[key] = replaced
                    self._written(key)
                return 200, copy.deepcopy(replaced)
            if method == "PATCH" and content_type == "application/apply-patch+yaml":
                result = copy.deepcopy(body)
                if key[0] == "secrets":
                    result.setdefault("type", "Opaque")
                if key[1] not in self.namespaces and key[0] != "secrets":
                    return _status(404, "NotFound", 'namespaces "%s" not found' % key[1])
                if existing:
                    result["metadata"].update(dict((f, existing["metadata"][f]) for f in
                                                   ("uid", "creationTimestamp", "resourceVersion")))
                    if result != existing:
                        self._version += 1
                        result["metadata"]["resourceVersion"] = str(self._version)
                else:
                    self._stamp(result)
                if not dry_run:
                    self.objects[key] = copy.deepcopy(result)
                    self._written(key)
                return (200 if existing else 201), result
            if method == "PATCH":
                if not existing:
                    return _status(404, "NotFound", '%s "%s" not found' % (key[0], key[2]))
                patched = _merge(copy.deepcopy(existing), body or {})
                if patched != existing:
                    self._stamp(patched, existing)
                if not dry_run:
                    self.objects[key] = patched
                    self._written(key)
                return 200, copy.deepcopy(patched)
            return _status(405, "MethodNotAllowed", method)

    @staticmethod
    def _pod(namespace, name, pod):
        metadata = {"name": name, "namespace": namespace, "labels": pod["labels"], "annotations": pod.get("annotations", {})}
        containers = [c.get("name", "main") for c in (pod.get("spec") or {}).get("containers") or [{"name": "main"}]]
        ready = pod.get("phase", "Running") == "Running"
        return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": pod.get("spec", {}),
                "status": {"phase": pod.get("phase", "Running"), "containerStatuses": [
                    {"name": c, "ready": ready, "restartCount": 0} for c in containers]}}

    # ---------------------------------------------------------------- the other kinds, and their controllers

    @staticmethod
    def _generic_key(path):
        """``(group/version, plural, namespace, name, subresource)`` of a path of the generic kinds, or None."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            gv, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces" and (gv, rest[2]) in _GENERIC:
            return gv, rest[2], rest[1], rest[3] if len(rest) > 3 else None, rest[4] if len(rest) > 4 else None
        if gv == "v1" and rest[:1] == ["namespaces"] and len(rest) <= 2:
            return "v1", "namespaces", None, rest[1] if len(rest) == 2 else None, None
        return None

    def handle_generic(self, method, url, content_type, body):
        """Namespaces and the kinds of _GENERIC: get, list, create, apply, merge patch, delete; Deployment scale."""
        key = self._generic_key(url.path)
        if key is None:
            return None
        gv, plural, namespace, name, sub = key
        query = parse_qs(url.query)
        dry_run = query.get("dryRun") == ["All"]
        kind = "Namespace" if plural == "namespaces" else _GENERIC[(gv, plural)]
        with self._lock:
            if plural == "namespaces":
                return self._namespaces(method, name, body, dry_run)
            if namespace not in self.namespaces:
                return _status(404, "NotFound", 'namespaces "%s" not found' % namespace)
            store = ("%s/%s" % (gv, plural) if gv != "v1" else plural, namespace, name)
            existing = self.objects.get(store) if name else None
            if name is None:
                if method == "GET":
                    items = [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items())
                             if (p, ns) == (store[0], namespace) and _selected(o, query)]
                    return 200, {"kind": kind + "List", "apiVersion": gv, "items": items,
                                 "metadata": {"resourceVersion": str(self._version)}}
                if method == "POST":
                    store = (store[0], namespace, body["metadata"]["name"])
                    if store in self.objects:
                        return _status(409, "AlreadyExists", '%s "%s" already exists' % (plural, store[2]))
                    return 201, self._write(store, None, copy.deepcopy(body), kind, gv, dry_run)
                return _status(405, "MethodNotAllowed", method)
            if sub == "scale" and plural == "deployments":
                if existing is None:
                    return _status(404, "NotFound", 'deployments.apps "%s" not found' % name)
                if method in ("PATCH", "PUT"):
                    wanted = ((body or {}).get("spec") or {}).get("replicas")
                    if wanted is not None and not dry_run:
                        changed = copy.deepcopy(existing)
                        changed["spec"]["replicas"] = int(wanted)
                        self._write(store, existing, changed, kind, gv, dry_run)
                        existing = self.objects[store]
                replicas = existing["spec"].get("replicas", 1)
                return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                             "metadata": {"name": name, "namespace": namespace,
                                          "resourceVersion": existing["metadata"]["resourceVersion"]},
                             "spec": {"replicas": replicas}, "status": {"replicas": existing.get("status", {}).get("replicas", 0)}}
            if sub is not None:
                return _status(404, "NotFound", "no subresource %s of %s" % (sub, plural))
            if method == "GET":
                return (200, copy.deepcopy(existing)) if existing else _status(404, "NotFound", '%s "%s" not found' % (plural, name))
            if method == "DELETE":
                if existing is None:
                    return _status(404, "NotFound", '%s "%s" not found' % (plural, name))
                if not dry_run:
                    del self.objects[store]
                    self.reconcile(store[0], namespace, name, None)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
            if method == "PATCH" and content_type == "application/apply-patch+yaml":
                return (200 if existing else 201), self._write(store, existing, copy.deepcopy(body), kind, gv, dry_run)
            if method == "PATCH":
                if existing is None:
                    return _status(404, "NotFound", '%s "%s" not found' % (plural, name))
                return 200, self._write(store, existing, _merge(copy.deepcopy(existing), body or {}), kind, gv, dry_run)
            if method == "PUT":
                if existing is None:
                    return _status(404, "NotFound", '%s "%s" not found' % (plural, name))
                return 200, self._write(store, existing, copy.deepcopy(body), kind, gv, dry_run)
            return _status(405, "MethodNotAllowed", method)

    def _namespaces(self, method, name, body, dry_run):
        """Namespaces (cluster-scoped): kept in ``namespaces`` (names) and as objects for applies that compare."""
        if name is None and method == "GET":
            return 200, {"kind": "NamespaceList", "apiVersion": "v1",
                         "items": [self._namespace(n) for n in sorted(self.namespaces)]}
        name = name or (body or {}).get("metadata", {}).get("name")
        existing = self._namespace(name) if name in self.namespaces else None
        if method == "GET":
            return (200, existing) if existing else _status(404, "NotFound", 'namespaces "%s" not found' % name)
        if method in ("POST", "PATCH", "PUT"):
            wanted = copy.deepcopy(body or {})
            wanted.update(kind="Namespace", apiVersion="v1", status={"phase": "Active"})
            metadata = wanted.setdefault("metadata", {})
            metadata["name"] = name
            if existing is not None:
                for field in ("uid", "creationTimestamp", "resourceVersion"):
                    metadata[field] = existing["metadata"][field]
                if wanted != existing:
                    self._version += 1
                    metadata["resourceVersion"] = str(self._version)
            else:
                self._stamp(wanted)
            if not dry_run:
                self.namespaces.add(name)
                self.namespace_objects[name] = wanted
            return (200 if existing else 201), copy.deepcopy(wanted)
        if method == "DELETE":
            if existing is None:
                return _status(404, "NotFound", 'namespaces "%s" not found' % name)
            if not dry_run:
                self.namespaces.discard(name)
                self.namespace_objects.pop(name, None)
            return 200, existing
        return _status(405, "MethodNotAllowed", method)

    def _namespace(self, name):
        found = self.namespace_objects.get(name)
        if found is None:
            found = self.namespace_objects[name] = self._stamp(
                {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": name}, "status": {"phase": "Active"}})
        return copy.deepcopy(found)

    def _write(self, store, existing, obj, kind, gv, dry_run):
        """Store *obj* as the new version of *store* (its metadata kept, generation counted), then reconcile."""
        obj.setdefault("apiVersion", gv)
        obj.setdefault("kind", kind)
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("namespace", store[1])
        if existing is not None:
            for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
                if field in existing["metadata"]:
                    metadata[field] = existing["metadata"][field]
            obj.setdefault("status", copy.deepcopy(existing.get("status", {})))
            if obj.get("spec") != existing.get("spec"):
                metadata["generation"] = existing["metadata"].get("generation", 1) + 1
            if obj == existing:
                return copy.deepcopy(existing)
            self._version += 1
            metadata["resourceVersion"] = str(self._version)
        else:
            self._stamp(obj)
            metadata["generation"] = 1
            obj.setdefault("status", {})
        if not dry_run:
            self.objects[store] = obj
            self.reconcile(store[0], store[1], store[2], obj)
        return copy.deepcopy(obj)

    def reconcile(self, plural, namespace, name, obj):
        """What the controllers and the kubelet would do after a write: Deployments and StatefulSets get their
        status and Running pods (``on_scale`` hears of a new replica count). Called under the lock."""
        if plural not in ("apps/v1/deployments", "apps/v1/statefulsets"):
            return
        replicas = 0 if obj is None else int(obj.get("spec", {}).get("replicas", 1))
        template = {} if obj is None else obj.get("spec", {}).get("template", {})
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        wanted = ["%s-%d" % (name, i) for i in range(replicas)] if plural.endswith("statefulsets") else [
            "%s-%s-%d" % (name, str(obj["metadata"]["generation"]).zfill(5), i) for i in range(replicas)]
        for key in [k for k in self.pods if k[0] == namespace and self.pods[k].get("owner") == name and k[1] not in wanted]:
            del self.pods[key]
        for pod in wanted:
            self.pods.setdefault((namespace, pod), {"labels": labels, "owner": name, "phase": "Running",
                                                    "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                                                    "spec": copy.deepcopy(template.get("spec", {}))})
        previous = self.scales.get((namespace, name))
        self.scales[(namespace, name)] = replicas
        # on_scale answers True when it starts something that is ready later (mark_ready), as a
        # readiness probe would say: until then the Deployment has no available replica.
        later = self.on_scale is not None and previous != replicas and bool(self.on_scale(namespace, name, replicas, obj))
        if obj is not None:
            ready = 0 if later else replicas
            obj["status"] = {"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
                             "updatedReplicas": replicas, "readyReplicas": ready, "availableReplicas": ready,
                             "currentReplicas": replicas}

    def mark_ready(self, plural, namespace, name, replicas):
        """The replicas *on_scale* started are ready (if the object still wants that many)."""
        with self._lock:
            obj = self.objects.get((plural, namespace, name))
            if obj is not None and int(obj.get("spec", {}).get("replicas", 1)) == replicas:
                obj["status"].update(readyReplicas=replicas, availableReplicas=replicas)

    def jobs(self, namespace=None):
        """Jobs by name (of *namespace*, or of every namespace)."""
        return dict((name, obj) for (plural, ns, name), obj in self.objects.items()
                    if plural == "jobs" and namespace in (None, ns))

    def finish_job(self, namespace, name, succeeded, log):
        """What the Job controller and the kubelet would do: one pod ran, with *log*; the Job is Complete or Failed."""
        with self._lock:
            job = self.objects[("jobs", namespace, name)]
            selector = job["spec"]["selector"]["matchLabels"]
            self.pods[(namespace, name + "-pod")] = {"labels": dict(selector), "log": log}
            condition = "Complete" if succeeded else "Failed"
            job["status"] = {"conditions": [{"type": condition, "status": "True"}],
                             ("succeeded" if succeeded else "failed"): 1}
            self._version += 1
            job["metadata"]["resourceVersion"] = str(self._version)

    def handle_batch(self, method, url, body):
        """Jobs, and the pods and logs of the Jobs; None for every other path."""
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "pods":
            namespace = parts[3]
            with self._lock:
                if len(parts) == 5 and method == "GET":
                    items = [self._pod(ns, name, pod) for (ns, name), pod in sorted(self.pods.items())
                             if ns == namespace and _selected(self._pod(ns, name, pod), query)]
                    return 200, {"kind": "PodList", "apiVersion": "v1", "items": items, "metadata": {"resourceVersion": "1"}}
                pod = self.pods.get((namespace, parts[5])) if len(parts) >= 6 else None
                if pod is None:
                    return _status(404, "NotFound", 'pods "%s" not found' % "/".join(parts[5:]))
                if len(parts) == 7 and parts[6] == "log" and method == "GET":
                    return 200, pod.get("log", "")
                if method == "DELETE":
                    self.pods.pop((namespace, parts[5]), None)
                    if self.on_pod_deleted is not None:
                        self.on_pod_deleted(namespace, parts[5], pod)
                    return 200, self._pod(namespace, parts[5], pod)
                return 200, self._pod(namespace, parts[5], pod)
        if parts[:4] != ["apis", "batch", "v1", "namespaces"] or len(parts) < 5 or parts[5:6] not in ([], ["jobs"]):
            return None
        dry_run = query.get("dryRun") == ["All"]
        namespace = parts[4]
        created = None
        with self._lock:
            applied = method == "PATCH" and len(parts) == 7
            if len(parts) == 6 or (applied and ("jobs", namespace, parts[6]) not in self.objects):
                if method == "GET":
                    items = [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items())
                             if (p, ns) == ("jobs", namespace) and _selected(o, query)]
                    return 200, {"kind": "JobList", "apiVersion": "batch/v1", "items": items, "metadata": {"resourceVersion": "1"}}
                if method != "POST" and not applied:
                    return _status(405, "MethodNotAllowed", method)
                key = ("jobs", namespace, body["metadata"]["name"])
                if namespace not in self.namespaces:
                    return _status(404, "NotFound", 'namespaces "%s" not found' % namespace)
                if key in self.objects:
                    return _status(409, "AlreadyExists", 'jobs.batch "%s" already exists' % key[2])
                job = self._stamp(copy.deepcopy(body))
                job.setdefault("apiVersion", "batch/v1")
                job.setdefault("kind", "Job")
                uid = job["metadata"]["uid"]
                job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
                job["spec"]["template"].setdefault("metadata", {}).setdefault("labels", {})["batch.kubernetes.io/controller-uid"] = uid
                job["status"] = {}
                if dry_run:
                    return 201, job
                self.objects[key] = job
                created = copy.deepcopy(job)
            else:
                key = ("jobs", namespace, parts[6])
                existing = self.objects.get(key)
                if existing is None:
                    return _status(404, "NotFound", 'jobs.batch "%s" not found' % key[2])
                if method in ("GET", "PATCH"):  # a Job's template cannot change: applying it again changes nothing
                    return 200, copy.deepcopy(existing)
                if method != "DELETE":
                    return _status(405, "MethodNotAllowed", method)
                if not dry_run:
                    del self.objects[key]
                    self.pods.pop((namespace, key[2] + "-pod"), None)
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        if self.on_job is not None:
            threading.Thread(target=self.on_job, args=(created,), daemon=True).start()
        return 201, created

    def kubeconfig(self):
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}],
        })

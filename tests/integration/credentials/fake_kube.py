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
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import yaml

from failback_testlib import LocalHTTPServer, QuietHandler

_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}
_DISCOVERY = {
    "/version": {"major": "1", "minor": "30", "gitVersion": "v1.30.0", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]} for plural, kind in _KINDS.items()] + [
        {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
        {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}]},
    "/apis/batch/v1": {"kind": "APIResourceList", "groupVersion": "batch/v1", "resources": [
        {"name": "jobs", "singularName": "job", "namespaced": True, "kind": "Job",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
}


def _status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code,
                  "message": message}


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
        self.requests = []
        self.before_get = None  # callable(key) run after a GET of one object was answered
        self.on_job = None  # callable(job) run (in its own thread) after a Job was created
        self.pods = {}  # (namespace, name) -> {"labels": ..., "log": ...}
        self._lock = threading.Lock()
        self._version = 100
        api = self

        class Handler(QuietHandler):
            def _answer(self, method):
                url = urlsplit(self.path)
                body = self.read_body() if method in ("POST", "PUT", "PATCH") else b""
                content_type = self.headers.get("Content-Type")
                parsed = (yaml.safe_load(body) if content_type == "application/apply-patch+yaml"
                          else json.loads(body)) if body else None
                api.record(method, url, self.headers, parsed)
                if method == "GET" and url.path in _DISCOVERY:
                    self.send_json(200, _DISCOVERY[url.path])
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
                return (200 if existing else 201), result
            if method == "PATCH":
                if not existing:
                    return _status(404, "NotFound", '%s "%s" not found' % (key[0], key[2]))
                patched = _merge(copy.deepcopy(existing), body or {})
                if patched != existing:
                    self._stamp(patched, existing)
                if not dry_run:
                    self.objects[key] = patched
                return 200, copy.deepcopy(patched)
            return _status(405, "MethodNotAllowed", method)

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
                    wanted = dict(term.split("=", 1) for term in ",".join(query.get("labelSelector", [])).split(",") if term)
                    items = [{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": ns, "labels": pod["labels"]}}
                             for (ns, name), pod in sorted(self.pods.items())
                             if ns == namespace and all(pod["labels"].get(k) == v for k, v in wanted.items())]
                    return 200, {"kind": "PodList", "apiVersion": "v1", "items": items, "metadata": {"resourceVersion": "1"}}
                pod = self.pods.get((namespace, parts[5])) if len(parts) >= 6 else None
                if pod is None:
                    return _status(404, "NotFound", 'pods "%s" not found' % "/".join(parts[5:]))
                if len(parts) == 7 and parts[6] == "log" and method == "GET":
                    return 200, pod["log"]
                metadata = {"name": parts[5], "namespace": namespace, "labels": pod["labels"]}
                return 200, {"kind": "Pod", "apiVersion": "v1", "metadata": metadata}
        if parts[:4] != ["apis", "batch", "v1", "namespaces"] or len(parts) < 5 or parts[5:6] not in ([], ["jobs"]):
            return None
        dry_run = query.get("dryRun") == ["All"]
        namespace = parts[4]
        created = None
        with self._lock:
            if len(parts) == 6:
                if method == "GET":
                    items = [copy.deepcopy(o) for (p, ns, _n), o in sorted(self.objects.items()) if (p, ns) == ("jobs", namespace)]
                    return 200, {"kind": "JobList", "apiVersion": "batch/v1", "items": items, "metadata": {"resourceVersion": "1"}}
                if method != "POST":
                    return _status(405, "MethodNotAllowed", method)
                key = ("jobs", namespace, body["metadata"]["name"])
                if namespace not in self.namespaces:
                    return _status(404, "NotFound", 'namespaces "%s" not found' % namespace)
                if key in self.objects:
                    return _status(409, "AlreadyExists", 'jobs.batch "%s" already exists' % key[2])
                job = self._stamp(copy.deepcopy(body))
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
                if method == "GET":
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

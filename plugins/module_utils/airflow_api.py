# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Airflow 3 REST API rules used by the airflow_health and airflow_dags modules.

Pure functions plus a tiny client that takes the HTTP transport as a function, so everything
here is testable without a server and without Ansible:

* :func:`health_problems` reads ``/api/v2/monitor/health``, which answers HTTP 200 even when a
  component is unhealthy: the JSON body is what counts.
* :func:`select_moved` decides which DAGs an installation lost or gained between two placement
  maps, including DAGs owned only through the map's default owner.
* :func:`plan_pause` says which DAGs need a PATCH to reach the wanted paused state.
"""

from __future__ import annotations

import json

try:
    from urllib.parse import quote, urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported, this keeps sanity's compile test quiet
    from urllib import quote, urlencode  # type: ignore[attr-defined,no-redef]

from ansible_collections.failback.airflow.plugins.module_utils import placement
from ansible_collections.failback.airflow.plugins.module_utils.airflow_kube import KUBERNETES_OPTIONS

#: Components of /api/v2/monitor/health and the compose service that runs each.
HEALTH_COMPONENTS = {
    "metadatabase": "postgres",
    "scheduler": "airflow-scheduler",
    "dag_processor": "airflow-dag-processor",
    "triggerer": "airflow-triggerer",
}

PAGE_SIZE = 100

#: Options of every module that talks to the API (documented in the failback.airflow.api doc fragment).
CONNECTION_ARGUMENT_SPEC = dict(
    url=dict(type="str"),
    kubernetes=dict(type="dict", options=KUBERNETES_OPTIONS),
    request_timeout=dict(type="int", default=10),
    validate_certs=dict(type="bool", default=True),
)
CONNECTION_MUTUALLY_EXCLUSIVE = [("url", "kubernetes")]
CONNECTION_REQUIRED_ONE_OF = [("url", "kubernetes")]


#: Options of the modules that log in (documented in the failback.airflow.api.login doc fragment).
LOGIN_ARGUMENT_SPEC = dict(
    username=dict(type="str", required=True),
    password=dict(type="str", no_log=True),
    password_file=dict(type="path", no_log=False),
)
LOGIN_MUTUALLY_EXCLUSIVE = [("password", "password_file")]
#: The password may also come from kubernetes.password_secret, so Client.login_with checks that one is given.
LOGIN_REQUIRED_ONE_OF = []


def module_kwargs(argument_spec, login=True, mutually_exclusive=(), required_one_of=(), **extra):
    """AnsibleModule keywords for a module that talks to the API: its own options plus the connection
    options (and the login options with *login*), with the rules that tie them together."""
    spec = dict(CONNECTION_ARGUMENT_SPEC, **(LOGIN_ARGUMENT_SPEC if login else {}))
    spec.update(argument_spec)
    return dict(argument_spec=spec,
                mutually_exclusive=list(mutually_exclusive) + CONNECTION_MUTUALLY_EXCLUSIVE
                + (LOGIN_MUTUALLY_EXCLUSIVE if login else []),
                required_one_of=list(required_one_of) + CONNECTION_REQUIRED_ONE_OF + (LOGIN_REQUIRED_ONE_OF if login else []),
                supports_check_mode=True, **extra)


def where(params):
    """The installation's API for messages: its URL, or the Service behind the Kubernetes API."""
    kube = params.get("kubernetes")
    if kube:
        return "Airflow of Service %s:%s in namespace %s (through the Kubernetes API)" % (
            kube["service"], kube.get("port") or "http", kube["namespace"])
    return "Airflow at %s" % params.get("url")


class AirflowApiError(RuntimeError):
    """The API answered something we cannot use; the message says what and where."""


def health_problems(health, components):
    """Return ``{component: reason}`` for every wanted component that is not healthy.

    *health* is the decoded JSON of ``/api/v2/monitor/health``; *components* the names to check
    (``metadatabase``, ``scheduler``, ``dag_processor``, ``triggerer``).
    """
    if not isinstance(health, dict):
        return dict((name, "the health endpoint did not answer a JSON object") for name in components)
    problems = {}
    for name in components:
        entry = health.get(name)
        if not isinstance(entry, dict):
            problems[name] = "not reported by the health endpoint"
            continue
        status = entry.get("status")
        if status != "healthy":
            heartbeat = None
            for key, value in entry.items():
                if key.startswith("latest_") and key.endswith("_heartbeat"):
                    heartbeat = value
            problems[name] = "status %s%s" % (
                status if status is not None else "unknown (never started)",
                ", last heartbeat %s" % heartbeat if heartbeat else "",
            )
    return problems


def _as_map(value, what):
    if isinstance(value, placement.PlacementMap):
        return value
    if isinstance(value, dict):
        return placement.from_data(dict(value), source=what)
    if isinstance(value, (str, bytes)):
        return placement.parse_map(value, source=what)
    raise placement.PlacementError("%s must be a placement map (YAML text or data), got %s" % (what, type(value).__name__))


def select_moved(before, after, installation, dag_ids, direction):
    """DAGs that *installation* lost (``direction='away'``) or gained (``'here'``).

    Candidates are *dag_ids* (the DAGs the installation knows) plus every DAG listed in either
    map, so a listed DAG the installation has not parsed yet is still selected (and reported
    missing by :func:`plan_pause`); see placement.installation_changes.
    """
    if direction not in ("away", "here"):
        raise ValueError("direction must be 'away' or 'here', got %r" % (direction,))
    changes = placement.installation_changes(_as_map(before, "placement map before the failover"),
                                             _as_map(after, "placement map after the failover"), installation, dag_ids)
    return changes["lost" if direction == "away" else "gained"]


def password_from_file(path, username):
    """The password of *username* in a JSON file ``{user: password}`` (the simple auth manager's file)."""
    try:
        with open(path, "r") as handle:
            passwords = json.load(handle)
    except (IOError, OSError) as exc:
        raise AirflowApiError("cannot read the passwords file %s: %s" % (path, getattr(exc, "strerror", exc)))
    except ValueError:
        raise AirflowApiError("the passwords file %s is not JSON" % path)
    if not isinstance(passwords, dict) or not isinstance(passwords.get(username), str):
        raise AirflowApiError("the passwords file %s has no password for user %r" % (path, username))
    return passwords[username]


def plan_pause(current, wanted_paused, dag_ids):
    """Split *dag_ids* into (to_change, unchanged, missing) against *current* ``{dag_id: is_paused}``."""
    to_change, unchanged, missing = [], [], []
    for dag_id in sorted(set(dag_ids)):
        if dag_id not in current:
            missing.append(dag_id)
        elif bool(current[dag_id]) == bool(wanted_paused):
            unchanged.append(dag_id)
        else:
            to_change.append(dag_id)
    return to_change, unchanged, missing


class Client(object):
    """Minimal Airflow 3 REST client.

    *transport(method, url, headers, body, timeout)* returns ``(status, text)`` and raises
    nothing for HTTP errors (the caller's ``open_url`` wrapper turns them into a status).
    """

    def __init__(self, base_url, transport, timeout=10):
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.timeout = timeout
        self.token = None
        #: Send the token as this cookie instead of an Authorization header (through a proxy that
        #: authenticates with that header itself: the Kubernetes API's Service proxy).
        self.token_cookie = None
        #: ``password_source(username)``: where the password comes from when the options give none.
        self.password_source = None

    def _call(self, method, path, body=None, query=None, auth=True, expect=(200,)):
        url = self.base_url + path
        if query:
            url += "?" + urlencode(query, doseq=True)
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth and self.token and self.token_cookie:
            headers["Cookie"] = "%s=%s" % (self.token_cookie, self.token)
        elif auth and self.token:
            headers["Authorization"] = "Bearer " + self.token
        status, text = self.transport(method, url, headers, None if body is None else json.dumps(body), self.timeout)
        if status not in expect:
            raise AirflowApiError("%s %s answered HTTP %s: %s" % (method, path, status, (text or "")[:300]))
        try:
            return json.loads(text) if text else {}
        except ValueError:
            raise AirflowApiError("%s %s did not answer JSON: %s" % (method, path, (text or "")[:300]))

    def health(self):
        return self._call("GET", "/api/v2/monitor/health", auth=False)

    def login_with(self, params):
        """Log in with the module's username and password, password_file or (through the Kubernetes API) the
        password Secret (LOGIN_ARGUMENT_SPEC)."""
        password = params.get("password")
        if password is None and params.get("password_file"):
            password = password_from_file(params["password_file"], params["username"])
        elif password is None and self.password_source is not None:
            password = self.password_source(params["username"])
        elif password is None:
            raise AirflowApiError("give the password of %s: password, password_file or kubernetes.password_secret"
                                  % params["username"])
        return self.login(params["username"], password)

    def login(self, username, password):
        answer = self._call("POST", "/auth/token", {"username": username, "password": password},
                            auth=False, expect=(200, 201))
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token:
            raise AirflowApiError("POST /auth/token answered no access_token")
        self.token = token
        return token

    def dag_entries(self):
        """``{dag_id: entry}``: every DAG the installation knows, as ``GET /api/v2/dags`` lists it
        (``is_paused``, ``bundle_name``, ``bundle_version``, ``relative_fileloc``, ...)."""
        found = {}
        offset = 0
        while True:
            page = self._call("GET", "/api/v2/dags", query={"limit": PAGE_SIZE, "offset": offset})
            entries = page.get("dags") or []
            for dag in entries:
                found[dag["dag_id"]] = dag
            offset += len(entries)
            if not entries or offset >= int(page.get("total_entries") or 0):
                return found

    def dags(self):
        """``{dag_id: is_paused}`` of every DAG the installation knows."""
        return dict((dag_id, bool(dag.get("is_paused"))) for dag_id, dag in self.dag_entries().items())

    def set_paused(self, dag_id, paused):
        answer = self._call("PATCH", "/api/v2/dags/" + quote(dag_id, safe=""), {"is_paused": bool(paused)},
                            query={"update_mask": "is_paused"})
        return bool(answer.get("is_paused"))

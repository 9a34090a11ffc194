# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reach a cluster installation's Airflow REST API through the Kubernetes API's Service proxy.

A cluster's API server is a Service inside the cluster, which the controller does not reach;
the Kubernetes API does, and proxies HTTP to a Service's port at
``<API server>/api/v1/namespaces/<namespace>/services/<scheme>:<service>:<port>/proxy/<path>``.
So every module that talks to Airflow's REST API reaches a cluster's Airflow exactly as a
server's, with the same code: only the base URL and the credentials differ.

* The Kubernetes API authenticates the caller with the kubeconfig's credentials (a bearer token,
  a client certificate or an exec plugin) and does not pass them on; Airflow's own token travels
  as its session cookie (``_token``), which Airflow's REST API accepts as well
  (:data:`AIRFLOW_TOKEN_COOKIE`).
* RBAC: the caller needs the verbs ``get``, ``create`` and ``patch`` on ``services/proxy`` in the
  installation's namespace (GET, POST and PATCH requests), and ``get`` on the Secret that holds
  the admin's password when it is read from there.
* The password never passes through Ansible: :func:`secret_password` reads it from the Secret.

Needs the ``kubernetes`` Python package on the host that runs the module (the controller).
"""

from __future__ import annotations

import base64
import json
import os

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote  # type: ignore[attr-defined,no-redef]

try:
    from kubernetes import client as kube_client
    from kubernetes import config as kube_config

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised only where the package is missing
    kube_client = kube_config = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = _exc

#: Airflow 3 reads its JWT from this cookie when no Authorization header comes with the request.
AIRFLOW_TOKEN_COOKIE = "_token"

#: Suboptions of the modules' ``kubernetes`` option (documented in the failback.airflow.api doc fragment).
KUBERNETES_OPTIONS = dict(
    namespace=dict(type="str", required=True),
    service=dict(type="str", required=True),
    port=dict(type="str", default="http"),
    scheme=dict(type="str", choices=["http", "https"], default="http"),
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    password_secret=dict(type="str", no_log=False),
    password_key=dict(type="str", default="passwords.json", no_log=False),
)


class KubeProxyError(RuntimeError):
    """The Kubernetes API cannot be reached or configured; the message says which setting."""


def _configuration(kube):
    if not HAS_KUBERNETES:
        raise KubeProxyError("the kubernetes Python package is needed to reach a cluster's Airflow: %s"
                             % KUBERNETES_IMPORT_ERROR)
    configuration = kube_client.Configuration()
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not (kube.get("kubeconfig") or kube.get("context"))
    try:
        if in_cluster and not os.environ.get("KUBECONFIG"):
            kube_config.load_incluster_config(client_configuration=configuration)
        else:
            kube_config.load_kube_config(config_file=kube.get("kubeconfig") or None, context=kube.get("context") or None,
                                         client_configuration=configuration)
    # The loaders raise many kinds.
    except Exception as exc:  # pylint: disable=broad-exception-caught
        raise KubeProxyError("cannot load the Kubernetes configuration (kubeconfig %s, context %s): %s"
                             % (kube.get("kubeconfig") or os.environ.get("KUBECONFIG") or "~/.kube/config",
                                kube.get("context") or "current", exc))
    return configuration


def proxy_path(kube):
    """The path of the Service proxy for *kube* (``namespace``, ``service``, ``port``, ``scheme``)."""
    return "/api/v1/namespaces/%s/services/%s:%s:%s/proxy" % (
        quote(kube["namespace"], safe=""), kube.get("scheme") or "http", quote(kube["service"], safe=""),
        quote(str(kube.get("port") or "http"), safe=""))


def endpoint(kube):
    """``{"base_url", "headers", "ca_path", "client_cert", "client_key", "validate_certs", "configuration"}``.

    The base URL is the Service proxy's; *headers* carry the Kubernetes credentials (a bearer
    token, when the kubeconfig has one); the certificate files are the kubeconfig's (files the
    kubernetes package writes for embedded certificates).
    """
    configuration = _configuration(kube)
    headers = {}
    # The client's own rule for its credentials (a token, refreshed by an exec plugin when it expires).
    for setting in configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"].title()] = setting["value"]
    return {
        "base_url": configuration.host.rstrip("/") + proxy_path(kube),
        "headers": headers,
        "ca_path": configuration.ssl_ca_cert,
        "client_cert": configuration.cert_file,
        "client_key": configuration.key_file,
        "validate_certs": bool(configuration.verify_ssl),
        "configuration": configuration,
    }


def secret_password(configuration, kube, username):
    """The password of *username* from the Secret ``password_secret`` (key ``password_key``) of the namespace.

    The key holds either a JSON object of user name to password (the airflow_auth role's
    ``passwords.json``) or the password itself.
    """
    name, key = kube["password_secret"], kube.get("password_key") or "passwords.json"
    try:
        secret = kube_client.CoreV1Api(kube_client.ApiClient(configuration)).read_namespaced_secret(name, kube["namespace"])
    # ApiException, urllib3 errors.
    except Exception as exc:  # pylint: disable=broad-exception-caught
        status = getattr(exc, "status", None)
        raise KubeProxyError("cannot read the Secret %s in namespace %s%s" % (
            name, kube["namespace"], " (HTTP %s)" % status if status else ": %s" % type(exc).__name__))
    encoded = (secret.data or {}).get(key)
    if encoded is None:
        raise KubeProxyError("the Secret %s in namespace %s has no key %s" % (name, kube["namespace"], key))
    text = base64.b64decode(encoded).decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(value, dict):
        if not isinstance(value.get(username), str):
            raise KubeProxyError("the key %s of the Secret %s has no password for user %r" % (key, name, username))
        return value[username]
    return text.strip()

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP transport for :class:`airflow_api.Client` on top of Ansible's ``open_url``, and the one way
every module connects: straight to O(url), or through the Kubernetes API's Service proxy
(module_utils/airflow_kube.py) when the module is given O(kubernetes)."""

from __future__ import annotations

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.failback.airflow.plugins.module_utils import airflow_kube
from ansible_collections.failback.airflow.plugins.module_utils.airflow_api import AirflowApiError, Client


def make_transport(validate_certs=True, ca_path=None, client_cert=None, client_key=None, headers=None):
    """A ``transport(method, url, headers, body, timeout) -> (status, text)`` function.

    *headers* are sent with every request (the Kubernetes API's credentials, for the Service proxy).
    """
    always = dict(headers or {})

    def transport(method, url, request_headers, body, timeout):
        try:
            response = open_url(url, data=body, headers=dict(request_headers, **always), method=method, timeout=timeout,
                                validate_certs=validate_certs, ca_path=ca_path, client_cert=client_cert,
                                client_key=client_key, follow_redirects="safe")
            return response.getcode(), response.read().decode("utf-8", "replace")
        except HTTPError as exc:
            try:
                text = exc.read().decode("utf-8", "replace")
            except Exception:  # pylint: disable=broad-except
                text = ""
            return exc.code, text
        except (URLError, OSError, ValueError) as exc:
            raise AirflowApiError("%s %s failed: %s" % (method, url, getattr(exc, "reason", exc)))

    return transport


def connect(params, client_class=Client):
    """A client of *client_class* for a module's connection options (airflow_api.CONNECTION_ARGUMENT_SPEC).

    With ``kubernetes`` the client goes through the Service proxy: the Kubernetes credentials in
    the transport, Airflow's token as its cookie, and the password of the login (when neither
    ``password`` nor ``password_file`` is given) read from the Secret ``kubernetes.password_secret``.
    """
    kube = params.get("kubernetes")
    if not kube:
        return client_class(params["url"], make_transport(params["validate_certs"]), params["request_timeout"])
    try:
        found = airflow_kube.endpoint(kube)
    except airflow_kube.KubeProxyError as exc:
        raise AirflowApiError(str(exc))
    transport = make_transport(found["validate_certs"], ca_path=found["ca_path"], client_cert=found["client_cert"],
                               client_key=found["client_key"], headers=found["headers"])
    client = client_class(found["base_url"], transport, params["request_timeout"])
    client.token_cookie = airflow_kube.AIRFLOW_TOKEN_COOKIE
    if kube.get("password_secret"):
        def from_secret(username):
            try:
                return airflow_kube.secret_password(found["configuration"], kube, username)
            except airflow_kube.KubeProxyError as exc:
                raise AirflowApiError(str(exc))
        client.password_source = from_secret
    return client

"""Reaching an Airflow REST API through the Kubernetes API's Service proxy (airflow_kube, airflow_http.connect).

The test Kubernetes API (tests/fake_kube.py) checks the kubeconfig's token and forwards the proxy
path to a small HTTP server standing for Airflow, which records what reached it: never the
Kubernetes token, Airflow's token as its cookie. The same modules run against a real Airflow in
tests/airflow/test_kubernetes_proxy_airflow.py.
"""

from __future__ import annotations

import base64
import json

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, airflow_kube
from ansible_collections.failback.airflow.plugins.module_utils.airflow_http import connect
from failback_testlib import LocalHTTPServer, QuietHandler
from fake_kube import FakeKube


class FakeAirflow(LocalHTTPServer):
    """Answers /auth/token and /api/v2/dags; keeps the headers of every request."""

    def __init__(self):
        self.seen = []
        server = self

        class Handler(QuietHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.read_body() or b"{}")
                server.seen.append(("POST", self.path, dict(self.headers)))
                if body == {"username": "admin", "password": "pw-from-secret"}:
                    self.send_json(201, {"access_token": "airflow-jwt"})
                else:
                    self.send_json(401, {"detail": "bad credentials"})

            def do_GET(self):  # noqa: N802
                server.seen.append(("GET", self.path, dict(self.headers)))
                if self.headers.get("Cookie") == "_token=airflow-jwt":
                    self.send_json(200, {"dags": [{"dag_id": "a", "is_paused": True}], "total_entries": 1})
                else:
                    self.send_json(401, {"detail": "not authenticated"})

        super().__init__(Handler)


@pytest.fixture
def proxied(tmp_path):
    with FakeKube(namespaces=["airflow"]) as kube, FakeAirflow() as airflow:
        kube.serve("airflow", "af-api-server", airflow.base_url)
        kube.objects[("secrets", "airflow", "af-auth")] = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "af-auth", "namespace": "airflow"},
            "data": {"passwords.json": base64.b64encode(json.dumps({"admin": "pw-from-secret"}).encode()).decode()}}
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        yield kube, airflow, str(kubeconfig)


def _params(kubeconfig, **kube):
    return {"url": None, "validate_certs": True, "request_timeout": 10, "username": "admin", "password": None,
            "password_file": None, "kubernetes": dict({"namespace": "airflow", "service": "af-api-server", "port": "http",
                                                       "scheme": "http", "kubeconfig": kubeconfig, "context": None,
                                                       "password_secret": "af-auth", "password_key": "passwords.json"}, **kube)}


def test_the_proxy_path_names_namespace_scheme_service_and_port():
    assert airflow_kube.proxy_path({"namespace": "air flow", "service": "api", "port": 8080, "scheme": "https"}) == \
        "/api/v1/namespaces/air%20flow/services/https:api:8080/proxy"


def test_the_token_stays_with_the_kubernetes_api_and_airflow_gets_its_cookie(proxied):
    kube, airflow, kubeconfig = proxied
    params = _params(kubeconfig)
    client = connect(params)
    client.login_with(params)
    assert client.dags() == {"a": True}
    assert [(method, path) for method, path, _headers in airflow.seen] == [("POST", "/auth/token"), ("GET", "/api/v2/dags?limit=100&offset=0")]
    for _method, _path, headers in airflow.seen:
        assert "Authorization" not in headers and "not-a-secret" not in json.dumps(headers)
    assert airflow.seen[1][2]["Cookie"] == "_token=airflow-jwt"
    assert ("GET", "/api/v1/namespaces/airflow/secrets/af-auth") in [(r["method"], r["path"]) for r in kube.requests]


def test_a_password_given_wins_over_the_secret_and_a_missing_one_is_named(proxied):
    _kube, airflow, kubeconfig = proxied
    params = dict(_params(kubeconfig, password_secret=None), password="pw-from-secret")
    connect(params).login_with(params)
    params = _params(kubeconfig, password_secret=None)
    with pytest.raises(airflow_api.AirflowApiError, match="give the password of admin: password, password_file or kubernetes.password_secret"):
        connect(params).login_with(params)
    assert len(airflow.seen) == 1


@pytest.mark.parametrize("change, message", [
    ({"password_secret": "nosuch"}, "cannot read the Secret nosuch in namespace airflow (HTTP 404)"),
    ({"password_key": "other"}, "the Secret af-auth in namespace airflow has no key other"),
])
def test_a_bad_secret_is_named(proxied, change, message):
    _kube, _airflow, kubeconfig = proxied
    params = _params(kubeconfig, **change)
    with pytest.raises(airflow_api.AirflowApiError) as err:
        connect(params).login_with(params)
    assert message in str(err.value)


def test_a_missing_kubeconfig_is_named(tmp_path):
    params = _params(str(tmp_path / "nosuch"))
    with pytest.raises(airflow_api.AirflowApiError, match="cannot load the Kubernetes configuration"):
        connect(params)


def test_where_names_the_service_for_messages():
    assert airflow_api.where(_params("/k")) == "Airflow of Service af-api-server:http in namespace airflow (through the Kubernetes API)"
    assert airflow_api.where({"url": "http://127.0.0.1:8080"}) == "Airflow at http://127.0.0.1:8080"

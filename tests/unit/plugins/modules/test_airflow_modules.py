"""airflow_health and airflow_dags main() against a small fake Airflow 3 API on 127.0.0.1."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from failback_testlib import LocalHTTPServer, QuietHandler

from ansible_collections.failback.airflow.plugins.modules import airflow_dags, airflow_health


class Exit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture(autouse=True)
def exits(monkeypatch):
    def exit_json(self, **kwargs):
        raise Exit(kwargs, False)

    def fail_json(self, **kwargs):
        raise Exit(kwargs, True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


class FakeAirflow(LocalHTTPServer):
    def __init__(self):
        self.health = {name: {"status": "healthy"} for name in ("metadatabase", "scheduler", "dag_processor", "triggerer")}
        self.dags = {}
        self.patches = []
        state = self

        class Handler(QuietHandler):
            def _body(self):
                return json.loads(self.read_body() or b"{}")

            def do_GET(self):
                url = urlparse(self.path)
                if url.path == "/api/v2/monitor/health":
                    return self.send_json(200, state.health)
                if self.headers.get("Authorization") != "Bearer tok":
                    return self.send_json(401, {"detail": "no"})
                if url.path == "/api/v2/dags":
                    query = parse_qs(url.query)
                    offset, limit = int(query["offset"][0]), int(query["limit"][0])
                    names = sorted(state.dags)[offset:offset + limit]
                    return self.send_json(200, {"dags": [{"dag_id": n, "is_paused": state.dags[n]} for n in names],
                                                "total_entries": len(state.dags)})
                return self.send_json(404, {})

            def do_POST(self):
                if self.path == "/auth/token":
                    body = self._body()
                    if body == {"username": "admin", "password": "secret"}:
                        return self.send_json(201, {"access_token": "tok"})
                    return self.send_json(401, {"detail": "Invalid credentials"})
                return self.send_json(404, {})

            def do_PATCH(self):
                url = urlparse(self.path)
                dag_id = url.path.rsplit("/", 1)[1]
                if self.headers.get("Authorization") != "Bearer tok" or dag_id not in state.dags:
                    return self.send_json(404, {})
                state.dags[dag_id] = self._body()["is_paused"]
                state.patches.append(dag_id)
                return self.send_json(200, {"dag_id": dag_id, "is_paused": state.dags[dag_id]})

        super().__init__(Handler)
        self.url = self.base_url


@pytest.fixture
def api():
    server = FakeAirflow()
    yield server
    server.stop()


def run(module, args, check=False):
    if check:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(Exit) as info:
            module.main()
    return info.value


def test_health_ok(api):
    result = run(airflow_health, {"url": api.url, "timeout": 0})
    assert not result.failed and result.result["healthy"] and result.result["problems"] == {}


def test_health_reads_the_json_not_the_status_code(api):
    api.health["triggerer"] = {"status": "unhealthy", "latest_triggerer_heartbeat": "2026-11-21T09:00:00+00:00"}
    result = run(airflow_health, {"url": api.url, "timeout": 1, "interval": 1})
    assert result.failed
    assert "triggerer: status unhealthy" in result.result["msg"]
    assert result.result["services"] == ["airflow-triggerer"]


def test_health_names_the_api_server_when_nothing_answers(api):
    url = api.url
    api.stop()
    result = run(airflow_health, {"url": url, "timeout": 0})
    assert result.failed and result.result["services"] == ["airflow-api-server"]


def test_health_rejects_unknown_components(api):
    result = run(airflow_health, {"url": api.url, "components": ["webserver"]})
    assert result.failed and "webserver" in result.result["msg"]


BEFORE = {"@failback": {"generation": 1, "default": "s1"}, "listed": "s1", "other": "s2"}
AFTER = {"@failback": {"generation": 2, "default": "s2"}, "listed": "s2", "other": "s2"}


def dags_args(api, **extra):
    args = {"url": api.url, "username": "admin", "password": "secret"}
    args.update(extra)
    return args


def test_revoke_pauses_listed_and_default_owned_dags_check_mode_first(api):
    api.dags = {"listed": False, "unlisted": False, "other": False}
    args = dags_args(api, moved="away", map_before=BEFORE, map_after=AFTER, installation="s1", paused=True)
    checked = run(airflow_dags, args, check=True)
    assert checked.result["changed"] and checked.result["changed_dags"] == ["listed", "unlisted"]
    assert api.patches == [] and api.dags["listed"] is False
    applied = run(airflow_dags, args)
    assert applied.result["changed_dags"] == ["listed", "unlisted"]
    assert api.dags == {"listed": True, "unlisted": True, "other": False}
    again = run(airflow_dags, args)
    assert not again.result["changed"] and api.patches == ["listed", "unlisted"]


def test_grant_reports_a_moved_dag_not_parsed_yet(api):
    api.dags = {"other": True}
    args = dags_args(api, moved="here", map_before=BEFORE, map_after=AFTER, installation="s2", paused=False)
    result = run(airflow_dags, args)
    assert result.result["missing"] == ["listed"] and not result.result["changed"]


def test_explicit_dag_ids_and_a_wrong_password(api):
    api.dags = {"a": True, "b": False}
    result = run(airflow_dags, dags_args(api, dag_ids=["a", "b"], paused=False))
    assert result.result["changed_dags"] == ["a"] and api.dags == {"a": False, "b": False}
    denied = run(airflow_dags, dags_args(api, password="wrong", dag_ids=["a"], paused=True))
    assert denied.failed and "HTTP 401" in denied.result["msg"]
    assert "wrong" not in denied.result["msg"]

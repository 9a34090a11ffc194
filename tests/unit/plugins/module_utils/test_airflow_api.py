"""Airflow REST rules: health JSON, moved-DAG selection, pause planning, the client's requests."""

from __future__ import annotations

import json

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api
from ansible_collections.failback.airflow.plugins.module_utils.placement import PlacementError

ALL = ["metadatabase", "scheduler", "dag_processor", "triggerer"]
HEALTHY = {
    "metadatabase": {"status": "healthy"},
    "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-11-21T10:00:00+00:00"},
    "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": "2026-11-21T10:00:00+00:00"},
    "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": "2026-11-21T10:00:00+00:00"},
}


def test_all_healthy_has_no_problem():
    assert airflow_api.health_problems(HEALTHY, ALL) == {}


@pytest.mark.parametrize(
    "component, entry, expected",
    [
        ("scheduler", {"status": "unhealthy", "latest_scheduler_heartbeat": "2026-11-21T09:00:00+00:00"},
         "status unhealthy, last heartbeat 2026-11-21T09:00:00+00:00"),
        ("triggerer", {"status": None, "latest_triggerer_heartbeat": None}, "status unknown (never started)"),
        ("dag_processor", None, "not reported by the health endpoint"),
        ("metadatabase", {"status": "unhealthy"}, "status unhealthy"),
    ],
)
def test_an_unhealthy_component_is_named_with_its_reason(component, entry, expected):
    health = dict(HEALTHY)
    if entry is None:
        health.pop(component)
    else:
        health[component] = entry
    assert airflow_api.health_problems(health, ALL) == {component: expected}


def test_only_the_wanted_components_count():
    health = dict(HEALTHY, triggerer={"status": "unhealthy"})
    assert airflow_api.health_problems(health, ["metadatabase", "scheduler"]) == {}


def test_a_non_object_answer_fails_every_component():
    assert set(airflow_api.health_problems(["healthy"], ALL)) == set(ALL)


BEFORE = {"@failback": {"generation": 3, "default": "server-1"}, "sales": "server-1", "ml": "server-2"}


@pytest.mark.parametrize(
    "after, installation, direction, known, expected",
    [
        # a listed DAG moves: away on the old owner, here on the new one
        ({"@failback": {"generation": 4, "default": "server-1"}, "sales": "server-2", "ml": "server-2"},
         "server-1", "away", ["sales", "ml", "other"], ["sales"]),
        ({"@failback": {"generation": 4, "default": "server-1"}, "sales": "server-2", "ml": "server-2"},
         "server-2", "here", ["sales", "ml", "other"], ["sales"]),
        # the default owner moves: every unlisted DAG the installation knows moves with it
        ({"@failback": {"generation": 4, "default": "server-2"}, "sales": "server-2", "ml": "server-2"},
         "server-1", "away", ["sales", "ml", "other", "more"], ["more", "other", "sales"]),
        ({"@failback": {"generation": 4, "default": "server-2"}, "sales": "server-2", "ml": "server-2"},
         "server-2", "here", ["sales", "ml", "other"], ["other", "sales"]),
        # a listed DAG the installation has not parsed yet is still selected
        ({"@failback": {"generation": 4, "default": "server-1"}, "sales": "server-2", "ml": "server-2"},
         "server-2", "here", [], ["sales"]),
        # nothing moved for a bystander
        ({"@failback": {"generation": 4, "default": "server-1"}, "sales": "server-2", "ml": "server-2"},
         "k8s", "here", ["sales", "ml"], []),
    ],
)
def test_select_moved(after, installation, direction, known, expected):
    assert airflow_api.select_moved(BEFORE, after, installation, known, direction) == expected


def test_select_moved_accepts_yaml_text_and_the_flat_form():
    assert airflow_api.select_moved("a: s1\nb: s1\n", "a: s2\nb: s1\n", "s1", ["a", "b"], "away") == ["a"]


def test_select_moved_rejects_a_bad_map_and_direction():
    with pytest.raises(PlacementError):
        airflow_api.select_moved({"a": 3}, {"a": "s2"}, "s1", ["a"], "away")
    with pytest.raises(ValueError):
        airflow_api.select_moved({"a": "s1"}, {"a": "s2"}, "s1", ["a"], "sideways")


def test_plan_pause_splits_change_unchanged_missing():
    current = {"a": False, "b": True, "c": False}
    assert airflow_api.plan_pause(current, True, ["a", "b", "zz", "a"]) == (["a"], ["b"], ["zz"])
    assert airflow_api.plan_pause(current, False, ["a", "b"]) == (["b"], ["a"], [])


class FakeApi(object):
    """A transport that answers like Airflow 3 and records every request."""

    def __init__(self, dags, page_size_seen=None):
        self.dags = dict(dags)
        self.calls = []

    def __call__(self, method, url, headers, body, timeout):
        self.calls.append((method, url, headers, body))
        path, _sep, query = url.partition("?")
        path = path.replace("http://airflow", "")
        if path == "/auth/token":
            creds = json.loads(body)
            if creds == {"username": "admin", "password": "pw"}:
                return 201, json.dumps({"access_token": "tok"})
            return 401, json.dumps({"detail": "Invalid credentials"})
        if headers.get("Authorization") != "Bearer tok":
            return 401, "{}"
        if path == "/api/v2/dags" and method == "GET":
            params = dict(item.split("=") for item in query.split("&"))
            names = sorted(self.dags)
            start, limit = int(params["offset"]), int(params["limit"])
            page = [{"dag_id": d, "is_paused": self.dags[d]} for d in names[start:start + limit]]
            return 200, json.dumps({"dags": page, "total_entries": len(names)})
        if path.startswith("/api/v2/dags/") and method == "PATCH":
            dag_id = path.rsplit("/", 1)[1]
            if dag_id not in self.dags:
                return 404, "{}"
            self.dags[dag_id] = json.loads(body)["is_paused"]
            return 200, json.dumps({"dag_id": dag_id, "is_paused": self.dags[dag_id]})
        return 404, "{}"


def test_client_logs_in_pages_through_dags_and_patches():
    dags = dict(("dag_%03d" % i, i % 2 == 0) for i in range(250))
    api = FakeApi(dags)
    client = airflow_api.Client("http://airflow/", api)
    client.login("admin", "pw")
    assert client.dags() == dags
    assert len([c for c in api.calls if c[0] == "GET"]) == 3
    assert client.set_paused("dag_001", True) is True
    assert api.dags["dag_001"] is True
    patch = [c for c in api.calls if c[0] == "PATCH"][0]
    assert "update_mask=is_paused" in patch[1]


def test_client_errors_name_the_request():
    client = airflow_api.Client("http://airflow", FakeApi({}))
    with pytest.raises(airflow_api.AirflowApiError, match="POST /auth/token answered HTTP 401"):
        client.login("admin", "wrong")
    client.login("admin", "pw")
    with pytest.raises(airflow_api.AirflowApiError, match="PATCH /api/v2/dags/nope answered HTTP 404"):
        client.set_paused("nope", True)

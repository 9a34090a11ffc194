"""The placement filters wrap the placement rules and turn their errors into AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.failback.airflow.plugins.filter import placement as f

OLD = '"@failback": {generation: 2}\ndag_a: server-1\n'
NEW = '"@failback": {generation: 3}\ndag_a: server-2\n'


def test_filters_are_registered():
    assert sorted(f.FilterModule().filters()) == [
        "placement_changes", "placement_dump", "placement_generation", "placement_grant_wait", "placement_owner",
        "placement_owns_any", "placement_parse", "placement_publish_needed", "placement_publish_plan",
        "placement_revoke_map", "placement_source_env", "placement_source_problems",
        "placement_source_settled"]


def test_parse_dump_owner_generation():
    data = f.placement_parse(NEW, ["server-1", "server-2"])
    assert data == {"@failback": {"generation": 3}, "dag_a": "server-2"}
    assert f.placement_parse(f.placement_dump(data)) == data
    assert f.placement_owner(data, "dag_a") == "server-2"
    assert f.placement_owner(data, "dag_b") is None
    assert f.placement_generation(OLD) == 2


@pytest.mark.parametrize("new,current,expected", [(NEW, None, True), (NEW, "", True), (NEW, OLD, True), (NEW, NEW, False)])
def test_publish_needed(new, current, expected):
    assert f.placement_publish_needed(new, current) is expected


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: f.placement_publish_needed(OLD, NEW), "refusing to replace placement map generation 3 with older generation 2"),
        (lambda: f.placement_parse("dag_a: server-9\n", ["server-1"]), "owner of DAG 'dag_a' 'server-9' is not a known installation"),
        (lambda: f.placement_owner(NEW, "bad id"), "DAG id 'bad id' is not a valid Airflow DAG id"),
        (lambda: f.placement_dump(42), "placement map must be YAML text or a mapping, got int"),
        (lambda: f.placement_publish_needed(NEW, "dag_a: [x\n"), "placement map on the installation is not valid YAML"),
    ],
)
def test_errors_become_filter_errors(call, message):
    with pytest.raises(AnsibleFilterError) as err:
        call()
    assert message in str(err.value)


BEFORE = {"@failback": {"generation": 1, "default": "k8s"}, "a": "s1", "b": "s2"}
AFTER = {"@failback": {"generation": 2, "default": "s1"}, "a": "s2", "b": "s2"}


@pytest.mark.parametrize("installation, dag_ids, expected", [
    ("s1", [], {"lost": ["a"], "gained": [], "lost_default": False, "gained_default": True, "owns_any_after": True}),
    ("s1", ["unlisted"], {"lost": ["a"], "gained": ["unlisted"], "lost_default": False, "gained_default": True,
                          "owns_any_after": True}),
    ("k8s", ["unlisted"], {"lost": ["unlisted"], "gained": [], "lost_default": True, "gained_default": False,
                           "owns_any_after": False}),
    ("s2", [], {"lost": [], "gained": ["a"], "lost_default": False, "gained_default": False, "owns_any_after": True}),
])
def test_placement_changes(installation, dag_ids, expected):
    assert f.placement_changes(BEFORE, AFTER, installation, dag_ids) == expected


def test_placement_owns_any():
    assert f.placement_owns_any(AFTER, "s1") and f.placement_owns_any(AFTER, "s2")
    assert not f.placement_owns_any(AFTER, "k8s")


def test_airflow_health_problems_filter():
    from ansible_collections.failback.airflow.plugins.filter import airflow

    report = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "unhealthy",
                                                                   "latest_scheduler_heartbeat": "t"}}
    assert airflow.airflow_health_problems(report, ["metadatabase", "scheduler"]) == {
        "scheduler": "status unhealthy, last heartbeat t"}
    assert "triggerer" in airflow.airflow_health_problems(report)


def test_placement_source_settled_fills_the_defaults_the_roles_read():
    from ansible_collections.failback.airflow.plugins.filter.placement import placement_source_settled
    settled = placement_source_settled({"type": "s3", "url": "s3://b/k", "controller_credentials_file": "/w.json"})
    assert (settled["lease"], settled["refresh"], settled["clock_margin"], settled["region"]) == (60, 15, 5, "us-east-1")
    assert placement_source_settled(None)["type"] == "push"

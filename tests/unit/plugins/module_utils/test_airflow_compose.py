"""Ordered start planning for podman-compose: what is created, recreated, started or run."""

from __future__ import annotations

import json

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import airflow_compose as compose

ORDER = ["postgres", "airflow-init", "airflow-api-server", "airflow-scheduler"]
DESIRED = {"postgres": "h1", "airflow-init": "h2", "airflow-api-server": "h3", "airflow-scheduler": "h4"}


def container(service, state="running", exit_code=0, config_hash=None, created=1):
    return compose.Container("p_%s_1" % service, service, state, exit_code,
                             DESIRED[service] if config_hash is None else config_hash, created)


def current(**overrides):
    found = {
        "postgres": container("postgres"),
        "airflow-init": container("airflow-init", state="exited"),
        "airflow-api-server": container("airflow-api-server"),
        "airflow-scheduler": container("airflow-scheduler"),
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            found.pop(name)
        else:
            found[name] = value
    return found


def test_first_install_creates_everything_in_order():
    assert compose.plan(ORDER, DESIRED, {}, ["airflow-init"]) == [
        ("postgres", "create"), ("airflow-init", "run"), ("airflow-api-server", "create"), ("airflow-scheduler", "create")]


def test_nothing_to_do_when_everything_is_current():
    assert compose.plan(ORDER, DESIRED, current(), ["airflow-init"]) == []


def test_only_the_changed_service_is_recreated():
    changed = current(airflow_scheduler=container("airflow-scheduler", config_hash="old"))
    assert compose.plan(ORDER, DESIRED, changed, ["airflow-init"]) == [("airflow-scheduler", "recreate")]


def test_a_stopped_service_is_started_not_recreated():
    stopped = current(postgres=container("postgres", state="exited", exit_code=0))
    assert compose.plan(ORDER, DESIRED, stopped, ["airflow-init"]) == [("postgres", "start")]


@pytest.mark.parametrize("init", [
    container("airflow-init", state="exited", exit_code=1),
    container("airflow-init", state="exited", config_hash="old"),
    container("airflow-init", state="running"),
    container("airflow-init", state="created", exit_code=None),
])
def test_the_one_shot_runs_again_when_it_failed_changed_or_never_finished(init):
    assert compose.plan(ORDER, DESIRED, current(airflow_init=init), ["airflow-init"]) == [("airflow-init", "run")]


def test_the_one_shot_runs_when_a_long_running_service_is_missing():
    assert compose.plan(ORDER, DESIRED, current(airflow_api_server=None), ["airflow-init"]) == [
        ("airflow-init", "run"), ("airflow-api-server", "create")]


def test_bad_input_is_named():
    with pytest.raises(compose.ComposeError, match="nope"):
        compose.plan(ORDER + ["nope"], DESIRED, {}, [])
    with pytest.raises(compose.ComposeError, match="one-shot"):
        compose.plan(ORDER, DESIRED, {}, ["other"])


def test_up_args():
    assert compose.up_args("s", "create") == ["up", "-d", "--no-deps", "s"]
    assert compose.up_args("s", "start") == ["up", "-d", "--no-deps", "s"]
    assert compose.up_args("s", "recreate") == ["up", "-d", "--no-deps", "--force-recreate", "s"]
    assert compose.up_args("s", "run") == ["up", "-d", "--no-deps", "--force-recreate", "s"]


def test_desired_hashes_reads_mapping_and_list_labels():
    data = {"services": {
        "a": {"labels": {compose.CONFIG_HASH_LABEL: "x"}},
        "b": {"labels": ["%s=y" % compose.CONFIG_HASH_LABEL, "other=1"]},
        "c": {},
    }}
    assert compose.desired_hashes(data) == {"a": "x", "b": "y", "c": None}
    with pytest.raises(compose.ComposeError):
        compose.desired_hashes({"version": "3"})


def test_parse_ps_keeps_the_newest_container_per_service():
    ps = [
        {"Names": ["p_a_1"], "State": "exited", "ExitCode": 0, "Created": 10,
         "Labels": {"com.docker.compose.service": "a", compose.CONFIG_HASH_LABEL: "old"}},
        {"Names": ["p_a_2"], "State": "running", "ExitCode": 0, "Created": 20,
         "Labels": {"com.docker.compose.service": "a", compose.CONFIG_HASH_LABEL: "new"}},
        {"Names": ["unrelated"], "State": "running", "Labels": {}},
    ]
    found = compose.parse_ps(json.dumps(ps))
    assert list(found) == ["a"]
    assert found["a"].name == "p_a_2" and found["a"].running and found["a"].config_hash == "new"
    assert compose.parse_ps("null") == {}
    with pytest.raises(compose.ComposeError):
        compose.parse_ps("not json")


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"services": {"a": {}, "b": {"image": "x"}}}, ["p_default"]),
        ({"services": {"a": {"networks": ["back"]}, "b": {}}, "networks": {"back": {}}}, ["p_back", "p_default"]),
        ({"services": {"a": {"networks": {"front": {}}}}, "networks": {"front": {"name": "shared-front"}}}, ["shared-front"]),
        ({"services": {"a": {"networks": ["ext"]}}, "networks": {"ext": {"external": True}}}, []),
        ({"services": {"a": {"network_mode": "host"}, "b": {"network_mode": "none"}}}, []),
        ({"services": {"a": {"networks": ["quiet"]}}, "networks": {"quiet": {"x-podman.disable_dns": True}}}, []),
    ],
)
def test_project_networks_are_named_as_podman_compose_names_them(data, expected):
    assert compose.project_networks(data, "p") == expected


def test_project_networks_refuses_a_file_without_services():
    with pytest.raises(compose.ComposeError, match="no 'services' mapping"):
        compose.project_networks({"networks": {}}, "p")


def test_parse_network_inspect():
    text = json.dumps([{"name": "p_default", "dns_enabled": False}, {"name": "q", "dns_enabled": True}])
    assert compose.parse_network_inspect(text) == {"p_default": False, "q": True}
    with pytest.raises(compose.ComposeError, match="did not print JSON"):
        compose.parse_network_inspect("Error: no such network")


@pytest.mark.parametrize(
    "exists, dns, available, action",
    [
        (False, False, None, compose.CREATE),
        (True, True, None, compose.KEEP),
        (True, False, True, compose.RECREATE),  # made before the DNS plugin was installed: recreate
        (True, False, False, None),  # no DNS component on this host: stop and say which package
    ],
)
def test_network_action(exists, dns, available, action):
    assert compose.network_action(exists, dns, available) == action


def test_no_dns_message_names_the_network_the_effect_and_the_package():
    message = compose.no_dns_message("p_default", ["golang-github-containernetworking-plugin-dnsname"])
    assert "Podman network p_default has no DNS (dns_enabled: false)" in message
    assert "cannot resolve each other's names (such as 'postgres')" in message
    assert "install golang-github-containernetworking-plugin-dnsname and run again" in message
    assert "the CNI dnsname plugin, or aardvark-dns with netavark" in compose.no_dns_message("p_default", [])

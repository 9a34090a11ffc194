"""Rules of the fleet's airflow_placement_source (module_utils/placement_source.py)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import placement_source as ps


@pytest.fixture
def controller_keys(tmp_path):
    path = tmp_path / "controller.json"
    path.write_text(json.dumps({"access_key_id": "AKIAX", "secret_access_key": "s3cr3t"}))
    return str(path)


def s3(controller_keys, **changes):
    source = {"type": "s3", "url": "s3://team-airflow/failback/placement.yml", "region": "eu-west-1",
              "controller_credentials_file": controller_keys,
              "credentials": {"access_key_id": "AKIAR", "secret_access_key": "r34d-only"}}
    source.update(changes)
    return source


def test_push_and_a_complete_s3_source_have_no_problems(controller_keys):
    assert ps.problems(None) == [] and ps.problems({"type": "push"}) == []
    assert ps.problems(s3(controller_keys)) == []


@pytest.mark.parametrize("changes, message", [
    ({"lease": -5}, "airflow_placement_source.lease is -5: give at least 1 seconds"),
    ({"lease": 10, "refresh": 30}, "lease is 10, shorter than refresh 30"),
    ({"lease": 7200}, "lease is 7200: at most 3600 seconds"),
    ({"refresh": "soon"}, "refresh is 'soon': give a number of seconds"),
    ({"lease": float("nan")}, "lease is nan: give a number of seconds"),
    ({"clock_margin": True}, "clock_margin is True: give a number of seconds"),
    ({"url": "s3://Team/x.yml"}, "bucket 'Team' is not a valid bucket name"),
    ({"url": "https://example.com/map.yml"}, "is not an s3://BUCKET/KEY URL"),
    ({"region": "EU"}, "region 'EU' is not an AWS region name"),
    ({"endpoint": "minio:9000"}, "endpoint 'minio:9000' is not an http(s)://HOST[:PORT][/PATH] URL"),
    ({"type": "git"}, "type is 'git': give one of push, s3"),
    ({"ttl": 5}, "unknown key(s) ttl"),
    ({"credentials": {"access_key_id": "A"}}, "credentials (the installations' read-only keys) must be a mapping"),
    ({"controller_credentials_file": None}, "controller_credentials_file is not set"),
    ({"controller_credentials_file": "/nonexistent/keys.json"}, "cannot be read: No such file or directory"),
])
def test_bad_settings_are_named(controller_keys, changes, message):
    found = ps.problems(s3(controller_keys, **changes))
    assert any(message in problem for problem in found), found


def test_a_controller_credentials_fifo_is_refused_at_once(controller_keys, tmp_path):
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(str(fifo))
    found = ps.problems(s3(controller_keys, controller_credentials_file=str(fifo)))
    assert any("is not a regular file" in problem for problem in found), found


def test_the_guard_environment_holds_paths_and_numbers_only(controller_keys):
    env = ps.guard_env(s3(controller_keys, endpoint="https://minio.example.com:9000"), "/opt/airflow/placement/s3.json",
                       "/opt/airflow/placement/fence")
    assert env == {"FAILBACK_PLACEMENT_MAP": "s3://team-airflow/failback/placement.yml", "FAILBACK_PLACEMENT_TTL": "15",
                   "FAILBACK_PLACEMENT_LEASE": "60", "FAILBACK_PLACEMENT_S3_REGION": "eu-west-1",
                   "FAILBACK_FENCE_FILE": "/opt/airflow/placement/fence",
                   "FAILBACK_PLACEMENT_S3_ENDPOINT": "https://minio.example.com:9000",
                   "FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE": "/opt/airflow/placement/s3.json"}
    assert "r34d-only" not in json.dumps(env)
    assert ps.guard_env({"type": "push"}, "x", "y") == {}


def test_the_grant_waits_a_lease_and_the_margin_unless_the_old_owner_confirmed(controller_keys):
    source = s3(controller_keys, lease=60, clock_margin=5, refresh=15)
    assert ps.grant_wait(source, revoked_at=1000.0, now=1001.0) == 64.0
    assert ps.grant_wait(source, revoked_at=1000.0, now=1001.0, confirmed_at=1000.5) == 14.5
    assert ps.grant_wait(source, revoked_at=1000.0, now=1030.0, confirmed_at=1010.0) == 0.0
    assert ps.grant_wait(source, revoked_at=1000.0, now=2000.0) == 0.0

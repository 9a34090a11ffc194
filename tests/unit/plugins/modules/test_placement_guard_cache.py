"""failback.airflow.placement_guard_cache against the real guard: a revoke stage handed to a server's guard
cache decides there at once, also when the guard can no longer reach the authority (the confirmation that
lets failover.yml grant one refresh later instead of a lease later)."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from failback_ansible import run_module

import failback_testlib as lab
from ansible_collections.failback.airflow.plugins.module_utils import placement, placement_plan
from ansible_collections.failback.airflow.plugins.modules import placement_guard_cache

OLD = '"@failback": {generation: 4}\ndag_a: server-1\ndag_b: server-1\n'
AFTER = '"@failback": {generation: 5}\ndag_a: server-2\ndag_b: server-1\n'


@pytest.fixture
def cache(guard, monkeypatch):
    """The guard (tests/unit/conftest.py) on server-1, with its cache directory made as the server role makes it."""
    os.mkdir(os.environ["FAILBACK_PLACEMENT_CACHE_DIR"], 0o700)
    monkeypatch.setenv("FAILBACK_INSTALLATION", "server-1")
    return guard


def revoke_text():
    """The revoke stage of moving dag_a from server-1 to server-2 (dag_a belongs to nobody), as the authority
    holds it (placement_authority writes dump_map)."""
    return placement.dump_map(placement_plan.revoke_map(placement.parse_map(OLD), placement.parse_map(AFTER)))


def hand(capsys, directory, url, content=None, check_mode=False):
    return run_module(capsys, placement_guard_cache, check_mode, False, dir=str(directory), url=url,
                      content=revoke_text() if content is None else content)


def test_the_handed_revoke_stage_decides_at_once_even_cut_off_from_the_authority(cache, capsys, monkeypatch):
    guard = cache
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "1")
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "60")
    with lab.MapServer(OLD) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        assert guard.evaluate("dag_a").runs  # a task process decided with the map before the failover
        running = guard.current_source()
        server.stop()  # cut off from the authority: its cached map would decide for the whole lease
        result = hand(capsys, os.environ["FAILBACK_PLACEMENT_CACHE_DIR"], server.url, revoke_text())
    assert result["changed"] and result["confirmed"] and result["generation"] == 5 and result["reason"] is None
    assert abs(result["confirmed_at"] - time.time()) < 5
    st = os.stat(result["path"])
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert os.path.basename(result["path"]) == placement.guard_cache_name(server.url)
    # the running process holds its map for at most one refresh (TTL), then takes the handed one
    time.sleep(1.1)
    decision = guard.evaluate("dag_a")
    assert (decision.decision, decision.generation) == ("skip", 5)
    assert guard.current_source() is running
    # a new task process takes it at once; the DAG the failover does not move still runs
    guard._SOURCES.clear()
    assert (guard.evaluate("dag_a").decision, guard.evaluate("dag_b").decision) == ("skip", "run")


def test_without_the_handed_stage_a_cut_off_guard_decides_with_the_map_before_for_its_lease(cache, monkeypatch):
    guard = cache
    """The control: what the failover would have to wait for."""
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "1")
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "60")
    with lab.MapServer(OLD) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        assert guard.evaluate("dag_a").runs
        server.stop()
    time.sleep(1.1)
    guard._SOURCES.clear()
    assert guard.evaluate("dag_a").runs


def test_a_request_sent_before_the_handover_never_replaces_the_handed_stage(cache, capsys, monkeypatch):
    guard = cache
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "3600")
    with lab.MapServer(OLD) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        assert guard.evaluate("dag_a").runs
        source = guard.current_source()
        source._entry["checked_at"] = source._entry["ok_at"] = time.time() - 2  # its request was sent before
        hand(capsys, os.environ["FAILBACK_PLACEMENT_CACHE_DIR"], server.url, revoke_text())
        source._save_disk()  # the late answer of that request is saved
        guard._SOURCES.clear()
        assert guard.evaluate("dag_a").decision == "skip"
        assert server.requests == 1


def test_a_fifo_or_a_link_in_the_cache_never_blocks_or_misleads_the_guard(cache, capsys, monkeypatch, tmp_path):
    guard = cache
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "3600")
    with lab.MapServer(OLD) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        path = os.path.join(os.environ["FAILBACK_PLACEMENT_CACHE_DIR"], placement.guard_cache_name(server.url))
        os.mkfifo(path)
        assert guard.evaluate("dag_a").runs  # read past the FIFO (not waited on), asked the URL, replaced it
        assert stat.S_ISREG(os.lstat(path).st_mode)
        os.unlink(path)
        elsewhere = tmp_path / "elsewhere.json"
        elsewhere.write_text(json.dumps(placement.guard_cache_entry(revoke_text(), time.time())))
        os.symlink(str(elsewhere), path)
        guard._SOURCES.clear()
        assert guard.evaluate("dag_a").runs  # a link is not followed: the URL decides
        result = hand(capsys, os.environ["FAILBACK_PLACEMENT_CACHE_DIR"], server.url, revoke_text())
        assert result["confirmed"] and stat.S_ISREG(os.lstat(path).st_mode)  # the link was replaced, not written through
        assert json.loads(elsewhere.read_text())["body"] == revoke_text()


@pytest.mark.parametrize("layout, why", [
    ("missing", "cannot be read"),
    ("link", "is not a directory"),
    ("shared", "may be written by others (mode 0777)"),
])
def test_a_cache_directory_the_guard_would_not_use_is_reported_and_nothing_is_written(capsys, tmp_path, layout, why):
    directory = tmp_path / "placement-cache"
    if layout == "link":
        (tmp_path / "real").mkdir(mode=0o700)
        os.symlink(str(tmp_path / "real"), str(directory))
    elif layout == "shared":
        directory.mkdir()
        os.chmod(str(directory), 0o777)
    result = hand(capsys, directory, "s3://maps/placement.yml")
    assert not result["changed"] and not result["confirmed"] and result["confirmed_at"] is None
    assert why in result["reason"] and str(directory) in result["reason"]
    assert not os.path.exists(str(tmp_path / "real" / os.path.basename(result["path"])))


def test_check_mode_writes_nothing_and_a_bad_map_fails_naming_it(capsys, tmp_path):
    directory = tmp_path / "placement-cache"
    directory.mkdir(mode=0o700)
    checked = hand(capsys, directory, "s3://maps/placement.yml", check_mode=True)
    assert checked["changed"] and not checked["confirmed"] and os.listdir(str(directory)) == []
    bad = hand(capsys, directory, "s3://maps/placement.yml", content="dag_a: [not, an, owner]\n")
    assert bad["failed"] and "nothing was written" in bad["msg"] and os.listdir(str(directory)) == []

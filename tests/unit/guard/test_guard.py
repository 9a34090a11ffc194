"""Unit tests of the guard (failback_guard.py) in its delivered layout, without Airflow.

The decisions, map sources, caching, fencing and the CLI are exercised against real files and a
real HTTP(S) server on 127.0.0.1.  Airflow-specific wiring is tested in tests/airflow.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time

import pytest

import failback_testlib as lab


def write_map(path, text):
    lab_placement = sys.modules["failback_placement"]
    lab_placement.atomic_write(str(path), text)


@pytest.fixture
def file_map(guard, tmp_path, monkeypatch):
    directory = tmp_path / "placement"
    directory.mkdir()
    path = directory / "placement.yml"
    write_map(path, '"@failback": {generation: 4}\ndag_a: server-1\ndag_b: server-2\n')
    monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", str(path))
    monkeypatch.setenv("FAILBACK_INSTALLATION", "server-1")
    return path


# ----------------------------------------------------------------------------- decisions


def test_owner_runs_and_others_skip_with_one_log_line_each(guard, file_map, caplog):
    caplog.set_level(logging.INFO, logger="failback.guard")
    run = guard.evaluate("dag_a", "t1")
    skip = guard.evaluate("dag_b", "t2")
    assert (run.decision, run.owner, run.generation) == ("run", "server-1", 4)
    assert (skip.decision, skip.owner) == ("skip", "server-2")
    lines = [r.getMessage() for r in caplog.records if r.name == "failback.guard"]
    assert lines == [
        "failback guard: decision=run dag=dag_a task=t1 owner=server-1 installation=server-1 generation=4 due=None map=%s"
        % file_map,
        "failback guard: decision=skip dag=dag_b task=t2 owner=server-2 installation=server-1 generation=4 due=None map=%s"
        % file_map,
    ]


HANDED_OVER = (
    '"@failback":\n  generation: 5\n  handovers:\n'
    '    dag_a:\n      - {at: "2026-12-01T09:00:00Z", from: "server-2", kept: ["2026-12-01T09:00:30Z"]}\n'
    "dag_a: server-1\ndag_b: server-2\n")


class _Run(object):
    def __init__(self, run_after):
        self.run_after = run_after


@pytest.mark.parametrize("due,owner", [
    ("2026-12-01T08:59:59Z", "server-2"),          # due before the handover: the old owner's run
    ("2026-12-01T09:00:00Z", "server-1"),          # at the handover: the new owner's
    ("2026-12-01T09:00:30+00:00", "server-2"),     # kept: the old owner had started it
    ("2026-12-01T10:00:30+01:00", "server-2"),     # the same instant in another zone
    (None, "server-1"),                            # no run (the CLI, a test): the DAG's owner
])
def test_a_run_belongs_to_the_owner_when_it_was_due(guard, file_map, monkeypatch, due, owner):
    write_map(file_map, HANDED_OVER)
    for installation in ("server-1", "server-2"):
        monkeypatch.setenv("FAILBACK_INSTALLATION", installation)
        decision = guard.evaluate("dag_a", "t", due)
        assert (decision.owner, decision.decision) == (owner, "run" if installation == owner else "skip")
    assert guard.evaluate("dag_b", "t", due).owner == "server-2", "a DAG without handovers is its owner's"


def test_the_run_due_time_comes_from_the_context(guard):
    import datetime

    when = datetime.datetime(2026, 12, 1, 9, tzinfo=datetime.timezone.utc)
    assert guard.due_time({"dag_run": _Run(when)}) is when
    assert guard.due_time({"dag_run": _Run(None), "data_interval_end": "2026-12-01T08:00:00Z"}) == "2026-12-01T08:00:00Z"
    assert guard.due_time({}) is None and guard.due_time(None) is None


def test_every_decision_is_recorded_on_the_task_instance_under_its_own_key(guard, file_map, monkeypatch):
    pushed = []

    class TI(object):
        def xcom_push(self, key, value):
            pushed.append((key, value))

    class Skip(Exception):
        pass

    monkeypatch.setattr(guard, "_skip_exception", lambda: Skip)
    write_map(file_map, HANDED_OVER)
    context = {"ti": TI(), "dag_run": _Run("2026-12-01T08:00:00Z")}
    with pytest.raises(Skip, match="skipped here"):
        guard.enforce("dag_a", "t", context=context)
    key, skip = pushed[-1]
    assert key == "failback_guard_skip" and skip["owner"] == "server-2" and skip["due"] == "2026-12-01T08:00:00Z"
    assert skip["generation"] == 5 and "belongs to 'server-2'" in skip["reason"]
    monkeypatch.setenv("FAILBACK_INSTALLATION", "server-2")
    assert guard.enforce("dag_a", "t", context=context).runs
    assert pushed[-1][0] == "failback_guard_run" and pushed[-1][1]["installation"] == "server-2"
    (file_map.parent / "fence").write_text("drill\n")
    with pytest.raises(guard.GuardError):
        guard.enforce("dag_a", "t", context=context)
    assert pushed[-1][0] == "failback_guard_error" and "fenced" in pushed[-1][1]["reason"]
    assert len(pushed) == 3, "one record per decision"


def test_unlisted_dag_without_default_is_skipped(guard, file_map):
    decision = guard.evaluate("dag_unknown")
    assert decision.decision == "skip" and decision.owner is None


def test_host_hostname_is_the_fallback_name(guard, file_map, monkeypatch):
    monkeypatch.delenv("FAILBACK_INSTALLATION")
    monkeypatch.setenv("HOST_HOSTNAME", "server-2")
    assert guard.evaluate("dag_b").decision == "run"


@pytest.mark.parametrize(
    "unset,message",
    [
        ("FAILBACK_INSTALLATION", "this installation has no name: set FAILBACK_INSTALLATION (or HOST_HOSTNAME)"),
        ("FAILBACK_PLACEMENT_MAP", "FAILBACK_PLACEMENT_MAP is not set"),
    ],
)
def test_missing_configuration_fails_closed(guard, file_map, monkeypatch, caplog, unset, message):
    monkeypatch.delenv(unset)
    with pytest.raises(guard.GuardError, match=re.escape(message)):
        guard.evaluate("dag_a", "t")
    assert any("decision=error dag=dag_a task=t" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "cannot be read: No such file or directory"),
        ("dag_a: server-1\ndag_a: server-2\n", "duplicate key 'dag_a'"),
        ("dag_a: [server-1\n", "is not valid YAML"),
        ("", "is empty"),
        ("dag_a: 3\n", "maps to 3 (of type int)"),
    ],
)
def test_missing_or_malformed_map_fails_closed(guard, file_map, content, message):
    if content is None:
        file_map.unlink()
    else:
        file_map.write_text(content)
    with pytest.raises(guard.GuardError, match=re.escape(message)):
        guard.evaluate("dag_a")


def test_a_map_that_breaks_after_a_good_read_fails_closed(guard, file_map):
    assert guard.evaluate("dag_a").runs
    write_map(file_map, "dag_a: server-1\ndag_a: server-1\n")
    with pytest.raises(guard.GuardError, match="duplicate key"):
        guard.evaluate("dag_a")


# ----------------------------------------------------------------------------- file caching


def test_file_map_is_parsed_again_only_when_it_changes(guard, file_map, monkeypatch):
    parses = []
    real_parse = guard.placement.parse_map
    monkeypatch.setattr(guard.placement, "parse_map", lambda *a, **k: parses.append(1) or real_parse(*a, **k))
    for _call in range(50):
        assert guard.evaluate("dag_a").runs
    assert len(parses) == 1
    write_map(file_map, '"@failback": {generation: 5}\ndag_a: server-2\n')
    assert guard.evaluate("dag_a").decision == "skip"
    assert guard.evaluate("dag_a").generation == 5
    assert len(parses) == 2


def test_in_place_rewrite_is_noticed_too(guard, file_map):
    assert guard.evaluate("dag_a").runs
    with open(file_map, "w") as handle:  # not atomic, same inode: size/mtime/ctime change
        handle.write('"@failback": {generation: 6}\ndag_a: server-2\n')
    assert guard.evaluate("dag_a").decision == "skip"


# ----------------------------------------------------------------------------- fencing


def test_fence_file_fails_every_task_until_it_is_removed(guard, file_map):
    fence = file_map.parent / "fence"
    fence.write_text("fenced at 2026-11-21T00:00:00Z: restarted by systemd\n")
    with pytest.raises(guard.GuardError, match="installation 'server-1' is fenced .*restarted by systemd"):
        guard.evaluate("dag_a")
    with pytest.raises(guard.GuardError, match="is fenced"):
        guard.evaluate("dag_b")  # even DAGs it would skip: the map cannot be trusted
    fence.unlink()
    assert guard.evaluate("dag_a").runs


def test_fence_file_can_be_placed_elsewhere(guard, file_map, tmp_path, monkeypatch):
    fence = tmp_path / "my-fence"
    monkeypatch.setenv("FAILBACK_FENCE_FILE", str(fence))
    assert guard.evaluate("dag_a").runs
    fence.write_text("")
    with pytest.raises(guard.GuardError, match="no reason given"):
        guard.evaluate("dag_a")


# ----------------------------------------------------------------------------- URL maps


MAP_V1 = '"@failback": {generation: 1}\ndag_a: server-1\n'
MAP_V2 = '"@failback": {generation: 2}\ndag_a: server-2\n'


@pytest.fixture
def served(guard, monkeypatch):
    with lab.MapServer(MAP_V1) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        monkeypatch.setenv("FAILBACK_INSTALLATION", "server-1")
        yield server


def test_url_map_is_cached_for_the_ttl(guard, served, monkeypatch):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "3600")
    for _call in range(20):
        assert guard.evaluate("dag_a").runs
    assert served.requests == 1


def test_url_map_is_revalidated_with_conditional_requests(guard, served, monkeypatch):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    for _call in range(3):
        assert guard.evaluate("dag_a").runs
    assert served.requests == 3 and served.not_modified == 2
    assert "If-None-Match" in served.headers_seen[-1]
    served.body = MAP_V2
    decision = guard.evaluate("dag_a")
    assert (decision.decision, decision.generation) == ("skip", 2)


def test_url_cache_is_shared_by_task_processes(guard, served, monkeypatch):
    """A new task process (fresh module state) reuses the on-disk cache within the TTL."""
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "3600")
    assert guard.evaluate("dag_a").runs
    guard._SOURCES.clear()
    assert guard.evaluate("dag_a").runs
    assert served.requests == 1


def test_unreachable_url_fails_closed_without_max_stale(guard, served, monkeypatch):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    assert guard.evaluate("dag_a").runs
    served.stop()
    with pytest.raises(guard.GuardError, match="cannot be fetched"):
        guard.evaluate("dag_a")


def test_unreachable_url_uses_the_cache_within_max_stale(guard, served, monkeypatch, caplog):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    monkeypatch.setenv("FAILBACK_PLACEMENT_MAX_STALE", "60")
    assert guard.evaluate("dag_a").runs
    served.stop()
    assert guard.evaluate("dag_a").runs
    assert any("using the cached map (generation 1)" in r.getMessage() for r in caplog.records)
    source = guard.current_source()
    source._entry["ok_at"] = time.time() - 61  # the lease ran out
    with pytest.raises(guard.GuardError, match="cannot be fetched"):
        guard.evaluate("dag_a")


def test_the_lease_counts_from_the_last_confirming_request_and_the_map_comes_back(guard, served, monkeypatch):
    """FAILBACK_PLACEMENT_LEASE: the cached map decides while the last request that confirmed it was
    sent at most L seconds ago; past that every task fails (naming the lease), and the first answer
    that comes again restores decisions without anything else."""
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "90")
    monkeypatch.setenv("FAILBACK_PLACEMENT_MAX_STALE", "100000")  # ignored: the lease is set
    before = time.time()
    assert guard.evaluate("dag_a").runs
    source = guard.current_source()
    assert before - 1 <= source.confirmed_at() <= time.time()
    served.status = 503  # the authority is down
    source._entry["ok_at"] = time.time() - 89
    assert guard.evaluate("dag_a").runs
    source._entry["ok_at"] = time.time() - 91
    with pytest.raises(guard.GuardError, match=r"last confirmed 9\d s ago, past its lease of 90 s"):
        guard.evaluate("dag_a")
    served.status = None  # back: the next task decides again
    assert guard.evaluate("dag_a").runs
    assert time.time() - source.confirmed_at() < 5


@pytest.mark.parametrize("lease, ttl, message", [
    ("10", "30", "FAILBACK_PLACEMENT_LEASE=10 is shorter than FAILBACK_PLACEMENT_TTL=30.0"),
    ("-5", "0", "must not be negative"),
    ("nan", "0", "not a finite number"),
    ("soon", "0", "not a number of seconds"),
])
def test_a_bad_lease_fails_every_task_naming_the_value(guard, served, monkeypatch, lease, ttl, message):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", ttl)
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", lease)
    with pytest.raises(guard.GuardError, match=re.escape(message)):
        guard.evaluate("dag_a")


def test_status_reports_the_lease_age_of_a_url_map(guard, guard_dir, served, monkeypatch):
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "120")
    code, info = guard._status()
    assert code == 0 and info["lease"] == 120.0 and 0 <= info["lease_age"] < 5 and info["generation"] == 1


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_fail_closed(guard, served, status):
    served.status = status
    with pytest.raises(guard.GuardError, match="answered HTTP %d" % status):
        guard.evaluate("dag_a")


def test_malformed_url_map_fails_closed(guard, served):
    served.body = "dag_a: server-1\ndag_a: server-2\n"
    with pytest.raises(guard.GuardError, match="duplicate key"):
        guard.evaluate("dag_a")


def test_an_older_generation_from_the_url_is_ignored_but_does_not_renew_the_lease(guard, served, monkeypatch, caplog):
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "60")
    served.body = MAP_V2
    assert guard.evaluate("dag_a").generation == 2
    served.body = MAP_V1  # a lagging mirror
    decision = guard.evaluate("dag_a")
    assert (decision.generation, decision.decision) == (2, "skip")
    assert any("older than the cached generation 2" in r.getMessage() for r in caplog.records)
    guard.current_source()._entry["ok_at"] -= 61  # only the older map answered since: the lease ran out
    with pytest.raises(guard.GuardError, match="served generation 1, older than the cached generation 2.*past its lease"):
        guard.evaluate("dag_a")


def test_a_cached_map_from_the_future_or_in_a_shared_directory_is_not_trusted(guard, served, monkeypatch, tmp_path):
    """A cache entry dated ahead of this clock (a clock stepped back, an edited file) never decides
    without a request; nor does a cache directory that another user could have written."""
    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "3600")
    assert guard.evaluate("dag_a").runs
    source = guard.current_source()
    _directory, path = source._cache_file()
    with open(path) as handle:
        entry = json.load(handle)
    entry.update(checked_at=time.time() + 86400, ok_at=time.time() + 86400)
    with open(path, "w") as handle:
        json.dump(entry, handle)
    guard._SOURCES.clear()
    served.stop()
    with pytest.raises(guard.GuardError, match="cannot be fetched"):
        guard.evaluate("dag_a")
    shared = tmp_path / "shared-cache"
    shared.mkdir(mode=0o777)
    os.chmod(str(shared), 0o777)
    monkeypatch.setenv("FAILBACK_PLACEMENT_CACHE_DIR", str(shared))
    assert not guard.current_source()._cache_dir_ok(str(shared))


def test_a_request_that_hangs_counts_against_the_lease(guard, served, monkeypatch):
    """The lease is checked when the failed request ends, not when it started: an answer that never
    comes (a server that accepts and says nothing) cannot stretch the lease (review finding)."""
    import socket

    monkeypatch.setenv("FAILBACK_PLACEMENT_TTL", "0")
    monkeypatch.setenv("FAILBACK_PLACEMENT_LEASE", "2")
    monkeypatch.setenv("FAILBACK_PLACEMENT_TIMEOUT", "1.5")
    assert guard.evaluate("dag_a").runs
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # connections are queued and never answered
    source = guard.current_source()
    source.url = "http://127.0.0.1:%d/placement.yml" % silent.getsockname()[1]
    source._entry["ok_at"] = time.time() - 1.0
    try:
        with pytest.raises(guard.GuardError, match="past its lease of 2 s"):
            guard.evaluate("dag_a")
    finally:
        silent.close()


def test_a_map_cut_off_before_its_content_length_fails_closed(guard, monkeypatch):
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    body = MAP_V1.encode("utf-8")

    def serve_once():
        conn, _addr = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (len(body) + 40) + body)
        conn.close()

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", "http://127.0.0.1:%d/placement.yml" % listener.getsockname()[1])
    monkeypatch.setenv("FAILBACK_INSTALLATION", "server-1")
    with pytest.raises(guard.GuardError, match="the answer ended after %d of %d bytes" % (len(body), len(body) + 40)):
        guard.evaluate("dag_a")
    thread.join(5)
    listener.close()


def test_https_map_with_a_private_ca_and_a_token(guard, tmp_path, monkeypatch):
    tls = lab.make_tls_cert(str(tmp_path))
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    with lab.MapServer(MAP_V1, tls=tls) as server:
        monkeypatch.setenv("FAILBACK_PLACEMENT_MAP", server.url)
        monkeypatch.setenv("FAILBACK_INSTALLATION", "server-1")
        with pytest.raises(guard.GuardError, match="CERTIFICATE_VERIFY_FAILED"):
            guard.evaluate("dag_a")
        monkeypatch.setenv("FAILBACK_PLACEMENT_CA_FILE", tls[0])
        monkeypatch.setenv("FAILBACK_PLACEMENT_TOKEN_FILE", str(token))
        assert guard.evaluate("dag_a").runs
        assert server.headers_seen[-1]["Authorization"] == "Bearer s3cr3t-token"


@pytest.mark.parametrize("name,value", [("FAILBACK_PLACEMENT_TTL", "soon"), ("FAILBACK_PLACEMENT_TIMEOUT", "-1")])
def test_bad_numbers_in_the_environment_fail_closed(guard, served, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(guard.GuardError, match=name):
        guard.evaluate("dag_a")


# ----------------------------------------------------------------------------- hooks


class _TI(object):
    dag_id, task_id = "dag_a", "t1"


def test_guarded_hook_runs_the_guard_before_the_original_and_only_once(guard, file_map, monkeypatch):
    calls = []

    def original(context):
        calls.append("original")
        return "result"

    hook = guard.guarded_hook(original)
    assert guard.guarded_hook(hook) is hook, "wrapping twice must not guard twice"
    monkeypatch.setattr(guard, "enforce", lambda dag_id, task_id=None, context=None: calls.append(("guard", dag_id, task_id)))
    assert hook({"ti": _TI()}) == "result"
    assert calls == [("guard", "dag_a", "t1"), "original"]


# ----------------------------------------------------------------------------- CLI


def cli(guard_dir, env, *args):
    full_env = dict((k, v) for k, v in os.environ.items() if not k.startswith("FAILBACK_"))
    full_env.update(env)
    return subprocess.run([sys.executable, os.path.join(guard_dir, "failback_guard.py")] + list(args),
                          env=full_env, capture_output=True, text=True, timeout=60, check=False)


def test_cli_check_status_and_fence(guard_dir, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text('"@failback": {generation: 9}\ndag_a: server-1\n')
    env = {"FAILBACK_INSTALLATION": "server-1", "FAILBACK_PLACEMENT_MAP": str(path)}
    run = cli(guard_dir, env, "check", "dag_a")
    assert run.returncode == 0 and json.loads(run.stdout)["decision"] == "run"
    skip = cli(guard_dir, env, "check", "dag_b")
    assert skip.returncode == 3 and json.loads(skip.stdout)["decision"] == "skip"
    status = json.loads(cli(guard_dir, env, "status").stdout)
    assert (status["generation"], status["owned"], status["fenced"]) == (9, ["dag_a"], None)

    fence = cli(guard_dir, {}, "--map", str(path), "fence", "--reason", "restarted by systemd")
    assert fence.returncode == 0 and fence.stdout.strip() == str(tmp_path / "fence")
    assert "restarted by systemd" in (tmp_path / "fence").read_text()
    fenced = cli(guard_dir, env, "check", "dag_a")
    assert fenced.returncode == 1 and "is fenced" in json.loads(fenced.stdout)["reason"]
    status = cli(guard_dir, env, "status")
    assert status.returncode == 0 and "restarted by systemd" in json.loads(status.stdout)["fenced"]

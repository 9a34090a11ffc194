"""The guard inside real Airflow 3 (airflow dags test), installed as the airflow_placement role lays it out.

Every task leaves a side effect in $FAILBACK_TEST_OUT, so "ran" and "did not run" are facts on disk,
not only states in the database.
"""

from __future__ import annotations

import re

import pytest

import failback_testlib as lab

PROBE_TASKS = {"first": "success", "mapped[0]": "success", "mapped[1]": "success", "bash": "success", "hooked": "success"}
MAP = '"@failback": {generation: 3}\nfailback_probe: server-1\nfailback_handover: server-1\nfailback_docker: server-1\n'


def guard_lines(output, dag_id):
    return re.findall(r"failback guard: decision=(\w+) dag=%s task=(\S+)" % re.escape(dag_id), output)


def test_owner_runs_every_task(run_dag, placement_map):
    run = run_dag("failback_probe", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == PROBE_TASKS, run
    assert run.side_effects() == ["bash", "first", "hooked", "mapped-1", "mapped-2", "user_pre_execute"]
    assert sorted(guard_lines(run.output, "failback_probe")) == [
        ("run", "bash"), ("run", "first"), ("run", "hooked"), ("run", "mapped"), ("run", "mapped")]


def test_non_owner_skips_every_task_before_anything_runs(run_dag, placement_map):
    run = run_dag("failback_probe", FAILBACK_INSTALLATION="server-2", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.rc == 0, run
    assert run.states["first"] == "skipped", run
    assert set(run.states.values()) == {"skipped"}, run
    assert run.side_effects() == [], "no task (nor the user's pre_execute hook) may run on a non-owner"
    assert ("skip", "first") in guard_lines(run.output, "failback_probe")
    assert "owned by 'server-1', this installation is 'server-2' (placement map generation 3); skipped here" in run.output


def test_host_hostname_names_the_installation_like_in_the_seed(run_dag, placement_map):
    run = run_dag("failback_probe", HOST_HOSTNAME="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == PROBE_TASKS, run


@pytest.mark.parametrize(
    "text,message",
    [
        (None, "placement map .* cannot be read: No such file or directory"),
        ("failback_probe: server-1\nfailback_probe: server-2\n", "duplicate key 'failback_probe' on line 2"),
        ("failback_probe: [server-1\n", "is not valid YAML"),
    ],
    ids=["missing", "duplicate-key", "bad-yaml"],
)
def test_missing_or_malformed_map_fails_the_task(run_dag, placement_map, tmp_path, text, message):
    path = placement_map(text) if text is not None else str(tmp_path / "nowhere" / "placement.yml")
    run = run_dag("failback_probe", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=path)
    assert run.rc != 0
    assert run.states["first"] == "failed", run
    assert run.side_effects() == []
    assert re.search(message, run.output), run


def test_fence_fails_the_task(run_dag, placement_map, tmp_path):
    path = placement_map(MAP)
    (tmp_path / "placement" / "fence").write_text("fenced at 2026-11-21T00:00:00Z: restarted by systemd\n")
    run = run_dag("failback_probe", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=path)
    assert run.states["first"] == "failed", run
    assert run.side_effects() == []
    assert "installation 'server-1' is fenced" in run.output and "restarted by systemd" in run.output


def test_unnamed_installation_fails_the_task(run_dag, placement_map):
    run = run_dag("failback_probe", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states["first"] == "failed", run
    assert "this installation has no name" in run.output


def test_a_map_change_on_disk_is_seen_by_the_next_task(run_dag, placement_map):
    """The DAG moves with a handover before this run was due: the run moves too, its next task is skipped."""
    path = placement_map(MAP)
    run = run_dag("failback_handover", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=path,
                  FAILBACK_TEST_HANDOVER="before")
    assert run.states == {"hand_over": "success", "after": "skipped"}, run
    assert run.side_effects() == ["hand_over"]
    assert guard_lines(run.output, "failback_handover") == [("run", "hand_over"), ("skip", "after")]
    assert run.guard_records["after"][-1]["owner"] == "server-2"


def test_a_run_in_flight_during_a_switchover_finishes_where_it_started(run_dag, placement_map):
    """A planned switchover (handover now): the run was due before it, so it stays with server-1."""
    path = placement_map(MAP)
    run = run_dag("failback_handover", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=path,
                  FAILBACK_TEST_HANDOVER="now")
    assert run.states == {"hand_over": "success", "after": "success"}, run
    assert run.side_effects() == ["after", "hand_over"]
    assert guard_lines(run.output, "failback_handover") == [("run", "hand_over"), ("run", "after")]
    assert "belongs to 'server-1' (DAG moved to 'server-2'" in run.guard_records["after"][-1]["reason"]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_url_map_served_from_localhost(run_dag, tmp_path, tls):
    cert = lab.make_tls_cert(str(tmp_path)) if tls else None
    extra = {"FAILBACK_PLACEMENT_CA_FILE": cert[0]} if tls else {}
    with lab.MapServer(MAP, tls=cert) as server:
        owner = run_dag("failback_probe", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=server.url,
                        FAILBACK_PLACEMENT_TTL=0, **extra)
        other = run_dag("failback_probe", FAILBACK_INSTALLATION="server-2", FAILBACK_PLACEMENT_MAP=server.url,
                        FAILBACK_PLACEMENT_TTL=0, **extra)
        assert server.requests >= 2 and server.not_modified >= 1, "later tasks must revalidate with the ETag"
    assert owner.states == PROBE_TASKS, owner
    assert len(owner.side_effects()) == 6
    assert set(other.states.values()) == {"skipped"}, other
    assert other.side_effects() == []


def test_unreachable_url_fails_the_task(run_dag, tmp_path):
    server = lab.MapServer(MAP)
    url = server.url
    server.stop()
    run = run_dag("failback_probe", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=url)
    assert run.states["first"] == "failed", run
    assert "cannot be fetched" in run.output


def test_guarded_docker_operator_skips_on_a_non_owner(run_dag, placement_map):
    run = run_dag("failback_docker", FAILBACK_INSTALLATION="server-2", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == {"container": "skipped"}, run
    assert guard_lines(run.output, "failback_docker") == [("skip", "container")], "exactly one guard decision"


def test_guarded_docker_operator_goes_to_docker_on_the_owner(run_dag, placement_map):
    """On the owner the guard lets the task through: with no Docker socket the task fails in Docker's client."""
    run = run_dag("failback_docker", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == {"container": "failed"}, run
    assert guard_lines(run.output, "failback_docker") == [("run", "container")]
    assert "nonexistent/docker.sock" in run.output or "DockerException" in run.output, run

"""DAG shapes that slipped past a guard living in the ``pre_execute`` hook (issue: split brain).

Each was found by running it: a mapped ``pre_execute`` argument or ``expand_kwargs`` replaced the
hook, a templated field ran a macro before the hook, a task with ``start_from_trigger`` never met a
worker, and a deferred task resumed on an installation that had lost its DAG meanwhile.  The guard
now runs in ``prepare_for_execution``; these tests keep every shape closed, and check the record
the guard leaves on each task instance it does not let run.
"""

from __future__ import annotations

import pytest

SHAPES = ("failback_mapped_hooks", "failback_trigger_start", "failback_macro", "failback_deferred",
          "failback_deferred_inflight", "failback_trigger_shapes")
MAP = '"@failback": {generation: 3}\n' + "".join("%s: server-1\n" % dag_id for dag_id in SHAPES)
MAPPED = ["kwargs_loose[0]", "kwargs_strict[0]", "kwargs_strict[1]"] + ["mapped_pre_execute[%d]" % i for i in range(4)]


def test_owner_runs_mapped_hooks_and_mapped_keyword_arguments(run_dag, placement_map):
    run = run_dag("failback_mapped_hooks", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert sorted(run.states) == MAPPED, run
    assert set(run.states.values()) == {"success"}, run
    assert run.side_effects() == ["loose-1", "mapped-1", "mapped-2", "pre_hook-1", "pre_hook-2", "strict-1", "strict-2"]
    assert sorted(run.guard_records) == MAPPED
    assert set(r[-1]["decision"] for r in run.guard_records.values()) == {"run"}, "every decision is recorded"


def test_non_owner_runs_no_mapped_hook_and_records_every_skip(run_dag, placement_map):
    run = run_dag("failback_mapped_hooks", FAILBACK_INSTALLATION="server-2", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.rc == 0, run
    assert set(run.states.values()) == {"skipped"}, run
    assert run.side_effects() == [], "a mapped pre_execute (expand or expand_kwargs) ran on a non-owner"
    assert sorted(run.guard_records) == MAPPED
    for records in run.guard_records.values():
        assert len(records) == 1
        record = records[0]
        assert record["decision"] == "skip"
        assert (record["owner"], record["installation"], record["generation"]) == ("server-1", "server-2", 3)
        assert record["at"].endswith("Z")


@pytest.mark.parametrize("installation,effects,state", [("server-1", ["macro"], "success"), ("server-2", [], "skipped")])
def test_templated_fields_are_rendered_only_on_the_owner(run_dag, placement_map, installation, effects, state):
    run = run_dag("failback_macro", FAILBACK_INSTALLATION=installation, FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == {"templated": state}, run
    assert run.side_effects() == effects


TRIGGER_SHAPES = {"docs_shape": ["docs_shape", "docs_shape_complete_docs_shape"],
                  "stub_shape": ["stub_shape", "stub_shape_complete"]}


@pytest.mark.parametrize("where", ["owner", "non-owner", "no map", "fenced"])
def test_operators_that_start_in_the_triggerer_run_as_written_on_the_owner_only(run_dag, placement_map, tmp_path, where):
    """The docs' shape (no execute()) and a stub execute(): on the owner the task starts with its own trigger and
    resumes in its next_method, never in execute(); anywhere else the trigger never starts."""
    env = {"FAILBACK_INSTALLATION": "server-2" if where == "non-owner" else "server-1",
           "FAILBACK_PLACEMENT_MAP": placement_map(MAP) if where != "no map" else str(tmp_path / "absent.yml")}
    if where == "fenced":
        (tmp_path / "placement" / "fence").write_text("fenced at 2026-12-07T00:00:00Z: a test\n")
    run = run_dag("failback_trigger_shapes", **env)
    if where == "owner":
        assert run.states == {"docs_shape": "success", "stub_shape": "success"}, run
        assert run.side_effects() == sorted(sum(TRIGGER_SHAPES.values(), [])), run
        assert "stub_shape_execute" not in run.side_effects()
        return
    expected = "skipped" if where == "non-owner" else "failed"
    assert run.states == {"docs_shape": expected, "stub_shape": expected}, run
    assert run.side_effects() == [], "a trigger or a task body ran on %s" % where
    assert "Override me" not in run.output


def test_start_from_trigger_starts_in_a_worker_where_the_guard_decides(run_dag, placement_map):
    owner = run_dag("failback_trigger_start", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert owner.states == {"trigger_started": "success"}, owner
    assert owner.side_effects() == ["trigger_started", "trigger_started_complete"]
    assert "starts in a worker, not in the triggerer" in owner.output
    other = run_dag("failback_trigger_start", FAILBACK_INSTALLATION="server-2", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert other.states == {"trigger_started": "skipped"}, other
    assert other.side_effects() == [], "the trigger ran on a non-owner"


def test_a_deferred_task_does_not_resume_where_its_run_moved_away(run_dag, placement_map):
    """The trigger gives the DAG to server-2, handover before the run was due: the resume is skipped and recorded."""
    run = run_dag("failback_deferred", FAILBACK_INSTALLATION="server-1", FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == {"deferred": "skipped"}, run
    assert run.side_effects() == ["deferred_start", "deferred_trigger"], "the resume ran after the run moved away"
    first, resume = run.guard_records["deferred"]
    assert first["decision"] == "run"
    assert (resume["decision"], resume["owner"], resume["installation"], resume["generation"]) == (
        "skip", "server-2", "server-1", 4)


def test_a_deferred_task_in_flight_during_a_switchover_resumes_where_it_started(run_dag, placement_map):
    """A planned switchover while the task is deferred: its run was due before the handover and finishes here."""
    run = run_dag("failback_deferred_inflight", FAILBACK_INSTALLATION="server-1",
                  FAILBACK_PLACEMENT_MAP=placement_map(MAP))
    assert run.states == {"deferred": "success"}, run
    assert run.side_effects() == ["deferred_resumed", "deferred_start", "deferred_trigger"]
    # Both decisions (start and resume) were "run": the resume's record replaces the first one.
    assert [r["decision"] for r in run.guard_records["deferred"]] == ["run"]


@pytest.mark.parametrize("condition", ["non-owner", "missing-map", "fence"])
@pytest.mark.parametrize("dag_id", ["failback_mapped_hooks", "failback_trigger_start", "failback_macro"])
def test_no_shape_does_anything_where_the_guard_says_no(run_dag, placement_map, tmp_path, dag_id, condition):
    path = placement_map(MAP)
    installation = "server-2" if condition == "non-owner" else "server-1"
    if condition == "missing-map":
        path = str(tmp_path / "nowhere" / "placement.yml")
    elif condition == "fence":
        (tmp_path / "placement" / "fence").write_text("fenced at 2026-12-01T00:00:00Z: drill\n")
    run = run_dag(dag_id, FAILBACK_INSTALLATION=installation, FAILBACK_PLACEMENT_MAP=path)
    assert run.side_effects() == [], "%s did something on a %s" % (dag_id, condition)
    expected = "skipped" if condition == "non-owner" else "failed"
    assert run.states and set(run.states.values()) == {expected}, run
    assert sorted(run.guard_records) == sorted(run.states), "every task instance records why"
    decisions = set(records[-1]["decision"] for records in run.guard_records.values())
    assert decisions == {"skip" if condition == "non-owner" else "error"}
    if condition == "fence":
        assert all("is fenced" in records[-1]["reason"] for records in run.guard_records.values())

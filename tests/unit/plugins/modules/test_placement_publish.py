"""Tests of failback.airflow.placement_publish (one-step publish on an installation), through main()."""

from __future__ import annotations

import os
import stat

import pytest
from failback_ansible import run_module

from ansible_collections.failback.airflow.plugins.module_utils import placement
from ansible_collections.failback.airflow.plugins.modules import placement_publish

KNOWN = ["server-1", "server-2"]
GEN2 = '"@failback": {generation: 2}\ndag_a: server-2\n'


def run(capsys, check_mode=False, diff=False, **args):
    return run_module(capsys, placement_publish, check_mode, diff, **args)


def test_publish_creates_the_directory_writes_and_lifts_the_fence_then_changes_nothing(capsys, tmp_path):
    path = tmp_path / "placement" / "placement.yml"
    first = run(capsys, path=str(path), content=GEN2, installations=KNOWN, mode="0644")
    assert first["changed"] and first["written"] and first["generation"] == 2 and first["previous_generation"] is None
    assert first["map"]["dag_a"] == "server-2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    (tmp_path / "placement" / "fence").write_text("fenced at t: boot\n")
    second = run(capsys, path=str(path), content=GEN2, installations=KNOWN)
    assert second["changed"] and not second["written"] and second["fence_changed"] and second["fenced"] is None
    third = run(capsys, path=str(path), content=GEN2, installations=KNOWN)
    assert not third["changed"]


def test_read_reports_what_the_installation_holds_and_changes_nothing(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    missing = run(capsys, path=str(tmp_path / "nothing" / "placement.yml"), state="read")
    assert missing["exists"] is False and missing["map"] is None and not missing["changed"]
    path.write_text(GEN2)
    (tmp_path / "fence").write_text("fenced at t: boot\n")
    held = run(capsys, path=str(path), state="read")
    assert held["generation"] == 2 and held["fenced"] == "fenced at t: boot" and not held["changed"]


def test_an_older_map_is_refused_and_the_file_is_untouched(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text(GEN2)
    before = path.read_bytes()
    result = run(capsys, path=str(path), content="dag_a: server-1\n", installations=KNOWN)
    assert result["rc"] == 1
    assert "refusing to replace placement map generation 2 with older generation 0; nothing was changed" in result["msg"]
    assert path.read_bytes() == before


@pytest.mark.parametrize("args, message", [
    ({"mode": "abc"}, "mode must be in octal or symbolic form"),
    ({"owner": "nosuchuser"}, "failed to look up user nosuchuser"),
])
def test_bad_file_arguments_leave_the_map_and_no_temporary_file(capsys, tmp_path, args, message):
    path = tmp_path / "placement.yml"
    path.write_text("dag_a: server-1\n")
    result = run(capsys, path=str(path), content=GEN2, installations=KNOWN, **args)
    assert result["rc"] == 1 and message in result["msg"]
    assert path.read_text() == "dag_a: server-1\n"
    assert os.listdir(tmp_path) == ["placement.yml"]


def test_a_file_that_is_no_map_is_replaced(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text("dag_a: [broken\n")
    result = run(capsys, path=str(path), content=GEN2, installations=KNOWN)
    assert result["written"] and placement.read_map_file(str(path)).generation == 2


def test_fenced_writes_the_marker_and_check_mode_writes_nothing(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text(GEN2)
    checked = run(capsys, check_mode=True, path=str(path), state="fenced", reason="revoke failed")
    assert checked["changed"] and not (tmp_path / "fence").exists()
    fenced = run(capsys, path=str(path), state="fenced", reason="revoke failed")
    assert fenced["changed"] and "revoke failed" in (tmp_path / "fence").read_text()
    assert placement.read_map_file(str(path)).generation == 2


def test_check_mode_and_diff(capsys, tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text("dag_a: server-1\n")
    result = run(capsys, check_mode=True, diff=True, path=str(path), content=GEN2, installations=KNOWN)
    assert result["changed"] and 'dag_a: "server-2"' in result["diff"]["after"]
    assert path.read_text() == "dag_a: server-1\n"

"""Tests of the failback.airflow.dag_placement module, run through main() with real files."""

from __future__ import annotations

import os

import pytest
from failback_ansible import run_module

from ansible_collections.failback.airflow.plugins.module_utils import placement
from ansible_collections.failback.airflow.plugins.modules import dag_placement

KNOWN = ["server-1", "server-2", "k8s-prod"]
START = '"@failback":\n  generation: 3\ndag_a: server-1\ndag_b: server-1\ndag_c: server-2\n'


def run(capsys, check_mode=False, diff=False, **args):
    args.setdefault("installations", KNOWN)
    return run_module(capsys, dag_placement, check_mode, diff, **args)


@pytest.fixture
def map_file(tmp_path):
    path = tmp_path / "placement.yml"
    path.write_text(START)
    return path


def fingerprint(path):
    if not path.exists():
        return None
    st = path.stat()
    return path.read_bytes(), st.st_ino, st.st_mtime_ns, st.st_mode


def test_assign_creates_the_file_then_changes_nothing(capsys, tmp_path):
    path = tmp_path / "new.yml"
    first = run(capsys, path=str(path), assign={"dag_x": "server-2"}, updated_by="tester")
    assert first["changed"] and first["generation"] == 1
    assert first["after"]["dag_x"] == "server-2"
    assert first["after"]["@failback"]["updated_by"] == "tester"
    before = fingerprint(path)
    second = run(capsys, path=str(path), assign={"dag_x": "server-2"}, updated_by="tester")
    assert not second["changed"] and second["generation"] == 1
    assert fingerprint(path) == before


def test_check_mode_predicts_the_change_and_writes_nothing(capsys, map_file):
    before = fingerprint(map_file)
    result = run(capsys, check_mode=True, diff=True, path=str(map_file), move={"from": "server-1", "to": "k8s-prod"})
    assert result["changed"] and result["generation"] == 4
    assert result["changed_dags"] == {"dag_a": {"from": "server-1", "to": "k8s-prod"},
                                      "dag_b": {"from": "server-1", "to": "k8s-prod"}}
    assert 'dag_a: "k8s-prod"' in result["diff"]["after"]
    assert result["diff"]["before"] == START
    assert fingerprint(map_file) == before


def test_move_then_repeat_is_idempotent(capsys, map_file):
    first = run(capsys, path=str(map_file), move={"from": "server-1", "to": "server-2"})
    assert first["changed"] and first["generation"] == 4
    assert placement.read_map_file(str(map_file)).dags == {"dag_a": "server-2", "dag_b": "server-2", "dag_c": "server-2"}
    before = fingerprint(map_file)
    second = run(capsys, path=str(map_file), move={"from": "server-1", "to": "server-2"})
    assert not second["changed"] and second["changed_dags"] == {}
    assert fingerprint(map_file) == before


def test_move_listed_dags_and_query(capsys, map_file):
    result = run(capsys, path=str(map_file), move={"dags": ["dag_b"], "to": "k8s-prod"}, query=["dag_a", "dag_b", "nope"])
    assert result["owners"] == {"dag_a": "server-1", "dag_b": "k8s-prod", "nope": None}
    assert result["installations"] == ["k8s-prod", "server-1", "server-2"]


def test_query_alone_reads_without_changing(capsys, map_file):
    before = fingerprint(map_file)
    result = run(capsys, path=str(map_file), query=["dag_c"])
    assert not result["changed"] and result["owners"] == {"dag_c": "server-2"} and result["generation"] == 3
    assert fingerprint(map_file) == before


def test_publish_content_forward_only(capsys, map_file):
    newer = placement.dump_map(placement.PlacementMap({"dag_a": "server-2"}, generation=9))
    result = run(capsys, path=str(map_file), content=newer, mode="0640")
    assert result["changed"] and result["generation"] == 9
    assert map_file.read_text() == newer
    assert oct(map_file.stat().st_mode & 0o777) == "0o640"
    again = run(capsys, path=str(map_file), content=newer, mode="0640")
    assert not again["changed"]


def test_mode_change_alone_is_reported(capsys, map_file):
    os.chmod(map_file, 0o600)
    result = run(capsys, path=str(map_file), mode="0644")
    assert result["changed"]
    assert oct(map_file.stat().st_mode & 0o777) == "0o644"


BAD = [
    (dict(assign={"dag_x": "server-9"}), "owner of assigned DAG 'dag_x' 'server-9' is not a known installation"),
    (dict(assign={"bad id": "server-1"}), "assigned DAG 'bad id' is not a valid Airflow DAG id"),
    (dict(assign={"dag_x": 5}), "owner of assigned DAG 'dag_x' 5 is of type int"),
    (dict(move={"from": "server-1", "to": "server-9"}), "failover target 'server-9' is not a known installation"),
    (dict(move={"from": "nowhere", "to": "server-2"}), "failover source 'nowhere' is not a known installation"),
    (dict(move={"from": "server-2", "to": "server-2"}), "failover source and target are both 'server-2'"),
    (dict(move={"from": "server-1", "dags": ["dag_c"], "to": "k8s-prod"}), "DAG 'dag_c' is owned by 'server-2'"),
    (dict(move={"dags": ["ghost"], "to": "k8s-prod"}), "DAG 'ghost' is not in the placement map"),
    (dict(move={"to": "k8s-prod"}), "say what to move"),
    (dict(move={"from": "server-1"}), "missing required arguments: to found in move"),
    (dict(content='"@failback": {generation: 2}\ndag_a: server-2\n'), "refusing to replace placement map generation 3 with older generation 2"),
    (dict(content='"@failback": {generation: 3}\ndag_a: server-2\n'), "generation 3 already exists with a different placement"),
    (dict(content="dag_a: [oops\n"), "content is not valid YAML"),
    (dict(content="dag_a: server-1\ndag_a: server-2\n"), "duplicate key 'dag_a' on line 2"),
    (dict(content="dag_a: server-7\n"), "owner of DAG 'dag_a' 'server-7' is not a known installation"),
    (dict(content="dag_a: server-1\n", assign={"b": "server-1"}), "parameters are mutually exclusive: content|assign"),
    (dict(default_owner="server-9"), "default owner 'server-9' is not a known installation"),
    (dict(query=["no such dag"]), "queried DAG 'no such dag' is not a valid Airflow DAG id"),
    (dict(remove=["bad/id"]), "listed DAG 'bad/id' is not a valid Airflow DAG id"),
    (dict(installations=["server-1", "server-1"], query=["dag_a"]), "known installations list server-1 more than once"),
    (dict(installations=["server-1"], query=["dag_a"]), "owner of DAG 'dag_c' 'server-2' is not a known installation"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m[:60] for _a, m in BAD])
def test_bad_input_fails_clearly_and_leaves_the_file_untouched(capsys, map_file, args, message):
    before = fingerprint(map_file)
    result = run(capsys, path=str(map_file), **args)
    assert result.get("failed") and result["rc"] == 1
    assert message in result["msg"]
    assert fingerprint(map_file) == before
    assert sorted(os.listdir(map_file.parent)) == ["placement.yml"], "no temporary file may be left behind"


@pytest.mark.parametrize(
    "text,message",
    [
        ("dag_a: server-1\ndag_a: server-2\n", "duplicate key 'dag_a'"),
        ("dag_a: 7\n", "maps to 7 (of type int)"),
        ("", "is empty"),
    ],
)
def test_a_malformed_file_is_reported_and_kept(capsys, map_file, text, message):
    map_file.write_text(text)
    before = fingerprint(map_file)
    result = run(capsys, path=str(map_file), assign={"dag_z": "server-1"})
    assert result["failed"] and message in result["msg"] and str(map_file) in result["msg"]
    assert fingerprint(map_file) == before


def test_missing_file_without_create_is_an_error(capsys, tmp_path):
    path = tmp_path / "absent.yml"
    result = run(capsys, path=str(path), assign={"dag_z": "server-1"}, create=False)
    assert result["failed"] and "does not exist (create=false)" in result["msg"]
    assert not path.exists()


def test_missing_directory_is_an_error(capsys, tmp_path):
    path = tmp_path / "nowhere" / "placement.yml"
    result = run(capsys, path=str(path), assign={"dag_z": "server-1"})
    assert result["failed"] and "does not exist" in result["msg"]
    assert not path.parent.exists()

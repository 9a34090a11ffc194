"""The credential_bundle, credential_files and credential_report modules, run through main()."""

from __future__ import annotations

import json
import os
import stat

from failback_ansible import run_module

from ansible_collections.failback.airflow.plugins.modules import credential_bundle, credential_files, credential_report

SECRET = "Canary-Pass-0001"


run = run_module


def bundle_args(tmp_path, **extra):
    args = dict(
        installation="server-1",
        store=str(tmp_path / "store" / "server-1.json"),
        connections={"pg": {"conn_type": "postgres", "host": "db", "password": SECRET, "port": 5432}},
        variables={"v": "1"},
        files={"app.env": {"data": {"PASSWORD": SECRET}}},
    )
    args.update(extra)
    return args


def test_bundle_generates_stores_and_then_reuses(capsys, tmp_path):
    first = run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))
    assert first["rc"] == 0 and first["changed"] and first["store_changed"]
    assert set(first["sources"].values()) == {"generated"}
    store = tmp_path / "store" / "server-1.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "store").stat().st_mode) == 0o700
    assert SECRET not in store.read_text()  # inventory values never go to the store
    tree = first["files"]
    assert SECRET in tree["backend/connections.yaml"] and SECRET in tree["files/app.env"]

    second = run(capsys, credential_bundle, **bundle_args(tmp_path, current=tree))
    assert not second["changed"] and second["files"] == tree
    assert second["changed_names"] == [] and {c["state"] for c in second["changes"]} == {"unchanged"}
    assert set(second["sources"].values()) == {"installation"}

    rebuilt = run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))
    assert rebuilt["files"] == tree and set(rebuilt["sources"].values()) == {"store"}


def test_bundle_check_mode_does_not_write_the_store(capsys, tmp_path):
    result = run(capsys, credential_bundle, check_mode=True, **bundle_args(tmp_path, current={}))
    assert result["changed"] and not (tmp_path / "store").exists()


def test_bundle_adopts_the_installation_values_into_a_new_store(capsys, tmp_path):
    first = run(capsys, credential_bundle, **bundle_args(tmp_path, store="", current={}))
    result = run(capsys, credential_bundle, **bundle_args(tmp_path, current=first["files"]))
    assert result["store_changed"] and result["files"] == first["files"]
    stored = json.loads((tmp_path / "store" / "server-1.json").read_text())["secrets"]
    assert stored["jwt_secret"] == first["files"]["airflow/jwt_secret"]


def test_bundle_tightens_a_store_with_wide_permissions(capsys, tmp_path):
    run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))
    store = tmp_path / "store" / "server-1.json"
    os.chmod(store, 0o644)
    result = run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))
    assert result["store_changed"] and stat.S_IMODE(store.stat().st_mode) == 0o600


def test_bundle_rotation_and_fernet_retire(capsys, tmp_path):
    tree = run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))["files"]
    rotated = run(capsys, credential_bundle, **bundle_args(tmp_path, current=tree, rotate=["fernet_key", "db_password"]))
    assert rotated["changed_names"] == ["db_password", "fernet_key", "sql_alchemy_conn"]
    assert rotated["fernet_rekey"]
    assert rotated["files"]["airflow/fernet_key"].endswith("," + tree["airflow/fernet_key"])
    retired = run(capsys, credential_bundle, **bundle_args(tmp_path, current=rotated["files"], retire_fernet=True))
    assert retired["changed_names"] == ["fernet_key"] and not retired["fernet_rekey"]
    assert retired["files"]["airflow/fernet_key"] == rotated["files"]["airflow/fernet_key"].split(",")[0]


def test_bundle_kubernetes_secrets_and_read_back(capsys, tmp_path):
    first = run(capsys, credential_bundle, **bundle_args(tmp_path, current_secrets=[], kubernetes_namespace="af"))
    names = [d["metadata"]["name"] for d in first["kubernetes_secrets"]]
    assert names == ["failback-airflow-secrets", "failback-airflow-backend", "failback-credentials"]
    assert sorted(first["kubernetes_manifests"]) == sorted(n + ".yaml" for n in names)
    again = run(capsys, credential_bundle, **bundle_args(tmp_path, current_secrets=first["kubernetes_secrets"],
                                                         kubernetes_namespace="af"))
    assert again["changed_names"] == [] and again["kubernetes_secrets"] == first["kubernetes_secrets"]


def test_bundle_invalid_input_fails_with_error_and_writes_nothing(capsys, tmp_path):
    result = run(capsys, credential_bundle, **bundle_args(
        tmp_path, current={}, connections={"pg": {"conn_type": "postgres", "port": 99999, "password": SECRET}}))
    assert result["rc"] == 1 and result["failed"] and result["valid"] is False
    assert result["error"] == ("connection 'pg': port must be a port number 1-65535, got 99999; nothing was changed")
    assert SECRET not in result["error"] + result["msg"]
    assert not (tmp_path / "store").exists()


def test_bundle_refuses_a_corrupt_store(capsys, tmp_path):
    store = tmp_path / "store" / "server-1.json"
    store.parent.mkdir()
    store.write_text("{broken")
    result = run(capsys, credential_bundle, **bundle_args(tmp_path, current={}))
    assert result["failed"] and "is not valid JSON" in result["error"]
    assert store.read_text() == "{broken"


def test_files_module_writes_reads_and_is_idempotent(capsys, tmp_path):
    root = tmp_path / "secrets"
    files = {"airflow/fernet_key": SECRET, "files/a.env": "A='%s'\n" % SECRET}
    check = run(capsys, credential_files, check_mode=True, path=str(root), files=files, owner=str(os.geteuid()))
    assert check["changed"] and not root.exists()
    first = run(capsys, credential_files, path=str(root), files=files, owner=str(os.geteuid()), group=str(os.getegid()))
    assert first["changed"] and first["changed_files"] == ["airflow/fernet_key", "files/a.env"]
    assert SECRET not in json.dumps(first)
    second = run(capsys, credential_files, path=str(root), files=files)
    assert not second["changed"]
    read = run(capsys, credential_files, path=str(root), state="read")
    assert read["contents"] == files and not read["changed"]
    gone = run(capsys, credential_files, path=str(root), files={"airflow/fernet_key": SECRET})
    assert gone["removed_files"] == ["files/a.env"]


def test_files_module_refuses_wide_modes(capsys, tmp_path):
    result = run(capsys, credential_files, path=str(tmp_path / "s"), files={"files/a": "x"}, mode="0644")
    assert result["failed"] and "too wide for secrets" in result["error"]
    assert not (tmp_path / "s").exists()


def test_report_shows_names_and_marks_changes(capsys):
    changes = [{"key": "fernet_key", "state": "unchanged"}, {"key": "connections/pg", "state": "changed"},
               {"key": "files/old.env", "state": "removed"}]
    result = run(capsys, credential_report, diff=True, changes=changes, location="server-1:/opt/s")
    assert result["changed"] and result["changed_keys"] == ["connections/pg", "files/old.env"]
    assert result["diff"]["after"] == "fernet_key: (hidden)\nconnections/pg: (hidden, changed)\n"
    assert "files/old.env: (hidden)" in result["diff"]["before"]
    quiet = run(capsys, credential_report, changes=[{"key": "fernet_key", "state": "unchanged"}])
    assert not quiet["changed"] and "diff" not in quiet

"""Secret files on a host: atomic replacement, owner and modes, purge, and refusing unsafe input."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import credential_fs as fs

DIRS = ("airflow", "backend", "files")
UID, GID = os.geteuid(), os.getegid()


def sync(root, files, mode=0o640, dir_mode=0o750, directories=DIRS, purge=True):
    result = fs.plan(str(root), files, directories, UID, GID, mode, dir_mode, purge=purge)
    fs.apply(str(root), files, result, UID, GID, mode, dir_mode)
    return result


def test_first_write_creates_everything_with_the_modes(tmp_path):
    root = tmp_path / "secrets"
    result = sync(root, {"airflow/fernet_key": "k", "files/a.env": "A='1'\n"})
    assert result.directories == [".", "airflow", "backend", "files"]
    assert result.writes == ["airflow/fernet_key", "files/a.env"]
    for directory in ("", "airflow", "backend", "files"):
        assert stat.S_IMODE(os.stat(root / directory).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(root / "airflow" / "fernet_key").st_mode) == 0o640
    assert (root / "airflow" / "fernet_key").read_bytes() == b"k"
    assert not sync(root, {"airflow/fernet_key": "k", "files/a.env": "A='1'\n"}).changed


def test_a_change_replaces_the_file_by_rename(tmp_path):
    sync(tmp_path, {"airflow/jwt_secret": "old"})
    inode = os.stat(tmp_path / "airflow" / "jwt_secret").st_ino
    result = sync(tmp_path, {"airflow/jwt_secret": "new"})
    assert result.writes == ["airflow/jwt_secret"]
    assert os.stat(tmp_path / "airflow" / "jwt_secret").st_ino != inode
    assert sorted(os.listdir(tmp_path / "airflow")) == ["jwt_secret"]  # no temporary file left behind


def test_mode_drift_is_fixed_in_place(tmp_path):
    sync(tmp_path, {"backend/connections.yaml": "{}\n"})
    path = tmp_path / "backend" / "connections.yaml"
    os.chmod(path, 0o644)
    result = sync(tmp_path, {"backend/connections.yaml": "{}\n"})
    assert result.attributes == ["backend/connections.yaml"] and result.writes == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_unlisted_files_are_removed_unless_purge_is_off(tmp_path):
    sync(tmp_path, {"files/a.env": "a", "files/b.env": "b"})
    (tmp_path / "files" / ".b.env.x.tmp").write_text("left over by a crash")
    assert sync(tmp_path, {"files/a.env": "a"}, purge=False).removals == []
    result = sync(tmp_path, {"files/a.env": "a"})
    assert result.removals == ["files/.b.env.x.tmp", "files/b.env"]
    assert os.listdir(tmp_path / "files") == ["a.env"]


def test_a_symlink_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    sync(tmp_path / "s", {})
    os.symlink(str(target), str(tmp_path / "s" / "files" / "a.env"))
    assert fs.read_tree(str(tmp_path / "s"), DIRS) == {}
    result = sync(tmp_path / "s", {"files/a.env": "new"})
    assert result.writes == ["files/a.env"]
    assert target.read_text() == "precious"
    assert not os.path.islink(tmp_path / "s" / "files" / "a.env")


def test_read_tree_returns_text_of_regular_files(tmp_path):
    sync(tmp_path, {"airflow/fernet_key": "k", "backend/variables.yaml": "a: b\n"})
    (tmp_path / "files" / ".hidden").write_text("x")
    assert fs.read_tree(str(tmp_path), DIRS) == {"airflow/fernet_key": "k", "backend/variables.yaml": "a: b\n"}
    assert fs.read_tree(str(tmp_path / "missing"), DIRS) == {}


def test_flat_directory_for_manifests(tmp_path):
    sync(tmp_path, {"failback-credentials.yaml": "x"}, mode=0o600, dir_mode=0o700, directories=["."], purge=False)
    assert fs.read_tree(str(tmp_path), ["."]) == {"failback-credentials.yaml": "x"}
    assert stat.S_IMODE(os.stat(tmp_path / "failback-credentials.yaml").st_mode) == 0o600


def test_atomic_write_never_shows_wider_permissions(tmp_path, monkeypatch):
    seen = []
    real_rename = os.rename

    def spy(src, dst):
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    fs.atomic_write(str(tmp_path / "f"), "secret", mode=0o640)
    assert seen == [0o640]


@pytest.mark.parametrize("files, message", [
    ({"../x": "a"}, "is not in a managed directory"),
    ({"airflow/../x": "a"}, "is not in a managed directory"),
    ({"files/.hidden": "a"}, "has a file name that is not allowed"),
    ({"x": "a"}, "is not in a managed directory"),
])
def test_paths_outside_the_tree_are_refused(tmp_path, files, message):
    with pytest.raises(fs.CredentialFsError, match=message):
        fs.plan(str(tmp_path), files, DIRS, None, None, 0o640, 0o750)


@pytest.mark.parametrize("value, forbidden, message", [
    ("0644", fs.FILE_FORBIDDEN_BITS, "mode 0644 is too wide"),
    ("0660", fs.FILE_FORBIDDEN_BITS, "too wide"),
    ("4640", fs.FILE_FORBIDDEN_BITS, "is not an octal mode"),
    ("rw-r-----", fs.FILE_FORBIDDEN_BITS, "is not an octal mode"),
    ("0755", fs.DIR_FORBIDDEN_BITS, "too wide"),
])
def test_wide_or_bad_modes_are_refused(value, forbidden, message):
    with pytest.raises(fs.CredentialFsError, match=message):
        fs.parse_mode(value, "mode", forbidden)


def test_modes_and_ids():
    assert fs.parse_mode("0640", "mode", fs.FILE_FORBIDDEN_BITS) == 0o640
    assert fs.parse_mode("600", "mode", fs.FILE_FORBIDDEN_BITS) == 0o600
    assert fs.parse_mode("0750", "mode", fs.DIR_FORBIDDEN_BITS) == 0o750
    assert fs.resolve_uid("50000") == 50000 and fs.resolve_uid("") is None and fs.resolve_uid("root") == 0
    assert fs.resolve_gid("0") == 0
    with pytest.raises(fs.CredentialFsError, match="owner 'no-such-user-x' is neither a uid nor a user"):
        fs.resolve_uid("no-such-user-x")


def test_a_file_where_a_directory_belongs_is_an_error(tmp_path):
    (tmp_path / "airflow").write_text("oops")
    with pytest.raises(fs.CredentialFsError, match="exists and is not a directory"):
        fs.plan(str(tmp_path), {}, DIRS, None, None, 0o640, 0o750)

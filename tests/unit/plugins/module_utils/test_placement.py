"""Unit tests of the placement rules (plugins/module_utils/placement.py)."""

from __future__ import annotations

import difflib

import os
import stat

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.failback.airflow.plugins.module_utils import placement as p

KNOWN = ["server-1", "server-2", "k8s-prod"]


# ----------------------------------------------------------------------------- parsing


def test_seed_flat_form_is_valid():
    pmap = p.parse_map('---\ndag_1: "server-1.tld"\n')
    assert pmap.dags == {"dag_1": "server-1.tld"}
    assert pmap.generation == 0
    assert pmap.owner("dag_1") == "server-1.tld"
    assert pmap.owner("other") is None


def test_metadata_block_is_read():
    text = (
        '"@failback":\n  generation: 7\n  updated_at: "2026-01-02T03:04:05Z"\n'
        '  updated_by: alice@ctl\n  default: server-2\ndag_a: server-1\n'
    )
    pmap = p.parse_map(text, KNOWN)
    assert (pmap.generation, pmap.updated_at, pmap.updated_by, pmap.default) == (
        7, "2026-01-02T03:04:05Z", "alice@ctl", "server-2")
    assert pmap.owner("dag_a") == "server-1"
    assert pmap.owner("unlisted") == "server-2"


def test_flat_readers_still_work_on_written_maps():
    """A reader of the seed's flat form (data[dag_id]) keeps working on our output."""
    text = p.dump_map(p.PlacementMap({"dag_1": "server-1"}, generation=3, updated_by="x"))
    data = yaml.safe_load(text)
    assert data["dag_1"] == "server-1"


def test_empty_mapping_is_a_valid_map():
    assert p.parse_map("{}\n").dags == {}


BAD_MAPS = [
    ("dag_a: server-1\ndag_a: server-2\n", "duplicate key 'dag_a' on line 2 (first on line 1)"),
    ("dag_a: 5\n", "DAG 'dag_a' maps to 5 (of type int)"),
    ("dag_a: true\n", "DAG 'dag_a' maps to True (of type bool)"),
    ("dag_a: [server-1]\n", "DAG 'dag_a' maps to ['server-1'] (of type list)"),
    ('dag_a: ""\n', "DAG 'dag_a' has an empty installation name"),
    ("dag_a:\n", "DAG 'dag_a' has an empty installation name"),
    ("dag_a: server-9\n", "owner of DAG 'dag_a' 'server-9' is not a known installation; known: k8s-prod, server-1, server-2"),
    ("dag_a: bad name\n", "'bad name' is not valid"),
    ("1000: server-1\n", "key 1000 is of type int, not a string: quote it"),
    ("dag a: server-1\n", "key 'dag a' is not a valid Airflow DAG id"),
    ('"@other": 1\n', "key '@other' is reserved"),
    ("- server-1\n", "must be a mapping of 'dag_id: installation', got a list"),
    ("", "is empty: expected a mapping"),
    ("dag_a: server-1\n---\ndag_b: server-2\n", "holds 2 YAML documents"),
    ("dag_a: server-1\n  dag_b: server-2\n", "is not valid YAML at line 2, column 8"),
    ("dag_a: !!python/object:os.system x\n", "could not determine a constructor"),
    ('"@failback": {generation: -1}\n', "generation -1 must be a whole number >= 0"),
    ('"@failback": {generation: "7"}\n', "generation '7' must be a whole number >= 0"),
    ('"@failback": {owner: server-1}\n', "unknown '@failback' field(s) owner"),
    ('"@failback": {default: server-9}\n', "default owner 'server-9' is not a known installation"),
    ('"@failback": [1]\n', "'@failback' must be a mapping, got a list"),
    ("? [a, b]\n: server-1\n", "a mapping key must be a plain value"),
    ("x" * 251 + ": server-1\n", "is longer than 250 characters"),
]


@pytest.mark.parametrize("text,message", BAD_MAPS, ids=[m for _t, m in BAD_MAPS])
def test_bad_maps_are_refused_with_a_message_naming_the_entry(text, message):
    with pytest.raises(p.PlacementError) as err:
        p.parse_map(text, KNOWN, source="map.yml")
    assert message in str(err.value)
    assert str(err.value).startswith("map.yml")


def test_invalid_utf8_is_refused():
    with pytest.raises(p.PlacementError, match="not UTF-8"):
        p.parse_map(b"dag_a: \xff\n")


# ----------------------------------------------------------------------------- serialising


def test_dump_is_sorted_stable_and_round_trips():
    pmap = p.PlacementMap({"b": "server-2", "a": "server-1", "c": "k8s-prod"}, 4, "2026-01-01T00:00:00Z", "me", "server-1")
    text = p.dump_map(pmap)
    assert text == p.dump_map(p.parse_map(text))
    body = [line for line in text.splitlines() if not line.startswith(("#", " ", '"@', "---"))]
    assert body == ['a: "server-1"', 'b: "server-2"', 'c: "k8s-prod"']


def test_one_move_is_a_small_diff():
    before = p.PlacementMap(dict(("dag_%03d" % i, "server-1") for i in range(100)), 1, "2026-12-01T09:00:00Z", "me")
    after = p.stamp(before, p.assign(before, {"dag_050": "server-2"}), "me", now="2026-12-01T10:00:00Z")
    diff = list(difflib.unified_diff(p.dump_map(before).splitlines(), p.dump_map(after).splitlines(), n=0, lineterm=""))
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-  generation: 1", '-  updated_at: "2026-12-01T09:00:00Z"', "+  generation: 2", '+  updated_at: "2026-12-01T10:00:00Z"',
        "+  handovers:", "+    dag_050:", '+      - {at: "2026-12-01T10:00:00Z", from: "server-1"}',
        '-dag_050: "server-1"', '+dag_050: "server-2"']


@pytest.mark.parametrize("dag_id", ["yes", "no", "on", "null", "true", "1e3", "0x1f", "012", "1_000", "1.5", "_x", "a.b-c"])
def test_ids_yaml_would_misread_are_quoted(dag_id):
    text = p.dump_map(p.PlacementMap({dag_id: "server-1"}))
    assert p.parse_map(text).dags == {dag_id: "server-1"}


_ids = st.text(alphabet="abcxyzABC019_.-", min_size=1, max_size=30)
_names = st.sampled_from(["server-1", "server-2.tld", "k8s-prod", "a", "h:1"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_ids, _names, max_size=30), st.integers(0, 10**6), st.one_of(st.none(), _names))
def test_any_valid_map_round_trips(dags, generation, default):
    pmap = p.PlacementMap(dags, generation, "2026-11-21T00:00:00Z", 'o"dd \\ user', default)
    assert p.parse_map(p.dump_map(pmap)) == pmap


# ----------------------------------------------------------------------------- changes


BASE = p.PlacementMap({"a": "server-1", "b": "server-1", "c": "server-2"}, generation=5, default="server-1")


def test_move_all_dags_of_an_installation_including_the_default():
    after, moved = p.move(BASE, "k8s-prod", from_="server-1", installations=KNOWN)
    assert after.dags == {"a": "k8s-prod", "b": "k8s-prod", "c": "server-2"}
    assert after.default == "k8s-prod"
    assert moved == {"a": ("server-1", "k8s-prod"), "b": ("server-1", "k8s-prod"), "@default": ("server-1", "k8s-prod")}
    assert BASE.dags["a"] == "server-1", "the input map must not change"


def test_move_listed_dags_accepts_a_comma_separated_string():
    after, moved = p.move(BASE, "server-2", dags=" a , b,a", installations=KNOWN)
    assert after.dags["a"] == after.dags["b"] == "server-2"
    assert sorted(moved) == ["a", "b"]


def test_move_of_a_dag_owned_by_the_default_adds_an_entry():
    after, moved = p.move(BASE, "server-2", dags=["zzz"], installations=KNOWN)
    assert after.dags["zzz"] == "server-2" and moved == {"zzz": ("server-1", "server-2")}


def test_move_to_the_current_owner_moves_nothing():
    after, moved = p.move(BASE, "server-2", dags=["c"], installations=KNOWN)
    assert moved == {} and after.same_placement(BASE)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(to="server-9", from_="server-1"), "failover target 'server-9' is not a known installation"),
        (dict(to="server-2", from_="server-9"), "failover source 'server-9' is not a known installation"),
        (dict(to="server-1", from_="server-1"), "source and target are both 'server-1'"),
        (dict(to="server-2"), "say what to move"),
        (dict(to="k8s-prod", from_="server-1", dags=["c"]), "DAG 'c' is owned by 'server-2', not by the failover source 'server-1'"),
        (dict(to="server-2", dags=["bad id"]), "listed DAG 'bad id' is not a valid Airflow DAG id"),
        (dict(to="server-2", dags=" , "), "listed DAG is empty"),
        (dict(to="", from_="server-1"), "failover target is empty"),
    ],
)
def test_bad_moves_are_refused(kwargs, message):
    with pytest.raises(p.PlacementError) as err:
        p.move(BASE, installations=KNOWN, **kwargs)
    assert message in str(err.value)


def test_move_without_default_needs_the_dag_in_the_map():
    with pytest.raises(p.PlacementError, match="'zzz' is not in the placement map and there is no default owner"):
        p.move(BASE.replace(default=None), "server-2", dags=["zzz"])


def test_assign_remove_and_default():
    after = p.assign(BASE, {"d": "k8s-prod"}, KNOWN, remove=["a"], default="server-2")
    assert after.dags == {"b": "server-1", "c": "server-2", "d": "k8s-prod"}
    assert after.default == "server-2"
    assert p.assign(after, None, clear_default=True).default is None


def test_stamp_grows_the_generation_only_when_placement_changes():
    same = p.stamp(BASE, BASE.replace(), "me")
    assert same is BASE
    after = p.stamp(BASE, p.assign(BASE, {"a": "server-2"}), "me", now="2026-11-21T00:00:00Z")
    assert (after.generation, after.updated_by, after.updated_at) == (6, "me", "2026-11-21T00:00:00Z")


def test_changes_lists_every_owner_change():
    after = p.assign(BASE, {"a": "server-2"}, remove=["c"], default="k8s-prod")
    assert p.changes(BASE, after) == {
        "a": ("server-1", "server-2"),
        "c": ("server-2", "k8s-prod"),
        "@default": ("server-1", "k8s-prod"),
    }


@pytest.mark.parametrize(
    "current,new,expected",
    [
        (None, BASE, True),
        (BASE, BASE, False),
        (BASE, BASE.replace(generation=6, dags={"a": "server-2"}), True),
        (BASE, BASE.replace(updated_by="someone else"), True),
        (p.PlacementMap({"a": "x"}), p.PlacementMap({"a": "y"}), True),  # hand-edited flat maps (generation 0)
    ],
)
def test_check_publish_allows_forward_moves(current, new, expected):
    assert p.check_publish(current, new) is expected


@pytest.mark.parametrize(
    "current,new,message",
    [
        (BASE, BASE.replace(generation=4), "refusing to replace placement map generation 5 with older generation 4"),
        (BASE, BASE.replace(dags={"a": "server-2"}), "generation 5 already exists with a different placement"),
    ],
)
def test_check_publish_refuses_going_back(current, new, message):
    with pytest.raises(p.PlacementError, match=message):
        p.check_publish(current, new)


@pytest.mark.parametrize(
    "dag_id,installation,decision,owner",
    [("a", "server-1", p.RUN, "server-1"), ("a", "server-2", p.SKIP, "server-1"),
     ("zzz", "server-1", p.RUN, "server-1"), ("zzz", "k8s-prod", p.SKIP, "server-1")],
)
def test_decide(dag_id, installation, decision, owner):
    assert p.decide(BASE, dag_id, installation)[:2] == (decision, owner)


def test_decide_without_any_owner_skips_everywhere():
    decision, owner, reason = p.decide(BASE.replace(default=None), "zzz", "server-1")
    assert (decision, owner) == (p.SKIP, None)
    assert "not in the placement map" in reason


@pytest.mark.parametrize("names,message", [
    ("server-1", "installations must be a list"),
    (["a", "a"], "known installations list a more than once"),
    (["ok", ""], "known installation is empty"),
])
def test_bad_installation_lists(names, message):
    with pytest.raises(p.PlacementError, match=message):
        p.check_installations(names)


# ----------------------------------------------------------------------------- files


def test_atomic_write_replaces_keeps_mode_and_leaves_no_temp(tmp_path):
    target = tmp_path / "placement.yml"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    inode = target.stat().st_ino
    p.atomic_write(str(target), "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode, "must be a rename, not an in-place write"
    assert sorted(os.listdir(tmp_path)) == ["placement.yml"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "placement.yml"
    target.mkdir()  # renaming a file over a directory fails
    with pytest.raises(OSError):
        p.atomic_write(str(target), "new\n")
    assert target.is_dir() and os.listdir(tmp_path) == ["placement.yml"]


def test_read_map_file(tmp_path):
    assert p.read_map_file(str(tmp_path / "missing.yml")) is None
    path = tmp_path / "m.yml"
    path.write_text("a: server-1\n")
    assert p.read_map_file(str(path)).dags == {"a": "server-1"}
    with pytest.raises(p.PlacementError, match="cannot read placement map"):
        p.read_map_file(str(tmp_path))


# ----------------------------------------------------------------------------- one installation's changes
# (what the Kubernetes role's failover hooks revoke and grant; it used to be a Jinja loop)


MAP_BEFORE = p.PlacementMap({"a": "k8s-prod", "b": "server-1", "c": "k8s-standby"}, 4, default="k8s-prod")


@pytest.mark.parametrize("after,prod,standby", [
    # a moves away from k8s-prod; it keeps the default (unlisted DAGs).
    (p.PlacementMap({"a": "server-1", "b": "server-1", "c": "k8s-standby"}, 5, default="k8s-prod"),
     {"lost": ["a"], "gained": [], "lost_default": False, "owns_any_after": True},
     {"lost": [], "gained": [], "lost_default": False, "owns_any_after": True}),
    # everything of k8s-prod (listed and default) moves to k8s-standby: k8s-prod owns nothing after.
    (p.PlacementMap({"a": "k8s-standby", "b": "server-1", "c": "k8s-standby"}, 5, default="k8s-standby"),
     {"lost": ["a"], "gained": [], "lost_default": True, "owns_any_after": False},
     {"lost": [], "gained": ["a"], "gained_default": True, "owns_any_after": True}),
    # c moves from k8s-standby to k8s-prod.
    (p.PlacementMap({"a": "k8s-prod", "b": "server-1", "c": "k8s-prod"}, 5, default="k8s-prod"),
     {"lost": [], "gained": ["c"], "gained_default": False, "owns_any_after": True},
     {"lost": ["c"], "gained": [], "owns_any_after": False}),
])
def test_installation_changes(after, prod, standby):
    for host, expected in (("k8s-prod", prod), ("k8s-standby", standby)):
        got = p.installation_changes(MAP_BEFORE, after, host)
        for key, value in expected.items():
            assert got[key] == value, (host, key, got)


def test_installation_changes_counts_the_dags_an_installation_knows_through_the_default():
    after = p.PlacementMap({"a": "k8s-standby"}, 5, default="k8s-standby")
    got = p.installation_changes(MAP_BEFORE, after, "k8s-prod", dag_ids=["unlisted_1", "c"])
    assert got["lost"] == ["a", "unlisted_1"] and got["lost_default"]
    # b was server-1's and is not listed any more: it goes with the default too.
    assert p.installation_changes(MAP_BEFORE, after, "k8s-standby", dag_ids=["unlisted_1"])["gained"] == ["a", "b", "unlisted_1"]

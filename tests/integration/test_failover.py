"""site.yml and failover.yml against three installations on this machine (local connection, one directory each).

After every step the guard itself (failback_guard.py as installed by the role) is asked, for every
installation, whether it would run each DAG: the invariant is that no DAG ever runs on two.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

import failback_testlib as lab
from failback_ansible import run_playbook

NAMES = ("server-1", "server-2", "server-3")
DAGS = ("dag_a", "dag_b", "dag_c", "dag_d")
START_MAP = "---\n# hand-written flat form\ndag_a: server-1\ndag_b: server-1\ndag_c: server-2\ndag_d: server-3\n"


class Fleet(object):
    def __init__(self, root, write=True):
        self.root = root
        self.map_src = os.path.join(root, "placement.yml")
        self.inventory = os.path.join(root, "hosts.yml")
        if write:
            with open(self.map_src, "w") as handle:
                handle.write(START_MAP)
            self.write_inventory("hosts.yml")

    def dir(self, name, kind="placement"):
        return os.path.join(self.root, name, kind)

    def write_inventory(self, filename, overrides=None):
        hosts = {}
        for name in NAMES:
            hosts[name] = {"airflow_placement_dir": self.dir(name), "airflow_placement_guard_dir": self.dir(name, "config")}
            hosts[name].update((overrides or {}).get(name, {}))
        inventory = {"all": {"children": {"airflow_installations": {
            "hosts": hosts,
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "airflow_placement_map_src": self.map_src},
        }}}}
        path = os.path.join(self.root, filename)
        with open(path, "w") as handle:
            yaml.safe_dump(inventory, handle)
        return path

    def generation(self, name=None):
        path = self.map_src if name is None else os.path.join(self.dir(name), "placement.yml")
        with open(path) as handle:
            return (yaml.safe_load(handle).get("@failback") or {}).get("generation", 0)

    def snapshot(self):
        """Hash of every file the fleet holds (controller map and installation directories)."""
        digest = {}
        for base, _dirs, files in os.walk(self.root):
            for name in files:
                if name.endswith((".yml", ".py")) or name == "fence":
                    path = os.path.join(base, name)
                    with open(path, "rb") as handle:
                        digest[path] = hashlib.sha256(handle.read()).hexdigest()
        return digest

    def decide(self, name, dag_id):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith("FAILBACK_"))
        env.update(FAILBACK_INSTALLATION=name, FAILBACK_PLACEMENT_MAP=os.path.join(self.dir(name), "placement.yml"))
        proc = subprocess.run([sys.executable, os.path.join(self.dir(name, "config"), "failback_guard.py"), "check", dag_id],
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        return json.loads(proc.stdout)["decision"]

    def runners(self, dag_id):
        return [name for name in NAMES if self.decide(name, dag_id) == "run"]

    def assert_single_owner_everywhere(self, expect=None):
        for dag_id in DAGS:
            runners = self.runners(dag_id)
            assert len(runners) <= 1, "%s would run on %s" % (dag_id, runners)
            if expect is not None:
                assert runners == ([expect[dag_id]] if expect[dag_id] else []), (dag_id, runners)


def _set_up(root):
    first = run_playbook("site.yml", Fleet(root).inventory)
    assert first.rc == 0, first


@pytest.fixture(scope="module")
def set_up_fleet(tmp_path_factory):
    return lab.SetUpOnce(tmp_path_factory, "fleet", _set_up)


@pytest.fixture
def fleet(set_up_fleet):
    """The three installations right after their first site.yml (run once per module, copied back for each test)."""
    set_up_fleet.fresh()
    return Fleet(set_up_fleet.root, write=False)


def test_site_publishes_map_and_guard_idempotently(fleet):
    for name in NAMES:
        assert sorted(os.listdir(fleet.dir(name, "config"))) == [
            "airflow_local_settings.py", "failback_guard.py", "failback_operators.py", "failback_placement.py",
            "failback_s3.py"]
    fleet.assert_single_owner_everywhere({"dag_a": "server-1", "dag_b": "server-1", "dag_c": "server-2", "dag_d": "server-3"})
    again = run_playbook("site.yml", fleet.inventory)
    assert again.rc == 0 and again.changed() == 0, again


def test_check_mode_shows_the_diff_and_changes_nothing(fleet):
    before = fleet.snapshot()
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"},
                       check=True, diff=True)
    assert run.rc == 0, run
    assert fleet.snapshot() == before
    diffs = [json.dumps(r.get("diff")) for hosts in run.results("Change the controller's map") for r in hosts.values()]
    assert any('dag_a: \\"server-2\\"' in d for d in diffs), diffs
    assert any("[check mode, nothing written] moved 2: dag_a, dag_b -> server-2" in json.dumps(h)
               for h in run.results("Show the failover's summary")), run


def test_failover_moves_every_dag_of_an_installation_then_is_idempotent(fleet):
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert run.rc == 0, run
    assert fleet.generation() == 1
    assert all(fleet.generation(name) == 1 for name in NAMES)
    fleet.assert_single_owner_everywhere({"dag_a": "server-2", "dag_b": "server-2", "dag_c": "server-2", "dag_d": "server-3"})
    finished = [r["held"] for hosts in run.results("Check every reachable installation holds the new map") for r in hosts.values()
                if "held" in r]
    assert finished == [{"server-1": 1, "server-2": 1, "server-3": 1}], run

    before = fleet.snapshot()
    again = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert again.rc == 0 and again.changed() == 0, again
    assert fleet.snapshot() == before


def test_failover_of_listed_dags_publishes_revoke_first(fleet):
    run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_a, dag_d", "failover_to": "server-3"})
    assert run.rc == 0, run
    fleet.assert_single_owner_everywhere({"dag_a": "server-3", "dag_b": "server-1", "dag_c": "server-2", "dag_d": "server-3"})
    order = [play["play"]["name"] for play in run.json["plays"]]
    revoke = [p for p in run.json["plays"] if p["play"]["name"].startswith("Revoke")][0]
    grant = [p for p in run.json["plays"] if p["play"]["name"].startswith("Grant")][0]
    assert order.index(revoke["play"]["name"]) < order.index(grant["play"]["name"])
    published = [t for t in revoke["tasks"] if t["task"]["name"].endswith("Publish the placement map and lift the fence")]
    assert sorted(published[0]["hosts"]) == ["server-1"], "only the old owner of dag_a is revoked first"


@pytest.mark.parametrize(
    "extra_vars,message",
    [
        ({"failover_to": "server-2"}, "Say where to and what"),
        ({"failover_from": "server-1", "failover_to": "server-9"}, "failover target 'server-9' is not a known installation"),
        ({"failover_from": "server-9", "failover_to": "server-2"}, "failover source 'server-9' is not a known installation"),
        ({"failover_dags": "dag_c", "failover_from": "server-1", "failover_to": "server-3"}, "DAG 'dag_c' is owned by 'server-2'"),
        ({"failover_dags": "no_such_dag", "failover_to": "server-2"}, "DAG 'no_such_dag' is not in the placement map"),
    ],
)
def test_bad_failover_requests_change_nothing(fleet, extra_vars, message):
    before = fleet.snapshot()
    run = run_playbook("failover.yml", fleet.inventory, extra_vars)
    assert run.rc != 0
    assert message in run.text(), run
    assert fleet.snapshot() == before


def test_unreachable_old_owner_stops_failover_unless_forced_and_stays_fenced(fleet):
    unreachable = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
    down = fleet.write_inventory("down.yml", {"server-1": unreachable})
    before = fleet.snapshot()
    stopped = run_playbook("failover.yml", down, {"failover_from": "server-1", "failover_to": "server-2"})
    assert stopped.rc != 0
    assert "Old owner(s) server-1 unreachable" in stopped.text(), stopped
    assert fleet.snapshot() == before, "nothing may change when the old owner cannot be revoked"

    forced = run_playbook("failover.yml", down, {"failover_from": "server-1", "failover_to": "server-2", "failover_force": True})
    assert forced.rc == 0, forced
    assert (fleet.generation(), fleet.generation("server-2"), fleet.generation("server-3")) == (1, 1, 1)
    assert fleet.generation("server-1") == 0, "the unreachable old owner keeps its stale map"
    assert "unreachable (stale map, fenced on restart): server-1" in forced.text()

    # Without a fence, server-1 (stale map) and server-2 (new map) would both run dag_a:
    assert fleet.decide("server-1", "dag_a") == "run" and fleet.decide("server-2", "dag_a") == "run"
    # ... which is why a server comes back fenced: its systemd unit runs this before Airflow starts.
    guard = os.path.join(fleet.dir("server-1", "config"), "failback_guard.py")
    subprocess.run([sys.executable, guard, "--map", os.path.join(fleet.dir("server-1"), "placement.yml"), "fence",
                    "--reason", "restarted by systemd"], check=True, capture_output=True, timeout=60)
    assert fleet.decide("server-1", "dag_a") == "error" and fleet.decide("server-1", "dag_c") == "error"
    fleet.assert_single_owner_everywhere({"dag_a": "server-2", "dag_b": "server-2", "dag_c": "server-2", "dag_d": "server-3"})

    # Reachable again: the next site.yml publishes the current map and lifts the fence.
    back = run_playbook("site.yml", fleet.inventory)
    assert back.rc == 0, back
    assert fleet.generation("server-1") == 1
    assert not os.path.exists(os.path.join(fleet.dir("server-1"), "fence"))
    fleet.assert_single_owner_everywhere({"dag_a": "server-2", "dag_b": "server-2", "dag_c": "server-2", "dag_d": "server-3"})


def test_a_publish_interrupted_halfway_never_runs_a_dag_twice(fleet, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    broken = fleet.write_inventory("broken.yml", {"server-2": {"airflow_placement_dir": str(blocker / "placement")}})
    run = run_playbook("failover.yml", broken, {"failover_dags": "dag_a", "failover_to": "server-2"})
    assert run.rc != 0, "publishing to the new owner fails"
    assert fleet.generation() == 1 and fleet.generation("server-1") == 1, "the old owner was revoked first"
    assert fleet.generation("server-2") == 0
    # dag_a is owned by nobody in the meantime: skipped everywhere, never twice.
    fleet.assert_single_owner_everywhere({"dag_a": None, "dag_b": "server-1", "dag_c": "server-2", "dag_d": "server-3"})

    resumed = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_a", "failover_to": "server-2"})
    assert resumed.rc == 0, resumed
    assert all(fleet.generation(name) == 1 for name in NAMES)
    fleet.assert_single_owner_everywhere({"dag_a": "server-2", "dag_b": "server-1", "dag_c": "server-2", "dag_d": "server-3"})


def test_an_older_map_never_replaces_a_newer_one(fleet):
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert run.rc == 0, run
    with open(fleet.map_src, "w") as handle:  # someone restores an old copy of the controller's map
        handle.write(START_MAP)
    before = fleet.snapshot()
    stale = run_playbook("site.yml", fleet.inventory)
    assert stale.rc != 0
    assert "refusing to replace placement map generation 1 with older generation 0" in stale.text(), stale
    assert fleet.snapshot() == before

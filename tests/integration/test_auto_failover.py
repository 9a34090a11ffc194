"""Opt-in automatic failover, for real: ansible-rulebook (Event-Driven Ansible, Java from Debian's
OpenJDK 17) runs the collection's rulebook failback.airflow.auto_failover with its event source
failback.airflow.fleet_watch against two real Airflow 3 installations (tests/airflow_local.py).

The owner's Airflow is stopped; the watcher reads its health fail for `probes` readings over the
`window`, decides, and the rulebook runs the forced failover.yml with catch-up since the last
healthy reading: the controller's map gives the DAG to the armed new owner. Measured: the time
from the stop to the controller's map naming the new owner. Then the old owner comes back and
goes down again: no second failover, and nothing moves back to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

import failback_testlib as lab
from airflow_local import LocalAirflow, hello_dag
from ansible_collections.failback.airflow.plugins.module_utils import placement
from failback_ansible import BIN, REPO, run_playbook

DAG_ID = "failback_auto_check"
DAG = hello_dag(DAG_ID, "hello")
NAMES = ("server-1", "server-2")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("auto"))
    airflows = dict((name, LocalAirflow(root, name, dags={DAG_ID + ".py": DAG})) for name in NAMES)
    # Laid out as a team's inventory is (inventories/example): hosts.yml, group_vars/ and host_vars/ beside it and
    # the controller's map at its default place next to them. ansible-rulebook runs the failover with a copy of
    # the inventory in a temporary directory: the watcher must carry group_vars and host_vars into it and name
    # the real map.
    inventory_dir = os.path.join(root, "inventory")
    for sub in ("group_vars", "host_vars"):
        os.makedirs(os.path.join(inventory_dir, sub))
    map_src = os.path.join(inventory_dir, "placement.yml")
    with open(map_src, "w") as handle:
        handle.write("%s: server-1\n" % DAG_ID)
    for name, a in airflows.items():
        with open(os.path.join(inventory_dir, "host_vars", name + ".yml"), "w") as handle:
            yaml.safe_dump({"airflow_placement_dir": a.placement_dir, "airflow_placement_guard_dir": os.path.join(a.home, "config"),
                            "airflow_installation_api": {"url": a.url, "username": a.username, "password_file": a.passwords_file}},
                           handle)
    with open(os.path.join(inventory_dir, "group_vars", "airflow_installations.yml"), "w") as handle:
        yaml.safe_dump({"ansible_connection": "local", "ansible_python_interpreter": os.path.join(BIN, "python")}, handle)
    inventory = os.path.join(inventory_dir, "hosts.yml")
    with open(inventory, "w") as handle:
        yaml.safe_dump({"all": {"children": {"airflow_installations": {"hosts": dict((name, None) for name in NAMES)}}}}, handle)
    for airflow in airflows.values():
        airflow.start()
    yield root, airflows, inventory, map_src
    for airflow in airflows.values():
        airflow.stop()


def _owner(map_src):
    with open(map_src) as handle:
        return placement.parse_map(handle.read()).owner(DAG_ID)


def _state(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        return {}


def _wait(predicate, timeout, what, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            with open(proc.log_path) as handle:
                raise AssertionError("ansible-rulebook stopped: %s" % handle.read()[-4000:])
        time.sleep(0.5)
    raise AssertionError("%s: not within %s s" % (what, timeout))


def test_the_watcher_fails_over_a_dead_owner_once_and_never_back(fleet):
    root, airflows, inventory, map_src = fleet
    assert run_playbook("site.yml", inventory).rc == 0
    state_path = os.path.join(os.path.dirname(map_src), "fleet-watch.json")
    # The role writes the config and the systemd unit (no Java or virtualenv to install here, no systemd
    # to start it): the test runs the unit's own command line, with the unit's environment.
    setup = run_playbook("watch.yml", inventory, {
        "airflow_watcher_pairs": {"server-1": "server-2"}, "airflow_watcher_interval": 1, "airflow_watcher_probes": 3,
        "airflow_watcher_window": 3, "airflow_watcher_timeout": 3, "airflow_watcher_dir": os.path.join(root, "watch"),
        "airflow_watcher_unit_dir": root, "airflow_watcher_venv": os.path.dirname(BIN),
        "airflow_watcher_install": False, "airflow_watcher_service": False})
    assert setup.rc == 0, setup
    with open(os.path.join(root, "watch", "watch.json")) as handle:
        config = json.load(handle)
    assert config["map"] == map_src and config["state"] == state_path and config["installations"] == dict(
        (n, {"health_url": a.url + "/api/v2/monitor/health"}) for n, a in airflows.items()), config
    unit_env, commands = lab.systemd_unit(os.path.join(root, "failback-watch.service"))
    env = dict(os.environ, **unit_env)
    command = commands["ExecStart"][0]
    env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
    links = command[command.index("--inventory") + 1]
    assert links == os.path.join(root, "watch", "inventory") and dict(
        (name, os.readlink(os.path.join(links, name))) for name in sorted(os.listdir(links))) == dict(
        (name, os.path.join(os.path.dirname(inventory), name)) for name in ("group_vars", "host_vars", "hosts.yml"))
    again = run_playbook("watch.yml", inventory, {
        "airflow_watcher_pairs": {"server-1": "server-2"}, "airflow_watcher_interval": 1, "airflow_watcher_probes": 3,
        "airflow_watcher_window": 3, "airflow_watcher_timeout": 3, "airflow_watcher_dir": os.path.join(root, "watch"),
        "airflow_watcher_unit_dir": root, "airflow_watcher_venv": os.path.dirname(BIN),
        "airflow_watcher_install": False, "airflow_watcher_service": False})
    assert again.rc == 0 and again.changed() == 0, again
    log_path = os.path.join(root, "rulebook.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(command + ["--print-events"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_path = log_path
    try:
        _wait(lambda: all(r == "healthy" for r in (_state(state_path).get("last_readings") or {"x": 0}).values()),
              180, "both installations read healthy", proc)
        assert _state(state_path)["armed"] == ["server-1 -> server-2"]
        stopped = time.monotonic()
        airflows["server-1"].stop()
        _wait(lambda: _owner(map_src) == "server-2", 300, "the controller's map gives the DAG to server-2", proc)
        took = time.monotonic() - stopped
        print("stop of the owner's Airflow -> map names the new owner: %.1f s" % took)
        decisions = [d for d in _state(state_path)["decisions"] if d["action"] == "failover"]
        assert [(d["from"], d["to"]) for d in decisions] == [("server-1", "server-2")], decisions
        assert decisions[0]["since"] is not None and decisions[0]["reasons"], decisions
        handover = placement.read_map_file(map_src).last_handover(DAG_ID)
        assert handover.source == "server-1" and handover.at == decisions[0]["since"], "catch-up since the last healthy reading"

        # The old owner comes back, then goes down again: it owns nothing now, so nothing moves, and nothing moves
        # back to it (no automatic failback). The cooldown itself, for an owner that still owns DAGs, is proven
        # by tests/unit/plugins/module_utils/test_auto_failover.py.
        airflows["server-1"].start()
        _wait(lambda: (_state(state_path).get("last_readings") or {}).get("server-1") == "healthy", 180,
              "server-1 read healthy again", proc)
        airflows["server-1"].stop()
        time.sleep(8)
        assert _owner(map_src) == "server-2"
        assert len([d for d in _state(state_path)["decisions"] if d["action"] == "failover"]) == 1
        status = run_playbook("status.yml", inventory)
        assert "automatic failover armed: server-1 -> server-2; last decision: hold server-1 -> server-2" in status.text(), status
        assert "watcher_stale" not in status.text()
    finally:
        lab.stop_process(proc, timeout=15)
        log.close()
        with open(log_path) as handle:
            print(handle.read()[-4000:])

"""No split brain: the adversarial drills against site.yml, publish.yml and failover.yml.

Three directory installations on this machine (local connection, as in test_failover.py). A
watcher thread re-reads every installation's map and fence every few milliseconds for the whole
test and asks each installation's map, as its guard would, who runs the run of every DAG due at
every instant that matters - far past, now, every handover and kept run and either side of it -
and records any moment at which a run would have two runners, and any installation whose
generation went back. Every drill asserts both never happened.

Drills (each a regression test of a double-owner path found by an adversarial run):
1. a revoke that fails (immutable placement directory), then site.yml: nothing is granted;
2. site.yml and failover.yml started together, and two failovers at once: one waits its turn
   (refused, naming the holder of the fleet lock), no installation goes back in generation;
3. kill -9 of failover.yml at each step (journal, controller map, revoke, grant), then re-run;
4. bad input that used to take installations down (size, control characters, aliases,
   non-regular files, bad DAG lists, bad file modes) is refused before anything is written;
5. run-level ownership: DAGs rotated past the handover cap, and failover_catchup_since run again
   with an earlier time, with one installation's writes slowed down - no run has two runners;
   handovers edited by hand, lock and journal files that are links or FIFOs, and extra vars that
   are not what they say are refused, naming the value.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest
import yaml

import failback_testlib as lab
from ansible_collections.failback.airflow.plugins.module_utils import fleet_lock, placement
from failback_ansible import run_playbook, start_playbook

NAMES = ("server-1", "server-2", "server-3")
DAGS = ("dag_a", "dag_b", "dag_c")
START_MAP = "dag_a: server-1\ndag_b: server-1\ndag_c: server-2\n"
FAR_PAST = datetime.datetime(1971, 1, 1, tzinfo=datetime.timezone.utc)
MICRO = datetime.timedelta(microseconds=1)


def instants(maps, dag):
    """Due times at which a map's answer for *dag* can change (and either side), the far past and now."""
    found = {FAR_PAST, datetime.datetime.now(datetime.timezone.utc)}
    for pmap in maps:
        for handover in pmap.history(dag):
            for moment in [handover.at_time] + sorted(handover.kept_times):
                found.update((moment - MICRO, moment, moment + MICRO))
    return sorted(found)


class Fleet(object):
    def __init__(self, root, write=True):
        self.root = root
        self._cache = {}
        self.map_src = os.path.join(root, "placement.yml")
        self.inventory = os.path.join(root, "hosts.yml")
        if write:
            with open(self.map_src, "w") as handle:
                handle.write(START_MAP)
            self.write_inventory("hosts.yml")

    def dir(self, name):
        return os.path.join(self.root, name, "placement")

    def write_inventory(self, filename, overrides=None, map_src=None):
        hosts = {}
        for name in NAMES:
            hosts[name] = {"airflow_placement_dir": self.dir(name),
                           "airflow_placement_guard_dir": os.path.join(self.root, name, "config")}
            hosts[name].update((overrides or {}).get(name, {}))
        inventory = {"all": {"children": {"airflow_installations": {
            "hosts": hosts,
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "airflow_placement_map_src": map_src or self.map_src},
        }}}}
        path = os.path.join(self.root, filename)
        with open(path, "w") as handle:
            yaml.safe_dump(inventory, handle)
        return path

    def held(self, name):
        """(map, fenced) of an installation, read as its guard would (parsed again only when it changed)."""
        path = os.path.join(self.dir(name), "placement.yml")
        try:
            st = os.stat(path)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except OSError:
            signature = None
        cached = self._cache.get(path)
        if cached is None or cached[0] != signature:
            try:
                pmap = placement.read_map_file(path)
            except placement.PlacementError:
                pmap = None
            self._cache[path] = cached = (signature, pmap)
        return cached[1], os.path.exists(os.path.join(self.dir(name), "fence"))

    def generation(self, name=None):
        if name is None:
            return placement.read_map_file(self.map_src).generation
        pmap, _fenced = self.held(name)
        return pmap.generation if pmap else None

    def runners(self, dag_id, due=None):
        """Who runs the run of *dag_id* due at *due* (None: the DAG's current owner, as the tests assert it)."""
        found = []
        for name in NAMES:
            pmap, fenced = self.held(name)
            if pmap is not None and not fenced and (pmap.owner(dag_id) if due is None else pmap.owner_at(dag_id, due)) == name:
                found.append(name)
        return found

    def double_runs(self, dag_id):
        """``[(due, runners)]`` of the runs of *dag_id* that two installations would run now."""
        maps = [pmap for pmap, _fenced in (self.held(name) for name in NAMES) if pmap is not None]
        found = []
        for due in instants(maps, dag_id):
            runners = self.runners(dag_id, due)
            if len(runners) > 1:
                found.append((placement.format_time(due), runners))
        return found

    def owners(self):
        return dict((dag, self.runners(dag)) for dag in DAGS)

    def snapshot(self):
        found = {}
        for base, _dirs, files in os.walk(self.root):
            for name in files:
                if (name.endswith(".yml") or name == "fence") and os.path.isfile(os.path.join(base, name)) \
                        and not stat.S_ISFIFO(os.stat(os.path.join(base, name)).st_mode):
                    with open(os.path.join(base, name), "rb") as handle:
                        found[os.path.join(base, name)] = handle.read()
        return found


class Watcher(threading.Thread):
    """Re-reads every map every few ms: records double owners and generations that went back."""

    def __init__(self, fleet, interval=0.005):
        super().__init__(daemon=True)
        self.fleet, self.interval = fleet, interval
        self.stop_event = threading.Event()
        self.double, self.backwards, self.samples = [], [], 0
        self.last = {}

    def run(self):
        deadline = time.monotonic() + 900  # bounded: a test never runs this long
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            for dag in DAGS + ("dag_unlisted",):
                for due, runners in self.fleet.double_runs(dag):
                    self.double.append((dag, due, runners))
            for name in NAMES:
                generation = self.fleet.generation(name)
                if generation is not None:
                    if generation < self.last.get(name, -1):
                        self.backwards.append((name, self.last[name], generation))
                    self.last[name] = generation
            self.samples += 1
            time.sleep(self.interval)

    def finish(self):
        self.stop_event.set()
        self.join(10)
        assert self.samples > 10, "the watcher did not run"
        assert not self.double, "a run had two runners: %s" % self.double[:5]
        assert not self.backwards, "an installation went back in generation: %s" % self.backwards[:5]


def _set_up(root):
    first = run_playbook("publish.yml", Fleet(root).inventory)
    assert first.rc == 0, first


@pytest.fixture(scope="module")
def set_up_fleet(tmp_path_factory):
    return lab.SetUpOnce(tmp_path_factory, "fleet", _set_up)


@pytest.fixture
def fleet(set_up_fleet):
    """The three installations right after their first publish.yml (run once per module, copied back for each
    test), watched from the start."""
    set_up_fleet.fresh()
    fleet = Fleet(set_up_fleet.root, write=False)
    watcher = Watcher(fleet)
    watcher.start()
    fleet.watcher = watcher
    yield fleet
    watcher.finish()


# ----------------------------------------------------------------------------- 1. failed revoke


@pytest.fixture
def immutable():
    made = []

    def chattr(path):
        subprocess.run(["chattr", "+i", path], check=True, timeout=30)
        made.append(path)

    yield chattr
    for path in made:
        subprocess.run(["chattr", "-i", path], check=False, timeout=30)


def test_a_failed_revoke_grants_nothing_even_when_site_yml_runs_next(fleet, immutable):
    immutable(fleet.dir("server-1"))
    failed = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert failed.rc != 0
    assert "server-1 could not take placement map generation 1" in failed.text(), failed
    assert "its DAGs were not granted anywhere" in failed.text()
    assert fleet.generation() == 1 and fleet.generation("server-2") == 0
    assert fleet.owners() == {"dag_a": ["server-1"], "dag_b": ["server-1"], "dag_c": ["server-2"]}

    site = run_playbook("site.yml", fleet.inventory)
    assert site.rc != 0, "site.yml cannot finish while the old owner holds on"
    assert fleet.generation("server-2") == 0, "site.yml must not grant server-1's DAGs to server-2"
    assert fleet.owners() == {"dag_a": ["server-1"], "dag_b": ["server-1"], "dag_c": ["server-2"]}

    forced = run_playbook("failover.yml", fleet.inventory,
                          {"failover_from": "server-1", "failover_to": "server-2", "failover_force": True})
    assert forced.rc != 0, "forcing cannot help when the old owner can be neither revoked nor fenced"
    assert fleet.generation("server-2") == 0

    subprocess.run(["chattr", "-i", fleet.dir("server-1")], check=True, timeout=30)
    again = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert again.rc == 0, again
    assert [fleet.generation(name) for name in NAMES] == [1, 1, 1]
    assert fleet.owners() == {"dag_a": ["server-2"], "dag_b": ["server-2"], "dag_c": ["server-2"]}


def test_a_forced_failover_fences_an_old_owner_that_cannot_take_the_map(fleet, immutable):
    immutable(os.path.join(fleet.dir("server-1"), "placement.yml"))  # the directory stays writable
    forced = run_playbook("failover.yml", fleet.inventory,
                          {"failover_dags": "dag_a", "failover_to": "server-3", "failover_force": True})
    assert forced.rc == 0, forced
    assert "fenced, could not take the map: server-1" in forced.text()
    held, fenced = fleet.held("server-1")
    assert held.generation == 0 and fenced, "server-1 keeps its old map but runs nothing"
    assert fleet.owners() == {"dag_a": ["server-3"], "dag_b": [], "dag_c": ["server-2"]}


# ----------------------------------------------------------------------------- 2. one run at a time


def _wait_for_holder(fleet, run, playbook, timeout=120):
    """Wait (bounded) until *run* holds the fleet lock: its record in the lock file names *playbook*.

    The second run must start while the first holds the lock, however slow this machine is today:
    a fixed sleep let the second one take the lock first on a loaded machine.
    """
    lock = os.path.join(fleet.root, "placement.lock")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        if fleet_lock.read_record(lock).get("playbook") == playbook:  # {} until the record is written
            return
        time.sleep(0.05)
    raise AssertionError("%s did not take the fleet lock within %d s (it ended: %s)" % (playbook, timeout, run.poll()))


def test_site_yml_and_failover_yml_started_together_take_turns(fleet):
    site = start_playbook("site.yml", fleet.inventory, {})
    _wait_for_holder(fleet, site, "site.yml")
    failover = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-3"})
    site_out = site.communicate(timeout=600)[0]
    assert site.returncode == 0, site_out[-3000:]
    assert failover.rc != 0
    assert "the controller's map is locked by another run: site.yml by" in failover.text(), failover
    after = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-3"})
    assert after.rc == 0, after
    assert fleet.owners() == {"dag_a": ["server-3"], "dag_b": ["server-3"], "dag_c": ["server-2"]}


def test_two_failovers_at_once_one_runs_the_other_is_refused_naming_the_holder(fleet):
    first = start_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    _wait_for_holder(fleet, first, "failover.yml")
    second = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-3"})
    out = first.communicate(timeout=600)[0]
    assert first.returncode == 0, out[-3000:]
    assert second.rc != 0
    text = second.text()
    assert "locked by another run: failover.yml by" in text
    assert "-e {failover_from} -e {failover_to})" in text, "the holder's extra vars are named, never their values"
    assert fleet.owners() == {"dag_a": ["server-2"], "dag_b": ["server-2"], "dag_c": ["server-2"]}


def test_a_lock_never_outlives_its_run(fleet):
    run = start_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    lock = os.path.join(fleet.root, "placement.lock")
    deadline = time.monotonic() + 60
    while not os.path.exists(lock) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    again = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert again.rc == 0, again


# ----------------------------------------------------------------------------- 3. kill -9, then run again


def _changed(path, since):
    try:
        return os.stat(path).st_mtime_ns != since
    except FileNotFoundError:
        return since is not None


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


@pytest.mark.parametrize("step", ["journal", "controller", "revoke", "grant"])
def test_kill_at_each_step_then_run_again(fleet, step):
    watched = {
        "journal": os.path.join(fleet.root, "placement.failover.json"),
        "controller": fleet.map_src,
        "revoke": os.path.join(fleet.dir("server-1"), "placement.yml"),
        "grant": os.path.join(fleet.dir("server-2"), "placement.yml"),
    }[step]
    since = _mtime(watched)
    run = start_playbook("failover.yml", fleet.inventory,
                         {"failover_from": "server-1", "failover_dags": "dag_a", "failover_to": "server-2"})
    deadline = time.monotonic() + 120
    while not _changed(watched, since) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.002)
    assert _changed(watched, since), "the failover never reached the %s step" % step
    os.killpg(run.pid, signal.SIGKILL)
    run.communicate(timeout=60)
    fleet.watcher.stop_event.wait(0.3)  # let whatever the killed run left behind settle, watched
    again = run_playbook("failover.yml", fleet.inventory,
                         {"failover_from": "server-1", "failover_dags": "dag_a", "failover_to": "server-2"})
    assert again.rc == 0, again
    assert [fleet.generation(name) for name in NAMES] == [1, 1, 1]
    assert fleet.owners() == {"dag_a": ["server-2"], "dag_b": ["server-1"], "dag_c": ["server-2"]}
    with open(os.path.join(fleet.root, "placement.failover.json")) as handle:
        assert json.load(handle)["state"] == "done"
    twice = run_playbook("failover.yml", fleet.inventory,
                         {"failover_from": "server-1", "failover_dags": "dag_a", "failover_to": "server-2"})
    assert twice.rc == 0 and twice.changed() == 0, twice
    assert "nothing to move: server-2 already owns them" in twice.text()


# ----------------------------------------------------------------------------- 4. bad input


def test_a_map_over_the_size_limit_is_refused_before_anything_is_written(fleet):
    with open(fleet.map_src, "w") as handle:
        handle.write("".join("dag_%06d: server-1\n" % i for i in range(60000)))
    before = fleet.snapshot()
    run = run_playbook("site.yml", fleet.inventory)
    assert run.rc != 0 and "more than the limit of 1000000" in run.text(), run
    assert fleet.snapshot() == before


def test_an_alias_bomb_is_refused_quickly_with_a_short_message(fleet):
    with open(fleet.map_src, "w") as handle:
        handle.write('a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
            "%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n" % ((chr(98 + i), chr(98 + i)) + (chr(97 + i),) * 9)
            for i in range(8)))
    start = time.monotonic()
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2"})
    assert run.rc != 0 and time.monotonic() - start < 60
    assert "anchors and aliases (&name, *name) are not allowed" in run.text()
    assert len(run.stdout) < 200000, "the error output stays small (%d bytes)" % len(run.stdout)


@pytest.mark.parametrize("updated_by", ["ops\u0007", "a\u001bb", "x\u0085"])
def test_control_characters_never_reach_a_map(fleet, updated_by, tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "failback.airflow.dag_placement": {"path": fleet.map_src, "installations": list(NAMES),
                                           "assign": {"dag_d": "server-3"}, "updated_by": updated_by},
        "vars": {"ansible_python_interpreter": sys.executable, "ansible_connection": "local"}}]}]))
    before = fleet.snapshot()
    run = run_playbook(str(play), "localhost,")
    assert run.rc != 0 and "contains the control character" in run.text(), run
    assert fleet.snapshot() == before
    assert run_playbook("site.yml", fleet.inventory).rc == 0


@pytest.mark.parametrize("args, message", [
    ({"mode": "abc"}, "mode 'abc' is not a file mode: give it in octal as a quoted string"),
    ({"owner": "nosuchuser"}, "failed to look up user nosuchuser"),
])
def test_bad_file_arguments_change_nothing(fleet, tmp_path, args, message):
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "failback.airflow.dag_placement": dict({"path": fleet.map_src, "installations": list(NAMES),
                                                "assign": {"dag_d": "server-3"}}, **args),
        "vars": {"ansible_python_interpreter": sys.executable, "ansible_connection": "local"}}]}]))
    before = fleet.snapshot()
    run = run_playbook(str(play), "localhost,")
    assert run.rc != 0 and message in run.text(), run
    assert fleet.snapshot() == before and fleet.generation() == 0
    assert sorted(os.listdir(fleet.root)) == sorted(set(os.listdir(fleet.root)))  # no temporary file left
    assert not [name for name in os.listdir(fleet.root) if name.endswith(".tmp")]


def test_a_symlinked_controller_map_stays_a_link(fleet, tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    target = checkout / "placement.yml"
    os.rename(fleet.map_src, str(target))
    os.symlink(str(target), fleet.map_src)
    run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_c", "failover_to": "server-3"})
    assert run.rc == 0, run
    assert os.path.islink(fleet.map_src) and os.readlink(fleet.map_src) == str(target)
    assert placement.read_map_file(str(target)).owner("dag_c") == "server-3"


def test_a_fifo_as_controller_map_fails_at_once(fleet, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    fifo = tmp_path / "elsewhere" / "placement-fifo.yml"
    os.mkfifo(str(fifo))
    inventory = fleet.write_inventory("fifo-inventory.yml", map_src=str(fifo))
    start = time.monotonic()
    run = run_playbook("site.yml", inventory, timeout=120)
    assert run.rc != 0 and "it is a FIFO, not a regular file" in run.text(), run
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("dags, message", [
    ({"dag_a": "server-2"}, "failover_dags is {'dag_a': 'server-2'} (a mapping): give DAG ids as a comma-separated string"),
    (49, "failover_dags is 49 (a number)"),
    ("{{ 7 * 7 }}", "failover_dags is 49 (a number)"),
    ([1], "listed DAG 1 is of type int"),
])
def test_bad_dag_lists_are_named(fleet, dags, message):
    before = fleet.snapshot()
    run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": dags, "failover_to": "server-2"})
    assert run.rc != 0 and message in run.text(), run
    assert fleet.snapshot() == before


# ----------------------------------------------------------------------------- 5. runs, not DAGs


def slow_python(tmp_path, seconds):
    """An interpreter that waits *seconds* before every module: that installation's writes lag behind."""
    script = tmp_path / ("python-slow-%s" % seconds)
    script.write_text("#!/bin/sh\nsleep %s\nexec %s \"$@\"\n" % (seconds, sys.executable))
    script.chmod(0o755)
    return str(script)


def _hours_ago(hours):
    return placement.format_time(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours))


def test_dags_rotated_past_the_handover_cap_never_give_a_run_two_runners(fleet, tmp_path):
    """dag_a and dag_b rotated server-1 -> server-2 -> server-3 -> ... past the 8-handover cap."""
    owners = ["server-1", "server-2", "server-3"]
    history = "".join('      - {at: "%s", from: "%s"}\n' % (_hours_ago(9 - step), owners[step % 3]) for step in range(7))
    with open(fleet.map_src, "w") as handle:
        handle.write('"@failback":\n  generation: 5\n  handovers:\n    dag_a:\n%s    dag_b:\n%s'
                     'dag_a: server-2\ndag_b: server-2\ndag_c: server-2\n' % (history, history))
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    slow = fleet.write_inventory("slow.yml", {"server-3": {"ansible_python_interpreter": slow_python(tmp_path, 2)}})
    for source, to in (("server-2", "server-3"), ("server-3", "server-1"), ("server-1", "server-2")):
        run = run_playbook("failover.yml", slow, {"failover_from": source, "failover_dags": "dag_a,dag_b", "failover_to": to})
        assert run.rc == 0, run
    control = placement.read_map_file(fleet.map_src)
    kept = control.history("dag_a")
    assert len(kept) == placement.MAX_HANDOVERS and kept[0].floor, kept
    assert control.owner_at("dag_a", _hours_ago(10)) is None, "the forgotten runs belong to nobody"
    assert fleet.runners("dag_a", kept[0].at_time - MICRO) == []
    fleet.watcher.finish()


def test_catchup_since_run_again_revokes_the_old_owner_first(fleet, tmp_path):
    first = run_playbook("failover.yml", fleet.inventory,
                         {"failover_from": "server-1", "failover_dags": "dag_a", "failover_to": "server-2",
                          "failover_force": True})
    assert first.rc == 0, first
    handover = placement.read_map_file(fleet.map_src).last_handover("dag_a").at_time
    since = placement.format_time(handover - datetime.timedelta(minutes=30))
    slow = fleet.write_inventory("slow.yml", {"server-1": {"ansible_python_interpreter": slow_python(tmp_path, 5)}})
    again = run_playbook("failover.yml", slow, {"failover_from": "server-1", "failover_dags": "dag_a", "failover_to": "server-2",
                                                "failover_force": True, "failover_catchup_since": since})
    assert again.rc == 0, again
    assert "no DAG changed owner, runs did: dag_a runs due from %s to %s: server-1 -> server-2" % (
        since, placement.format_time(handover)) in again.text(), again
    assert "revoke first: server-1" in again.text()
    assert fleet.runners("dag_a", since) == ["server-2"]
    fleet.watcher.finish()


def test_a_handover_edited_into_the_future_is_refused_before_anything_is_written(fleet):
    with open(fleet.map_src, "w") as handle:
        handle.write('"@failback":\n  generation: 3\n  handovers:\n    dag_a:\n'
                     '      - {at: "2099-01-01T00:00:00Z", from: "server-3"}\ndag_a: server-1\ndag_b: server-1\n'
                     'dag_c: server-2\n')
    before = fleet.snapshot()
    for playbook, extra in (("site.yml", {}), ("failover.yml", {"failover_dags": "dag_c", "failover_to": "server-3"})):
        run = run_playbook(playbook, fleet.inventory, extra)
        assert run.rc != 0, run
        assert "placement map %s: handovers of dag_a: at 2099-01-01T00:00:00Z is in the future" % fleet.map_src \
            in run.text() or "the controller's map %s: handovers of dag_a: at 2099-01-01T00:00:00Z is in the future" \
            % fleet.map_src in run.text(), run
        assert fleet.snapshot() == before


def released(lock):
    """Wait (bounded) until the holder of the last run has let go of the fleet lock."""
    deadline = time.monotonic() + 10
    with open(lock, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
                return
            except OSError:
                assert time.monotonic() < deadline, "the fleet lock was not let go"
                time.sleep(0.05)


def test_lock_and_journal_files_are_never_followed_or_waited_on(fleet, tmp_path):
    lock = os.path.join(fleet.root, "placement.lock")
    journal = os.path.join(fleet.root, "placement.failover.json")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    released(lock)
    os.unlink(lock)
    os.symlink(str(precious), lock)
    run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_c", "failover_to": "server-3"})
    assert run.rc != 0 and "the fleet lock file %s is a symbolic link" % lock in run.text(), run
    assert precious.read_text() == "keep me\n"
    os.unlink(lock)
    for path, check in ((lock, True), (journal, False)):
        os.mkfifo(path)
        start = time.monotonic()
        run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_c", "failover_to": "server-3"},
                           check=check, timeout=120)
        assert run.rc != 0 and "is a FIFO, not a regular file" in run.text(), run
        assert time.monotonic() - start < 60
        os.unlink(path)
    assert fleet.generation() == 0


def test_a_stale_lock_and_an_ignored_journal_are_said(fleet):
    lock = os.path.join(fleet.root, "placement.lock")
    released(lock)
    with open(lock, "w") as handle:
        json.dump({"playbook": "failover.yml", "holder": "alice@gone", "pid": 4711, "host": "gone",
                   "since": "2026-12-01T10:00:00Z", "command": "ansible-playbook failover.yml"}, handle)
    with open(os.path.join(fleet.root, "placement.failover.json"), "w") as handle:
        json.dump({"state": "committed", "generation": 99, "before": {}, "after": {}, "by": "bob@gone",
                   "started_at": "2026-12-01T09:00:00Z", "requests": [{"to": "server-3"}]}, handle)
    run = run_playbook("failover.yml", fleet.inventory, {"failover_dags": "dag_c", "failover_to": "server-3"})
    assert run.rc == 0, run
    text = " ".join(run.text().split())
    assert "took over the fleet lock %s left by failover.yml of alice@gone (process 4711 on gone" % lock in text, run
    assert "records an unfinished failover (generation 99, started 2026-12-01T09:00:00Z by bob@gone)" in text, run


@pytest.mark.parametrize("playbook, extra, message", [
    ("failover.yml", {"failover_drain_timeout": -5}, "failover_drain_timeout=-5 is out of range: give whole seconds from 0 to 86400"),
    ("failover.yml", {"failover_drain_timeout": "abc"}, "argument 'failover_drain_timeout' is of type"),
    ("failover.yml", {"failover_drain_timeout": "300s"}, "argument 'failover_drain_timeout' is of type"),
    ("failover.yml", {"failover_catchup_lookback": -1}, "failover_catchup_lookback=-1 is out of range"),
    ("failover.yml", {"failover_drain": "maybe"}, "The value 'maybe' is not a valid boolean"),
    ("failover.yml", {"failover_catchup": "maybe"}, "The value 'maybe' is not a valid boolean"),
    ("failover.yml", {"failover_drian": False}, "Unknown extra var(s) failover_drian: a typo would be ignored silently"),
    ("status.yml", {"status_check_files": "maybe"}, "The value 'maybe' is not a valid boolean"),
    ("status.yml", {"status_fail_on": "sometimes"}, "value of status_fail_on must be one of: warning, error, critical, got: sometimes"),
    ("status.yml", {"status_files_differ": {"server-9": ["/x"]}}, "files_differ names 'server-9', which is not an installation"),
])
def test_extra_vars_that_are_not_what_they_say_are_refused(fleet, playbook, extra, message):
    extra = dict({"failover_dags": "dag_c", "failover_to": "server-3"} if playbook == "failover.yml" else {}, **extra)
    before = fleet.snapshot()
    run = run_playbook(playbook, fleet.inventory, extra)
    assert run.rc != 0 and message in run.text(), run
    assert fleet.snapshot() == before

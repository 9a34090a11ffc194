"""A fleet that pulls its map from an S3 bucket (airflow_placement_source type s3), against moto on 127.0.0.1.

Two directory installations (local connection). publish.yml writes the bucket revoke first: the
revoke stage, a wait of the lease plus the clock margin, then the map. A watcher reads the bucket
every 20 ms for the whole run and asks, for every run that matters, who would run it: an
installation whose guard still holds the map before (for its lease) and one that read the newest
object must never both run one run.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest
import yaml

import failback_testlib as lab
from ansible_collections.failback.airflow.plugins.module_utils import placement, s3_object
from failback_ansible import REPO, run_playbook, start_playbook

MOTO = os.path.join(REPO, ".venv-airflow", "bin", "moto_server")
NAMES = ("server-1", "server-2")
READER = {"access_key_id": "AKIAFAILBACKREADER01", "secret_access_key": "r3ader-s3cret-value"}
WRITER = {"access_key_id": "AKIAFAILBACKWRITER01", "secret_access_key": "wr1ter-s3cret-value"}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    port = lab.free_port()
    log = open(str(tmp_path_factory.mktemp("moto") / "moto.log"), "w")
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    lab.wait_port(port, proc, "moto_server", timeout=60)
    yield "http://127.0.0.1:%d" % port
    lab.stop_process(proc, timeout=15)
    log.close()


class PullFleet(object):
    def __init__(self, root, endpoint, lease=4, refresh=1, margin=1):
        self.root = str(root)
        self.bucket_name = "maps-%s" % uuid.uuid4().hex[:12]
        self.bucket = s3_object.Bucket(self.bucket_name, region="eu-west-1", endpoint=endpoint, credentials=WRITER)
        import urllib.request
        urllib.request.urlopen(urllib.request.Request("%s/%s" % (endpoint, self.bucket_name), method="PUT"),
                               timeout=10).close()
        self.map_src = os.path.join(self.root, "placement.yml")
        writer = os.path.join(self.root, "writer.json")
        with open(writer, "w") as handle:
            json.dump(WRITER, handle)
        self.source = {"type": "s3", "url": "s3://%s/failback/placement.yml" % self.bucket_name,
                       "region": "eu-west-1", "endpoint": endpoint, "refresh": refresh, "lease": lease,
                       "clock_margin": margin, "credentials": READER, "controller_credentials_file": writer}
        if margin is None:
            del self.source["clock_margin"]  # the role's default (5 s) applies
        hosts = dict((name, {"airflow_placement_dir": os.path.join(self.root, name, "placement"),
                             "airflow_placement_guard_dir": os.path.join(self.root, name, "config")}) for name in NAMES)
        self.inventory = os.path.join(self.root, "hosts.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump({"all": {"children": {"airflow_installations": {"hosts": hosts, "vars": {
                "ansible_connection": "local", "ansible_python_interpreter": os.path.join(REPO, ".venv", "bin", "python"),
                "airflow_placement_map_src": self.map_src, "airflow_placement_source": self.source}}}}}, handle)

    def write_map(self, pmap):
        with open(self.map_src, "w") as handle:
            handle.write(placement.dump_map(pmap))

    def authority(self):
        status, body, _etag = self.bucket.get("failback/placement.yml")
        return placement.parse_map(body.decode("utf-8")) if status == 200 else None


class Watcher(threading.Thread):
    """Every object the bucket served, and any run that a guard with the previous map (within its
    lease) and a guard with the newest one would both run."""

    def __init__(self, fleet, lease):
        super().__init__(daemon=True)
        self.fleet, self.lease = fleet, lease
        self.stop_event = threading.Event()
        self.seen, self.double = [], []
        self.first_seen = {}  # (generation, stage): when the bucket first served it (time.time())

    def run(self):
        deadline = time.monotonic() + 600
        held = []  # (map, confirmed at)
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            current = self.fleet.authority()
            now = time.monotonic()
            if current is not None:
                if not self.seen or (current.generation, current.stage) != self.seen[-1]:
                    self.seen.append((current.generation, current.stage))
                    self.first_seen.setdefault((current.generation, current.stage), time.time())
                held = [(m, t) for m, t in held if now - t <= self.lease and m.to_data() != current.to_data()]
                held.append((current, now))
                for old, _t in held[:-1]:
                    for dag in ("dag_a", "dag_b"):
                        for due in (None, "2026-01-01T00:00:00Z", placement.utc_now()):
                            a, b = old.owner_at(dag, due), current.owner_at(dag, due)
                            if a is not None and b is not None and a != b:
                                self.double.append((dag, due, a, b, old.generation, current.generation, current.stage))
            time.sleep(0.02)

    def finish(self):
        self.stop_event.set()
        self.join(10)


def test_publish_writes_the_bucket_revoke_first_and_waits_for_the_lease(tmp_path, endpoint):
    fleet = PullFleet(tmp_path, endpoint)
    first_map = placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1)
    fleet.write_map(first_map)
    first = run_playbook("publish.yml", fleet.inventory)
    assert first.rc == 0, first
    assert fleet.authority().dags == first_map.dags and fleet.authority().stage is None
    assert READER["secret_access_key"] not in first.text() and WRITER["secret_access_key"] not in first.text()

    moved = placement.stamp(first_map, first_map.replace(dags={"dag_a": "server-2", "dag_b": "server-2"}), "test")
    fleet.write_map(moved)
    watcher = Watcher(fleet, lease=4)
    watcher.start()
    started = time.monotonic()
    second = run_playbook("publish.yml", fleet.inventory)
    took = time.monotonic() - started
    watcher.finish()
    assert second.rc == 0, second
    assert (2, "revoke") in watcher.seen and watcher.seen[-1] == (2, None), watcher.seen
    assert watcher.seen.index((2, "revoke")) < len(watcher.seen) - 1
    assert not watcher.double, watcher.double[:5]
    assert took >= 5, took  # the lease (4 s) and the clock margin (1 s) after the revoke stage
    assert "waiting" in second.text() and "before the grant" in second.text()
    again = run_playbook("publish.yml", fleet.inventory)
    assert again.rc == 0 and again.changed() == 0, again


@pytest.mark.parametrize("old_owner_down, since", [(False, None), (True, None), (False, "")],
                         ids=["planned", "forced-old-owner-unreachable", "empty-catchup-since"])
def test_failover_writes_the_revoke_stage_waits_and_grants(tmp_path, endpoint, old_owner_down, since):
    fleet = PullFleet(tmp_path, endpoint)
    fleet.write_map(placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1))
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    inventory = fleet.inventory
    extra = {"failover_from": "server-1", "failover_to": "server-2", "failover_dags": "dag_a"}
    if old_owner_down:
        with open(fleet.inventory) as handle:
            data = yaml.safe_load(handle)
        data["all"]["children"]["airflow_installations"]["hosts"]["server-1"].update(
            ansible_connection="ssh", ansible_host="127.0.0.1", ansible_port=1)
        inventory = os.path.join(fleet.root, "down.yml")
        with open(inventory, "w") as handle:
            yaml.safe_dump(data, handle)
        extra["failover_force"] = True
    if since is not None:
        extra["failover_catchup_since"] = since  # what the watcher sends for "no catch-up": no since at all
    watcher = Watcher(fleet, lease=4)
    watcher.start()
    started, wall = time.monotonic(), time.time()
    run = run_playbook("failover.yml", inventory, extra)
    took = time.monotonic() - started
    watcher.finish()
    assert run.rc == 0, run
    final = fleet.authority()
    assert final.owner("dag_a") == "server-2" and final.stage is None
    assert (final.generation, "revoke") in watcher.seen and watcher.seen[-1] == (final.generation, None), watcher.seen
    assert not watcher.double, watcher.double[:5]
    assert took >= 5 and "before the grant" in run.text(), (took, run)
    # server-1 was not asked which runs it started (no Airflow API here; in the forced case not even
    # reachable): it may have run dag_a's runs until its lease was certainly over - those stay its own
    # (the revoke stage, generation 2, then the map that holds them back, generation 3).
    handover = final.last_handover("dag_a")
    at = placement.parse_time(handover.at).timestamp()
    assert handover.source == "server-1" and final.generation == 3, final.to_data()
    assert wall + 5 <= at <= time.time(), (wall, handover.at)
    assert final.owner_at("dag_a", datetime.datetime.fromtimestamp(at - 1, datetime.timezone.utc)) == "server-1"
    assert final.owner_at("dag_a", handover.at) == "server-2"
    with open(fleet.map_src) as handle:
        assert placement.parse_map(handle.read()).to_data() == final.to_data(), "the controller's map is the same"
    again = run_playbook("failover.yml", inventory, extra)
    assert again.rc == 0 and fleet.authority().to_data() == final.to_data(), again


def test_a_reachable_old_owner_handed_the_revoke_stage_spares_the_lease_wait(tmp_path, endpoint):
    """failover.yml writes the revoke stage into the guard cache of the old owner it reaches
    (placement_guard_cache), as confirmed now: the grant follows one refresh later, not a lease later, and
    the runs the old owner may still have started (it has no API here to be asked) are its own only until
    then. The new owner's cache is not touched; run again, the same command changes nothing."""
    fleet = PullFleet(tmp_path, endpoint, lease=120, refresh=1, margin=1)
    with open(fleet.inventory) as handle:
        data = yaml.safe_load(handle)
    for name, host in data["all"]["children"]["airflow_installations"]["hosts"].items():
        host["airflow_placement_cache_dir"] = os.path.join(fleet.root, name, "placement-cache")
        os.makedirs(host["airflow_placement_cache_dir"], mode=0o700)
    with open(fleet.inventory, "w") as handle:
        yaml.safe_dump(data, handle)
    fleet.write_map(placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1))
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    watcher = Watcher(fleet, lease=120)
    watcher.start()
    started, wall = time.monotonic(), time.time()
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2",
                                                         "failover_dags": "dag_a"})
    took = time.monotonic() - started
    watcher.finish()
    assert run.rc == 0, run
    said = " ".join(run.text().split())
    waits = [float(w) for w in re.findall(r"waiting ([0-9.]+) s before the grant", said)]
    assert "every old owner's guard was handed it" in said and waits and max(waits) <= 1.0 and took < 120, (took, run)
    cache = os.path.join(fleet.root, "server-1", "placement-cache", placement.guard_cache_name(fleet.source["url"]))
    with open(cache) as handle:
        entry = json.load(handle)
    handed = placement.parse_map(entry["body"])
    assert (handed.generation, handed.stage) == (2, "revoke") and entry["checked_at"] == entry["ok_at"]
    assert handed.owner_at("dag_a", placement.utc_now()) is None and handed.owner("dag_b") == "server-2"
    assert wall <= entry["checked_at"] <= time.time()
    assert os.listdir(os.path.join(fleet.root, "server-2", "placement-cache")) == []
    final = fleet.authority()
    assert final.owner("dag_a") == "server-2" and final.stage is None
    granted = watcher.first_seen[(final.generation, None)]
    assert granted >= entry["checked_at"] + 1 - 0.1, (granted, entry["checked_at"])
    # server-1 keeps dag_a's runs due until one refresh after it was handed the revoke stage, no longer
    at = placement.parse_time(final.last_handover("dag_a").at).timestamp()
    assert entry["checked_at"] <= at <= entry["checked_at"] + 1 + 2, (at, entry["checked_at"])
    again = run_playbook("failover.yml", fleet.inventory, {"failover_from": "server-1", "failover_to": "server-2",
                                                           "failover_dags": "dag_a"})
    assert again.rc == 0 and fleet.authority().to_data() == final.to_data(), again


def test_status_reads_the_authority_and_a_stopped_stage_is_a_finding_until_publish_finishes_it(tmp_path, endpoint):
    fleet = PullFleet(tmp_path, endpoint, margin=None)
    first_map = placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1)
    fleet.write_map(first_map)
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    healthy = run_playbook("status.yml", fleet.inventory)
    assert healthy.rc == 0, healthy
    assert "guards read the map from %s (lease 4 s, refresh 1 s): generation 1" % fleet.source["url"] in healthy.text()

    # A publish that stopped after the revoke stage (killed during the lease wait): the controller's
    # map is generation 2, the bucket holds its revoke stage.
    moved = placement.stamp(first_map, first_map.replace(dags={"dag_a": "server-2", "dag_b": "server-2"}), "test")
    fleet.write_map(moved)
    from ansible_collections.failback.airflow.plugins.module_utils import placement_plan
    stage = placement_plan.revoke_map(first_map, moved)
    _status, _body, etag = fleet.bucket.get("failback/placement.yml")
    fleet.bucket.put("failback/placement.yml", placement.dump_map(stage).encode("utf-8"), if_match=etag)
    stopped = run_playbook("status.yml", fleet.inventory, {"status_fail_on": "error"})
    assert stopped.rc == 2, stopped
    assert "authority_revoke_stage" in stopped.text() and "generation 2, revoke stage" in stopped.text(), stopped

    finished = run_playbook("publish.yml", fleet.inventory)
    assert finished.rc == 0, finished
    assert "lease (4 s) plus 5 s of clock margin" in finished.text(), "the default margin applies"
    assert fleet.authority().generation == 2 and fleet.authority().stage is None
    done = run_playbook("status.yml", fleet.inventory)
    assert done.rc == 0 and "authority_" not in done.text(), done


@pytest.mark.parametrize("change, named", [
    ({"lease": 0}, "airflow_placement_source.lease is 0: give at least 1 seconds"),
    ({"lease": 0.5}, "argument 'lease' is of type float"),
    ({"lease": 10, "refresh": 20}, "airflow_placement_source.lease is 10, shorter than refresh 20"),
    ({"clock_margin": -1}, "airflow_placement_source.clock_margin is -1"),
    ({"controller_credentials_file": "/nonexistent/writer.json"}, "airflow_placement_source.controller_credentials_file"),
])
def test_a_bad_source_stops_site_before_anything_is_written(tmp_path, endpoint, change, named):
    fleet = PullFleet(tmp_path, endpoint)
    with open(fleet.inventory) as handle:
        data = yaml.safe_load(handle)
    data["all"]["children"]["airflow_installations"]["vars"]["airflow_placement_source"].update(change)
    with open(fleet.inventory, "w") as handle:
        yaml.safe_dump(data, handle)
    fleet.write_map(placement.PlacementMap({"dag_a": "server-1"}, 1))
    run = run_playbook("publish.yml", fleet.inventory)
    assert run.rc != 0 and named in run.text(), run
    assert fleet.authority() is None, "nothing was written to the bucket"
    for name in NAMES:
        assert not os.path.exists(os.path.join(fleet.root, name, "placement", "placement.yml")), name


# kill -9 of a failover at each authority step (waiting for the lease after the revoke stage, after
# the map that holds the gap back, right after the grant), then the same command: it finishes the
# move, and no run ever has two runners at the bucket.
@pytest.mark.parametrize("seen", [(2, "revoke"), (3, "revoke"), (3, None)], ids=["revoke", "held", "grant"])
def test_a_failover_killed_at_an_authority_step_is_finished_by_the_same_command(tmp_path, endpoint, seen):
    fleet = PullFleet(tmp_path, endpoint)
    fleet.write_map(placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-2"}, 1))
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    extra = {"failover_from": "server-1", "failover_to": "server-2", "failover_dags": "dag_a"}
    watcher = Watcher(fleet, lease=4)
    watcher.start()
    run = start_playbook("failover.yml", fleet.inventory, extra)
    deadline = time.monotonic() + 180
    while seen not in watcher.seen and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.01)
    reached = seen in watcher.seen
    os.killpg(run.pid, signal.SIGKILL)
    out = run.communicate(timeout=60)[0]
    assert reached, (watcher.seen, out[-3000:])
    again = run_playbook("failover.yml", fleet.inventory, extra)
    watcher.finish()
    assert again.rc == 0, again
    final = fleet.authority()
    assert final.owner("dag_a") == "server-2" and final.stage is None, final.to_data()
    assert final.last_handover("dag_a").source == "server-1"
    assert not watcher.double, watcher.double[:5]
    with open(fleet.map_src) as handle:
        assert placement.parse_map(handle.read()).to_data() == final.to_data()
    with open(os.path.join(fleet.root, "placement.failover.json")) as handle:
        assert json.load(handle)["state"] == "done"


def test_a_failover_stops_before_anything_changes_when_the_authority_lags_the_controller(tmp_path, endpoint):
    fleet = PullFleet(tmp_path, endpoint)
    first_map = placement.PlacementMap({"dag_a": "server-1", "dag_b": "server-1"}, 1)
    fleet.write_map(first_map)
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    # dag_b moved by hand on the controller, not published: the guards still decide with generation 1
    edited = placement.stamp(first_map, first_map.replace(dags={"dag_a": "server-1", "dag_b": "server-2"}), "test")
    fleet.write_map(edited)
    extra = {"failover_from": "server-1", "failover_to": "server-2", "failover_dags": "dag_a"}
    refused = run_playbook("failover.yml", fleet.inventory, extra)
    assert refused.rc != 0, refused
    assert "holds generation 1; this failover moves from generation 2" in refused.text(), refused
    assert "Run publish.yml first" in refused.text()
    assert fleet.authority().generation == 1 and fleet.authority().stage is None, "nothing was written to the bucket"
    with open(fleet.map_src) as handle:
        assert placement.parse_map(handle.read()).generation == 2, "nor to the controller's map"
    assert run_playbook("publish.yml", fleet.inventory).rc == 0
    moved = run_playbook("failover.yml", fleet.inventory, extra)
    assert moved.rc == 0, moved
    final = fleet.authority()
    assert final.owner("dag_a") == "server-2" and final.owner("dag_b") == "server-2" and final.stage is None


def test_the_installations_keys_reach_a_server_as_a_file_and_a_cluster_as_a_secret_and_go_when_unused(tmp_path, endpoint):
    """site.yml's placement part on a directory installation and a cluster (the test Kubernetes API):
    the reader keys as a 0640 file and as the Secret the pods mount, never in the output; with the
    source back to push both are removed."""
    import base64
    import stat

    from fake_kube import FakeKube

    fleet = PullFleet(tmp_path, endpoint)
    fleet.write_map(placement.PlacementMap({"dag_a": "server-1", "dag_b": "k8s-prod"}, 1))
    with FakeKube(namespaces=["af"]) as kube:
        kubeconfig = os.path.join(fleet.root, "kubeconfig")
        with open(kubeconfig, "w") as handle:
            handle.write(kube.kubeconfig())
        with open(fleet.inventory) as handle:
            data = yaml.safe_load(handle)
        group = data["all"]["children"]["airflow_installations"]
        group["hosts"] = {"server-1": group["hosts"]["server-1"], "k8s-prod": {
            "airflow_placement_target": "kubernetes", "airflow_placement_kubernetes_namespace": "af",
            "airflow_placement_kubernetes_kubeconfig": kubeconfig}}
        with open(fleet.inventory, "w") as handle:
            yaml.safe_dump(data, handle)
        first = run_playbook("site.yml", fleet.inventory)
        assert first.rc == 0, first
        assert READER["secret_access_key"] not in first.text() and WRITER["secret_access_key"] not in first.text()
        keys_file = os.path.join(fleet.root, "server-1", "placement", "s3-credentials.json")
        assert stat.S_IMODE(os.stat(keys_file).st_mode) == 0o640
        with open(keys_file) as handle:
            assert json.load(handle) == READER
        secret = kube.objects[("secrets", "af", "failback-placement-s3")]
        assert json.loads(base64.b64decode(secret["data"]["s3-credentials.json"])) == READER
        assert fleet.authority().generation == 1
        again = run_playbook("site.yml", fleet.inventory)
        assert again.rc == 0 and again.changed() == 0, again

        group["vars"]["airflow_placement_source"] = {"type": "push"}
        with open(fleet.inventory, "w") as handle:
            yaml.safe_dump(data, handle)
        pushed = run_playbook("site.yml", fleet.inventory)
        assert pushed.rc == 0, pushed
        assert not os.path.exists(keys_file) and ("secrets", "af", "failback-placement-s3") not in kube.objects

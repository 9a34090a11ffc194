"""The placement map on a Kubernetes installation, against a Kubernetes API on 127.0.0.1.

The fake API (tests/fake_kube.py) keeps ConfigMaps with resourceVersions and refuses a
replace whose version is stale, as the API server does. One cluster installation (ConfigMaps in
namespace ``af``) and one directory installation; site.yml, publish.yml and failover.yml:

* the guard and map ConfigMaps are created, and a second run changes nothing;
* a failover away from the cluster revokes it first (its ConfigMap is replaced before the other
  installation is granted), and a ``fence`` key disappears with the publish;
* a concurrent change of the ConfigMap between read and publish makes the publish fail (HTTP
  409) instead of overwriting it, and nothing is granted;
* a cluster whose API does not answer counts as unreachable: the failover stops unless forced.
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from ansible_collections.failback.airflow.plugins.module_utils import placement
from failback_ansible import run_playbook

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "credentials"))
from fake_kube import FakeKube  # noqa: E402  (tests/fake_kube.py)

START_MAP = "dag_a: k8s-prod\ndag_b: server-1\n"


class Fleet(object):
    def __init__(self, root, kube):
        self.root, self.kube = root, kube
        self.map_src = os.path.join(root, "placement.yml")
        with open(self.map_src, "w") as handle:
            handle.write(START_MAP)
        kubeconfig = os.path.join(root, "kubeconfig")
        with open(kubeconfig, "w") as handle:
            handle.write(kube.kubeconfig())
        inventory = {"all": {"children": {"airflow_installations": {
            "hosts": {
                "server-1": {"airflow_placement_dir": os.path.join(root, "server-1", "placement"),
                             "airflow_placement_guard_dir": os.path.join(root, "server-1", "config")},
                "k8s-prod": {"airflow_placement_target": "kubernetes", "airflow_placement_kubernetes_namespace": "af",
                             "airflow_placement_kubernetes_kubeconfig": kubeconfig},
            },
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "airflow_placement_map_src": self.map_src},
        }}}}
        self.inventory = os.path.join(root, "hosts.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(inventory, handle)

    def cluster_map(self):
        cm = self.kube.configmap("af", "failback-placement")
        return placement.parse_map(cm["data"]["placement.yml"]) if cm else None

    def server_map(self):
        return placement.read_map_file(os.path.join(self.root, "server-1", "placement", "placement.yml"))


@pytest.fixture
def fleet(tmp_path):
    with FakeKube(namespaces=["af"]) as kube:
        fleet = Fleet(str(tmp_path), kube)
        first = run_playbook("site.yml", fleet.inventory)
        assert first.rc == 0, first
        yield fleet


def test_site_yml_publishes_the_guard_and_the_map_as_configmaps(fleet):
    guard = fleet.kube.configmap("af", "failback-guard")
    assert sorted(guard["data"]) == ["airflow_local_settings.py", "failback_guard.py", "failback_operators.py",
                                     "failback_placement.py", "failback_s3.py"]
    assert fleet.cluster_map().dags == {"dag_a": "k8s-prod", "dag_b": "server-1"}
    version = fleet.kube.configmap("af", "failback-placement")["metadata"]["resourceVersion"]
    again = run_playbook("site.yml", fleet.inventory)
    assert again.rc == 0 and again.changed() == 0, again
    assert fleet.kube.configmap("af", "failback-placement")["metadata"]["resourceVersion"] == version


def test_a_failover_away_from_the_cluster_revokes_it_first_and_a_publish_lifts_its_fence(fleet):
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "k8s-prod", "failover_to": "server-1"})
    assert run.rc == 0, run
    revoke = [p for p in run.json["plays"] if p["play"]["name"].startswith("Revoke")][0]
    published = [t for t in revoke["tasks"] if "ConfigMap (compare-and-swap)" in t["task"]["name"]]
    assert list(published[0]["hosts"]) == ["k8s-prod"], "the old owner (the cluster) is revoked first"
    assert fleet.cluster_map().generation == fleet.server_map().generation == 1
    assert fleet.server_map().owner("dag_a") == "server-1"
    puts = [r for r in fleet.kube.requests if r["method"] == "PUT"]
    assert puts and all(r["body"]["metadata"].get("resourceVersion") for r in puts), "every replace is conditional"

    fleet.kube.objects[("configmaps", "af", "failback-placement")]["data"]["fence"] = "fenced at t: restarted"
    lifted = run_playbook("publish.yml", fleet.inventory)
    assert lifted.rc == 0, lifted
    assert "fence" not in fleet.kube.configmap("af", "failback-placement")["data"]
    assert fleet.cluster_map().generation == 1


def test_a_concurrent_change_of_the_configmap_is_not_overwritten(fleet):
    key = ("configmaps", "af", "failback-placement")

    def someone_else_writes(read_key):
        if read_key == key:
            fleet.kube.before_get = None
            fleet.kube.bump(key)

    fleet.kube.before_get = someone_else_writes
    run = run_playbook("failover.yml", fleet.inventory, {"failover_from": "k8s-prod", "failover_to": "server-1"})
    assert run.rc != 0
    assert "k8s-prod could not take placement map generation 1" in run.text(), run
    assert "Conflict" in run.text() or "409" in run.text()
    assert fleet.cluster_map().generation == 0, "the concurrent version was not overwritten"
    assert fleet.server_map().owner("dag_a") == "k8s-prod", "nothing was granted"


def test_an_unreachable_cluster_stops_the_failover_unless_forced(fleet):
    fleet.kube.stop()
    stopped = run_playbook("failover.yml", fleet.inventory, {"failover_from": "k8s-prod", "failover_to": "server-1"})
    assert stopped.rc != 0 and "Old owner(s) k8s-prod unreachable" in stopped.text(), stopped
    assert fleet.server_map().generation == 0
    forced = run_playbook("failover.yml", fleet.inventory,
                          {"failover_from": "k8s-prod", "failover_to": "server-1", "failover_force": True})
    assert forced.rc == 0, forced
    assert "unreachable (stale map, fenced on restart): k8s-prod" in forced.text()
    assert fleet.server_map().owner("dag_a") == "server-1"


def test_two_publishes_to_a_cluster_in_one_run_both_land(fleet, tmp_path):
    """failover.yml can publish to an old owner that is a cluster twice in one run (the revoke, then the
    map that keeps its late runs): the second publish must replace the ConfigMap the first one wrote, not
    fail with HTTP 409 because it still holds the resourceVersion read before the first (seen in the
    drills: a cluster with a late run made failover.yml fail). In check mode nothing is written and the
    second publish still checks against what the cluster holds."""
    maps = [fleet.cluster_map()]
    for dags in ({"dag_a": "server-1", "dag_b": "server-1"}, {"dag_a": "server-1", "dag_b": "k8s-prod"},
                 {"dag_a": "k8s-prod", "dag_b": "k8s-prod"}, {"dag_a": "k8s-prod", "dag_b": "server-1"}):
        maps.append(placement.stamp(maps[-1], maps[-1].replace(dags=dags), "test"))
    playbook = os.path.join(str(tmp_path), "twice.yml")
    publish = dict(name="failback.airflow.airflow_placement", tasks_from="publish")
    with open(playbook, "w") as handle:
        yaml.safe_dump([{"name": "Publish twice to the cluster", "hosts": "k8s-prod", "gather_facts": False, "tasks": [
            {"name": "Read", "ansible.builtin.include_role": {"name": "failback.airflow.airflow_placement",
                                                              "tasks_from": "read"}},
            {"name": "Publish the first map", "ansible.builtin.include_role": publish,
             "vars": {"airflow_placement_map_content": "{{ map_one }}"}},
            {"name": "Publish the second map", "ansible.builtin.include_role": publish,
             "vars": {"airflow_placement_map_content": "{{ map_two }}"}},
        ]}], handle)
    run = run_playbook(playbook, fleet.inventory, {"map_one": placement.dump_map(maps[1]),
                                                   "map_two": placement.dump_map(maps[2])})
    assert run.rc == 0, run
    assert fleet.cluster_map().to_data() == maps[2].to_data()
    version = fleet.kube.configmap("af", "failback-placement")["metadata"]["resourceVersion"]
    check = run_playbook(playbook, fleet.inventory, {"map_one": placement.dump_map(maps[3]),
                                                     "map_two": placement.dump_map(maps[4])}, check=True)
    assert check.rc == 0, check
    assert fleet.cluster_map().to_data() == maps[2].to_data()
    assert fleet.kube.configmap("af", "failback-placement")["metadata"]["resourceVersion"] == version

"""A cluster installation, every path executed: site.yml, status.yml and failover.yml in both directions.

The cluster is tests/fake_cluster.py: the test Kubernetes API with a kubelet that runs a real Airflow
3 for what the airflow_kubernetes role applies (its migration and users Jobs run, its Deployments'
replicas start and stop the components, its ConfigMaps are projected into the files the guard reads,
its api-server Service answers through the API's Service proxy). The other installation is an
Airflow run by the team itself (tests/airflow_local.py), kind `other`, whose REST API the inventory
names (airflow_installation_api) - so both ends go through the one installation contract
(roles/airflow_installation), neither through a server's compose project.

What is checked: site.yml installs the cluster (check mode first changes nothing) and a second run
changes nothing; the cluster owning nothing has its scheduler scaled to zero and its Airflow's
processes really stop; status.yml reads the cluster's Airflow (no "not read"), finds a guard
ConfigMap edited by hand (status_check_files, server-side dry runs) and a DAG paused on its owner
there; failover.yml moves a DAG to the cluster (health with the scheduler fenced, grant
starts the scheduler, unpause and catch-up through the proxy) and back (revoke through the
ConfigMap, late runs and drain through the proxy, a worker pod of the lost DAG deleted, scheduler
scaled to zero), each idempotent.
"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from airflow_local import LocalAirflow, hello_dag
from failback_ansible import REPO, run_playbook
from fake_cluster import FakeCluster

DAG_ID = "failback_cluster_check"
DAG = hello_dag(DAG_ID, "hello")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cluster"))
    cluster = FakeCluster(os.path.join(root, "k8s"), "cluster-1", dags={DAG_ID + ".py": DAG})
    other = LocalAirflow(root, "other-1", dags={DAG_ID + ".py": DAG})
    map_src = os.path.join(root, "placement.yml")
    with open(map_src, "w") as handle:
        handle.write("%s: other-1\n" % DAG_ID)
    python = os.path.join(REPO, ".venv", "bin", "python")
    inventory = {"all": {"children": {"airflow_installations": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": python, "airflow_placement_map_src": map_src},
        "children": {"airflow_clusters": {"hosts": {"cluster-1": {
            "airflow_kubernetes_namespace": "airflow", "airflow_kubernetes_kubeconfig": cluster.kubeconfig,
            "airflow_kubernetes_wait_timeout": 120, "airflow_kubernetes_failover_inflight": "delete",
            "airflow_credentials_store_dir": os.path.join(root, "store")}}}},
        "hosts": {"other-1": {
            "airflow_placement_dir": other.placement_dir, "airflow_placement_guard_dir": os.path.join(other.home, "config"),
            "airflow_installation_api": {"url": other.url, "username": other.username,
                                         "password_file": other.passwords_file}}}}}}}
    path = os.path.join(root, "hosts.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(inventory, handle)
    other.start()
    yield cluster, other, path, map_src
    cluster.stop()
    other.stop()


def _paused(airflow, dag_id=DAG_ID):
    return airflow.api("GET", "/api/v2/dags/%s" % dag_id)["is_paused"]


def test_a_cluster_installation_every_path(fleet):
    """One test, in order (the steps build on each other; xdist would spread separate tests over workers)."""
    site_installs_the_cluster_and_fences_it_while_it_owns_nothing(*fleet)
    status_reads_the_cluster_airflow(*fleet)
    status_finds_what_differs_in_the_cluster_secrets_and_config_maps(*fleet)
    failover_to_the_cluster_and_back(*fleet)
    status_finds_a_dag_paused_on_its_cluster_owner(*fleet)


def site_installs_the_cluster_and_fences_it_while_it_owns_nothing(cluster, other, inventory, _map):
    check = run_playbook("site.yml", inventory, check=True)
    assert check.rc == 0, check
    assert cluster.kube.namespaces == set() and not cluster.airflow.processes, "check mode applied nothing"
    first = run_playbook("site.yml", inventory)
    assert first.rc == 0, first
    assert cluster.problems == [] and len(cluster.jobs_run) == 2, (cluster.problems, cluster.jobs_run)
    cluster.airflow.wait(lambda: sorted(cluster.airflow.processes) == ["api-server", "dag-processor", "triggerer"],
                         "the scheduler scaled to zero, the rest running")
    again = run_playbook("site.yml", inventory)
    assert again.rc == 0 and again.changed() == 0, again
    # the placement ConfigMap reached the cluster's Airflow as files, and the guard with it
    assert "%s: \"other-1\"" % DAG_ID in open(os.path.join(cluster.airflow.placement_dir, "placement.yml")).read()
    assert os.path.exists(os.path.join(cluster.config_dir, "failback_guard.py"))
    for airflow in (cluster.airflow, other):
        airflow.wait(lambda a=airflow: DAG_ID in [d["dag_id"] for d in a.api("GET", "/api/v2/dags")["dags"]],
                     "the DAG parsed", timeout=180)


def status_reads_the_cluster_airflow(_cluster, _other, inventory, _map):
    run = run_playbook("status.yml", inventory)
    assert run.rc == 0, run
    text = run.text()
    assert "not read" not in text
    assert "cluster-1" in text and "3.3.2" in text


def _findings(map_src):
    with open(os.path.join(os.path.dirname(map_src), "fleet-status.json")) as handle:
        return [(f["code"], f["subject"], f["detail"]) for f in json.load(handle)["findings"]]


def status_finds_what_differs_in_the_cluster_secrets_and_config_maps(cluster, _other, inventory, map_src):
    clean = run_playbook("status.yml", inventory, {"status_check_files": True})
    assert clean.rc == 0 and _findings(map_src) == [], (_findings(map_src), clean)
    guard = cluster.kube.objects[("configmaps", "airflow", "failback-guard")]
    guard["data"]["failback_guard.py"] += "\n# edited by hand\n"
    found = run_playbook("status.yml", inventory, {"status_check_files": True})
    assert found.rc != 0 and _findings(map_src) == [("files_differ", "cluster-1", "ConfigMap airflow/failback-guard")], found
    assert run_playbook("site.yml", inventory, {}).rc == 0
    assert run_playbook("status.yml", inventory, {"status_check_files": True}).rc == 0


def failover_to_the_cluster_and_back(cluster, other, inventory, map_src):
    # a run the cluster's guard stops while other-1 owns the DAG: the catch-up re-runs it once the cluster does
    cluster.airflow.start("scheduler")
    cluster.airflow.api("PATCH", "/api/v2/dags/%s?update_mask=is_paused" % DAG_ID, {"is_paused": False})
    cluster.airflow.api("POST", "/api/v2/dags/%s/dagRuns" % DAG_ID, {"dag_run_id": "before-move", "logical_date": None})
    cluster.airflow.wait(lambda: cluster.airflow.api("GET", "/api/v2/dags/%s/dagRuns/before-move" % DAG_ID)["state"] == "success",
                         "the run skipped by the cluster's guard", timeout=180)
    cluster.airflow.api("PATCH", "/api/v2/dags/%s?update_mask=is_paused" % DAG_ID, {"is_paused": True})
    cluster.airflow.stop("scheduler")
    since = cluster.airflow.api("GET", "/api/v2/dags/%s/dagRuns/before-move" % DAG_ID)["run_after"]

    check = run_playbook("failover.yml", inventory, {"failover_dags": DAG_ID, "failover_to": "cluster-1"}, check=True)
    assert check.rc == 0, check
    assert not cluster.airflow.running("scheduler") and "other-1" in open(map_src).read()

    to_cluster = run_playbook("failover.yml", inventory, {
        "failover_from": "other-1", "failover_dags": DAG_ID, "failover_to": "cluster-1", "failover_force": True,
        "failover_catchup_since": since})
    assert to_cluster.rc == 0, to_cluster
    text = to_cluster.text()
    assert "moved 1: %s -> cluster-1" % DAG_ID in text and "re-ran 1 run(s) nobody ran: %s" % DAG_ID in text, text[-3000:]
    assert cluster.airflow.running("scheduler"), "the grant scaled the scheduler up again"
    assert _paused(cluster.airflow) is False and _paused(other) is True
    cluster.airflow.wait(lambda: cluster.airflow.api("GET", "/api/v2/dags/%s/dagRuns/before-move/taskInstances/hello"
                                                     % DAG_ID)["state"] == "success", "the re-run on the cluster", timeout=180)

    # back: a worker pod of the DAG still running on the cluster is deleted (airflow_kubernetes_failover_inflight: delete)
    cluster.worker_pod("failback-cluster-check-hello-1", DAG_ID)
    back = run_playbook("failover.yml", inventory, {"failover_from": "cluster-1", "failover_to": "other-1"})
    assert back.rc == 0, back
    assert "moved 1: %s -> other-1" % DAG_ID in back.text()
    assert ("airflow", "failback-cluster-check-hello-1") not in cluster.kube.pods
    cluster.airflow.wait(lambda: not cluster.airflow.running("scheduler"), "the scheduler scaled to zero again")
    assert _paused(cluster.airflow) is True and _paused(other) is False
    again = run_playbook("failover.yml", inventory, {"failover_from": "cluster-1", "failover_to": "other-1"})
    assert again.rc == 0 and "nothing to move: other-1 already owns them" in again.text(), again
    assert cluster.problems == []


def status_finds_a_dag_paused_on_its_cluster_owner(cluster, _other, inventory, _map):
    moved = run_playbook("failover.yml", inventory, {"failover_dags": DAG_ID, "failover_to": "cluster-1"})
    assert moved.rc == 0, moved
    cluster.airflow.api("PATCH", "/api/v2/dags/%s?update_mask=is_paused" % DAG_ID, {"is_paused": True})
    run = run_playbook("status.yml", inventory, {"status_fail_on": "error"})
    assert run.rc != 0 and "paused_on_owner" in run.text() and "%s: paused on cluster-1, its owner" % DAG_ID in run.text(), run
    cluster.airflow.api("PATCH", "/api/v2/dags/%s?update_mask=is_paused" % DAG_ID, {"is_paused": False})
    assert run_playbook("status.yml", inventory, {"status_fail_on": "error"}).rc == 0

"""A cluster's Airflow REST API reached through the Kubernetes API's Service proxy, with real Airflow 3.

A real Airflow (tests/airflow_local.py: api-server, scheduler and dag-processor on 127.0.0.1, the
collection's guard, the simple auth manager) stands behind the Service ``failback-airflow-api-server``
of the test Kubernetes API (tests/fake_kube.py), which authenticates the kubeconfig's token and
forwards to the Service without it, as the real API server does. The collection's modules then
run through ``kubernetes:`` exactly as they do against a server's URL: health, status, pause and
unpause, runs around a handover and the catch-up - the admin's password read from the auth
Secret, never passed through Ansible, and Airflow's token sent as its cookie. Run with
.venv-airflow (see Makefile: test-airflow).
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
import yaml

from airflow_local import LocalAirflow, hello_dag
from failback_ansible import BIN, run_playbook
from fake_kube import FakeKube

NAMESPACE = "airflow"
SERVICE = "failback-airflow-api-server"
DAG_ID = "failback_proxy_check"
DAG = hello_dag(DAG_ID, "hello from the cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("proxy")
    airflow = LocalAirflow(str(root), "k8s-prod", dags={DAG_ID + ".py": DAG})
    airflow.write_map("%s: server-1\n" % DAG_ID)  # the cluster does not own the DAG: its guard skips it
    airflow.start("api-server", "scheduler", "dag-processor")
    kube = FakeKube(namespaces=[NAMESPACE])
    try:
        kube.serve(NAMESPACE, SERVICE, airflow.url)
        kube.objects[("secrets", NAMESPACE, "failback-airflow-auth")] = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "failback-airflow-auth", "namespace": NAMESPACE},
            "data": {"passwords.json": base64.b64encode(json.dumps({"admin": airflow.password}).encode()).decode()}}
        kubeconfig = root / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        airflow.wait(lambda: DAG_ID in [d["dag_id"] for d in airflow.api("GET", "/api/v2/dags")["dags"]],
                     "the DAG parsed", timeout=180)
        yield airflow, kube, str(kubeconfig), root
    finally:
        kube.stop()
        airflow.stop()


def _play(root, tasks, name="play.yml"):
    """A play on the controller, with .venv's Python (it has the kubernetes package, as a controller must)."""
    path = root / name
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": os.path.join(BIN, "python")}}]))
    return str(path)


def _failures(run):
    """The failed tasks' messages (the run's repr keeps only the tail of its output)."""
    found = []
    for play in run.json.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    found.append("%s on %s: %s" % (task["task"]["name"], host, result.get("msg")))
    return "\n".join(found) or repr(run)


def _kube(kubeconfig, **extra):
    return dict({"namespace": NAMESPACE, "service": SERVICE, "kubeconfig": kubeconfig,
                 "password_secret": "failback-airflow-auth"}, **extra)


def test_every_module_reaches_the_cluster_through_the_service_proxy(cluster):
    airflow, kube, kubeconfig, root = cluster
    before = '"@failback": {generation: 1}\n%s: server-1\n' % DAG_ID
    after = ('"@failback":\n  generation: 2\n  handovers:\n    %s:\n      - {at: "2026-12-01T00:00:00Z", from: server-1}\n'
             '%s: k8s-prod\n' % (DAG_ID, DAG_ID))
    common = {"kubernetes": _kube(kubeconfig), "username": "admin"}
    tasks = [
        {"name": "health", "register": "health", "failback.airflow.airflow_health": {
            "kubernetes": _kube(kubeconfig), "components": ["metadatabase", "scheduler"], "timeout": 60}},
        {"name": "status", "failback.airflow.airflow_status_info": dict(common, window=3600), "register": "status"},
        {"name": "pause", "failback.airflow.airflow_dags": dict(common, dag_ids=[DAG_ID], paused=True), "register": "pause"},
        {"name": "unpause gained", "failback.airflow.airflow_dags": dict(
            common, moved="here", map_before=before, map_after=after, installation="k8s-prod", paused=False),
         "register": "unpause"},
        {"name": "runs", "failback.airflow.airflow_runs_info": dict(
            common, moved="here", map_before=before, map_after=after, installation="k8s-prod"), "register": "runs"},
        {"name": "catch up", "failback.airflow.airflow_catchup": dict(
            common, moved="here", map_before=before, map_after=after, installation="k8s-prod"), "register": "catchup"},
        {"name": "results", "ansible.builtin.debug": {"msg": (
            "{{ {'health': health, 'status': status, 'pause': pause, "
            "'unpause': unpause, 'runs': runs, 'catchup': catchup} | to_json }}")}},
    ]
    # One run the guard skips here (the map before gives the DAG to server-1): the catch-up re-runs it.
    airflow.api("POST", "/api/v2/dags/%s/dagRuns" % DAG_ID, {"dag_run_id": "proxy-run-1", "logical_date": None})
    airflow.wait(lambda: airflow.api("GET", "/api/v2/dags/%s/dagRuns/proxy-run-1" % DAG_ID)["state"] == "success",
                 "the run ended (its task skipped by the guard)", timeout=180)
    kube.requests.clear()
    run = run_playbook(_play(root, tasks), "localhost,")
    assert run.rc == 0, _failures(run)
    [hosts] = run.results("results")
    found = json.loads(hosts["localhost"]["msg"])
    assert found["health"]["healthy"] and found["health"]["problems"] == {}
    status = found["status"]["status"]
    assert DAG_ID in status["dags"], status
    assert found["pause"]["changed_dags"] == [DAG_ID]
    assert found["unpause"]["changed_dags"] == [DAG_ID] and found["unpause"]["selected"] == [DAG_ID]
    assert [r["run_id"] for r in found["runs"]["runs"]] == ["proxy-run-1"]
    assert found["runs"]["runs"][0]["status"] == "stopped", found["runs"]
    assert [r["run_id"] for r in found["catchup"]["rerun"]] == ["proxy-run-1"], found["catchup"]
    assert airflow.api("GET", "/api/v2/dags/%s" % DAG_ID)["is_paused"] is False

    # Everything went through the Kubernetes API: the Service proxy, and the Secret for the password.
    paths = set(r["path"] for r in kube.requests)
    assert all(p.startswith("/api/v1/namespaces/airflow/services/http:%s:http/proxy/" % SERVICE)
               or p == "/api/v1/namespaces/airflow/secrets/failback-airflow-auth" or not p.startswith("/api/v1/namespaces")
               for p in paths), sorted(paths)
    assert any(p.endswith("/proxy/auth/token") for p in paths) and any("/proxy/api/v2/dags" in p for p in paths)
    assert airflow.password not in run.text()


def test_a_wrong_kubernetes_token_or_service_fails_naming_the_service(cluster):
    airflow, kube, kubeconfig, root = cluster
    bad = root / "bad-kubeconfig"
    bad.write_text(open(kubeconfig).read().replace("not-a-secret", "wrong-token"))
    tasks = [
        {"name": "bad token", "failback.airflow.airflow_status_info": {
            "kubernetes": _kube(str(bad)), "username": "admin"}, "ignore_errors": True, "register": "token"},
        {"name": "bad service", "failback.airflow.airflow_health": {
            "kubernetes": _kube(kubeconfig, service="nosuch-api-server"), "timeout": 1, "interval": 1},
         "ignore_errors": True, "register": "service"},
        {"name": "results", "ansible.builtin.debug": {"msg": "{{ {'token': token.msg, 'service': service.msg} | to_json }}"}},
    ]
    run = run_playbook(_play(root, tasks, "bad.yml"), "localhost,")
    assert run.rc == 0, run
    [hosts] = run.results("results")
    found = json.loads(hosts["localhost"]["msg"])
    assert "Airflow of Service %s:http in namespace airflow (through the Kubernetes API)" % SERVICE in found["token"]
    assert "cannot read the Secret failback-airflow-auth in namespace airflow (HTTP 401)" in found["token"], found
    assert "Airflow of Service nosuch-api-server:http in namespace airflow" in found["service"]
    assert 'services \\"nosuch-api-server\\" not found' in found["service"] or "not found" in found["service"], found
    assert time.monotonic() > 0

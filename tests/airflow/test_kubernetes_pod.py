"""Airflow's own KubernetesExecutor pod construction fed with what the airflow_kubernetes role renders.

For a configuration, the role's manifests and the airflow_credentials Secrets are rendered (with
.venv's ansible-playbook); the scheduler container's filesystem is then laid out from its volume
mounts (ConfigMaps and Secret items written where the pod would see them, under a temporary root
that stands for "/") and its environment taken from the config ConfigMap and its env literals.
With that, Airflow 3 and the cncf.kubernetes provider from .venv-airflow run:

* ``airflow db migrate`` and ``airflow config get-value``: the _CMD options read the mounted Secret
  files (so Secret keys, items and paths agree);
* ``airflow kubernetes generate-dag-yaml``: the provider's PodGenerator builds the worker pods from the
  rendered pod_template_file; they are checked (image, namespace, env, volumes, uid, resources) and
  validated against the Kubernetes schema;
* then a worker is simulated from the generated pod (its volumes laid out the same way, its env):
  the guard decides run/skip/fenced, and ``airflow dags test`` runs the owner's DAG and skips the
  other one, reading a connection and a credential file through the worker's mounts.

Only difference to a cluster: the metadata database is a sqlite file (written into the mounted
sql_alchemy_conn file) instead of PostgreSQL.
"""

from __future__ import annotations

import base64
import glob
import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
import yaml

import failback_testlib as lab

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE = os.path.join(REPO, "tests", "kubernetes")
sys.path.insert(0, KUBE)
import kubepolicy as kp  # noqa: E402  pylint: disable=wrong-import-position

ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
KUBERNETES_VALIDATE = os.path.join(REPO, ".venv", "bin", "kubernetes-validate")
AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
MOUNT_ROOT = "/opt/airflow"
TIMEOUT = 600

DAGS = '''
import os
from airflow.sdk import DAG, task
import pendulum

def _check_mounts():
    from airflow.sdk import BaseHook
    out = os.environ["FAILBACK_TEST_OUT"]
    conn = BaseHook.get_connection("warehouse")
    with open(os.path.join(os.environ["AIRFLOW_HOME"], "credentials", "warehouse")) as handle:
        credential = handle.read()
    with open(os.path.join(out, os.environ["FAILBACK_TEST_DAG"] + ".json"), "w") as handle:
        handle.write(__import__("json").dumps({"password": conn.password, "credential": credential}))

for dag_id in ("dag_k8s", "dag_server"):
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False):
        task(task_id="check_mounts")(_check_mounts)()
'''


def _yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _run(args, env, timeout=TIMEOUT):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def render(config, root):
    extra = _yaml(os.path.join(KUBE, "configs", "canaries.yml"))
    extra.update(_yaml(os.path.join(KUBE, "configs", config + ".yml")))
    extra["render_root"] = str(root)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=os.path.dirname(ANSIBLE_PLAYBOOK) + os.pathsep + os.environ.get("PATH", ""))
    proc = _run([ANSIBLE_PLAYBOOK, "-i", os.path.join(KUBE, "inventory", "hosts.yml"), os.path.join(KUBE, "render.yml"),
                 "-e", json.dumps(extra), "--limit", "k8s-prod"], env)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return (kp.load_dir(os.path.join(str(root), "k8s-prod", "manifests")),
            kp.load_dir(os.path.join(str(root), "k8s-prod", "secrets")), extra)


def lay_out(root, spec, container, docs, secrets):
    """Write what *container* of pod *spec* sees at its mount paths under *root*."""
    configmaps = dict((c["metadata"]["name"], c["data"]) for c in kp.find(docs, "ConfigMap"))
    with open(os.path.join(KUBE, "inventory", "placement.yml")) as handle:
        configmaps["failback-placement"] = {"placement.yml": handle.read()}
    stored = dict((s["metadata"]["name"], dict((k, base64.b64decode(v).decode()) for k, v in s["data"].items()))
                  for s in secrets)
    volumes = dict((v["name"], v) for v in spec.get("volumes") or [])
    for mount in container.get("volumeMounts") or []:
        assert "subPath" not in mount, "%s uses subPath: updates would not reach the pod" % mount["name"]
        target = root + mount["mountPath"]
        os.makedirs(target, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume and volume["configMap"]["name"] == "failback-guard":
            lab.build_guard_dir(target)
            continue
        if "configMap" in volume:
            files = configmaps[volume["configMap"]["name"]]
        elif "secret" in volume:
            data = stored.get(volume["secret"]["secretName"])
            if data is None:
                assert volume["secret"].get("optional"), "missing Secret %s" % volume["secret"]["secretName"]
                continue
            items = volume["secret"].get("items")
            files = dict((i["path"], data[i["key"]]) for i in items) if items else data
        else:
            files = {}
        for name, text in files.items():
            with open(os.path.join(target, name), "w") as handle:
                handle.write(text)


def environment(root, container, docs, **extra):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FAILBACK_", "HOST_HOSTNAME")))
    for source in container.get("envFrom") or []:
        env.update(kp.find(docs, "ConfigMap", source["configMapRef"]["name"])[0]["data"])
    for item in container.get("env") or []:
        env[item["name"]] = item["value"]
    env = dict((k, v.replace(MOUNT_ROOT, root + MOUNT_ROOT)) for k, v in env.items())
    env.update(AIRFLOW__CORE__UNIT_TEST_MODE="False", AIRFLOW__LOGGING__LOGGING_LEVEL="INFO")
    env.update(extra)
    return env


@pytest.fixture(scope="module", params=["defaults", "git-sync"])
def scheduler(request, tmp_path_factory):
    """The scheduler container of a rendered configuration, laid out on this machine."""
    if not os.path.exists(ANSIBLE_PLAYBOOK):
        pytest.fail("%s is missing: run `make setup`" % ANSIBLE_PLAYBOOK)
    config = request.param
    base = tmp_path_factory.mktemp("k8s-" + config)
    docs, secrets, config_vars = render(config, base / "render")
    prefix = config_vars.get("airflow_kubernetes_name", "failback-airflow")
    deployment = kp.find(docs, "Deployment", prefix + "-scheduler")[0]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    root = str(base / "scheduler")
    lay_out(root, spec, container, docs, secrets)
    env = environment(root, container, docs)
    # The one change for this machine: a sqlite database in the mounted sql_alchemy_conn file.
    with open(root + MOUNT_ROOT + "/secrets/airflow/sql_alchemy_conn", "w") as handle:
        handle.write("sqlite:///%s/airflow.db" % root)
    dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
    os.makedirs(dags, exist_ok=True)
    with open(os.path.join(dags, "failback_k8s_dags.py"), "w") as handle:
        handle.write(DAGS)
    proc = _run([AIRFLOW, "db", "migrate"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"config": config, "docs": docs, "secrets": secrets, "vars": config_vars, "root": root, "env": env,
            "base": base, "prefix": prefix}


def test_airflow_reads_its_secrets_from_the_mounted_files(scheduler):
    secrets = dict((s["metadata"]["name"], s["data"]) for s in scheduler["secrets"])["failback-airflow-secrets"]
    for section, option, key in (("core", "fernet_key", "fernet-key"), ("api", "secret_key", "api-secret-key"),
                                 ("api_auth", "jwt_secret", "jwt-secret")):
        proc = _run([AIRFLOW, "config", "get-value", section, option], scheduler["env"])
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == base64.b64decode(secrets[key]).decode(), (section, option)


@pytest.fixture(scope="module")
def worker_pods(scheduler):
    out = os.path.join(str(scheduler["base"]), "generated")
    proc = _run([AIRFLOW, "kubernetes", "generate-dag-yaml", "dag_k8s", "--logical-date", "2024-01-01", "-o", out],
                scheduler["env"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(glob.glob(os.path.join(out, "airflow_yaml_output", "*.yml")))
    assert files, proc.stdout
    return files


def test_the_executor_builds_the_worker_pod_from_the_template(scheduler, worker_pods):
    config_vars, prefix = scheduler["vars"], scheduler["prefix"]
    pod = _yaml(worker_pods[0])
    assert pod["metadata"]["namespace"] == "airflow"
    assert pod["metadata"]["labels"]["dag_id"] == "dag_k8s" and pod["metadata"]["labels"]["kubernetes_executor"] == "True"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == prefix + "-worker" and spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert spec["securityContext"]["runAsUser"] == 50000 and spec["securityContext"]["runAsNonRoot"] is True
    base = spec["containers"][0]
    assert base["name"] == "base" and base["image"] == config_vars.get("airflow_kubernetes_image", "apache/airflow:3.3.2")
    assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
    env = dict((e["name"], e.get("value")) for e in base["env"])
    assert env["FAILBACK_INSTALLATION"] == "k8s-prod" and env["HOST_HOSTNAME"] == "k8s-prod"
    assert env["FAILBACK_PLACEMENT_MAP"] == "/opt/airflow/placement/placement.yml"
    assert base["envFrom"] == [{"configMapRef": {"name": prefix + "-config"}}]
    assert base["resources"]["requests"]["cpu"] and base["resources"]["limits"]["memory"]
    assert base["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = dict((v["name"], v) for v in spec["volumes"])
    mounts = dict((m["mountPath"], m) for m in base["volumeMounts"])
    assert volumes[mounts["/opt/airflow/placement"]["name"]]["configMap"]["name"] == "failback-placement"
    assert "items" not in volumes[mounts["/opt/airflow/placement"]["name"]]["configMap"]  # the whole directory
    assert volumes[mounts["/opt/airflow/config"]["name"]]["configMap"]["name"] == "failback-guard"
    assert volumes[mounts["/opt/airflow/credentials"]["name"]]["secret"]["secretName"] == "failback-credentials"
    assert volumes[mounts["/opt/airflow/secrets/backend"]["name"]]["secret"]["secretName"] == "failback-airflow-backend"
    assert all(m["readOnly"] for path, m in mounts.items() if path != "/opt/airflow/logs")
    assert "failback-airflow-secrets" not in json.dumps(spec)  # workers get none of Airflow's own secrets
    if scheduler["config"] == "git-sync":
        assert spec["initContainers"][0]["name"] == "git-sync-init"
        assert mounts["/opt/airflow/dags"]["name"] == "dags"
    assert kp.check_pod_security([pod]) == [] and kp.check_resources([pod]) == [] and kp.check_env([pod]) == []


def test_the_generated_worker_pod_is_valid_for_kubernetes(worker_pods):
    proc = subprocess.run([KUBERNETES_VALIDATE, "--strict", "--kubernetes-version", "1.37.0"] + worker_pods,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def worker(scheduler, worker_pods):
    """The generated worker pod's container laid out and its environment, as the kubelet would start it."""
    pod = _yaml(worker_pods[0])
    root = os.path.join(str(scheduler["base"]), "worker")
    container = pod["spec"]["containers"][0]
    lay_out(root, pod["spec"], container, scheduler["docs"], scheduler["secrets"])
    out = os.path.join(str(scheduler["base"]), "task-out")
    os.makedirs(out, exist_ok=True)
    env = environment(root, container, scheduler["docs"], FAILBACK_TEST_OUT=out)
    env.pop("AIRFLOW_IS_K8S_EXECUTOR_POD", None)
    dags = env["AIRFLOW__CORE__DAGS_FOLDER"]
    os.makedirs(dags, exist_ok=True)
    shutil.copy(os.path.join(scheduler["env"]["AIRFLOW__CORE__DAGS_FOLDER"], "failback_k8s_dags.py"), dags)
    return {"root": root, "env": env, "out": out}


def _guard(worker, dag_id):
    guard = worker["root"] + MOUNT_ROOT + "/config/failback_guard.py"
    proc = _run([sys.executable, guard, "check", dag_id], worker["env"], timeout=60)
    return proc.returncode, json.loads(proc.stdout or "{}")


def test_the_guard_in_the_worker_pod_decides_by_the_mounted_map(worker):
    rc, decision = _guard(worker, "dag_k8s")
    assert (rc, decision["decision"], decision["installation"]) == (0, "run", "k8s-prod"), decision
    rc, decision = _guard(worker, "dag_server")
    assert (rc, decision["decision"], decision["owner"]) == (3, "skip", "server-1"), decision
    rc, decision = _guard(worker, "dag_not_listed")  # the map's default owner is server-1
    assert (rc, decision["decision"]) == (3, "skip"), decision
    fence = worker["root"] + MOUNT_ROOT + "/placement/fence"  # a `fence` key in the ConfigMap
    with open(fence, "w") as handle:
        handle.write("fenced by the test")
    try:
        rc, decision = _guard(worker, "dag_k8s")
        assert (rc, decision["decision"]) == (1, "error") and "fenced" in decision["reason"], decision
    finally:
        os.unlink(fence)


def test_a_task_in_the_worker_pod_runs_on_the_owner_and_is_skipped_elsewhere(scheduler, worker):
    env = dict(worker["env"])
    proc = _run([AIRFLOW, "db", "migrate"], env)  # the worker's own (sqlite) database for `dags test`
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = {}
    for dag_id in ("dag_k8s", "dag_server"):
        env["FAILBACK_TEST_DAG"] = dag_id
        proc = _run([AIRFLOW, "dags", "test", dag_id, "2024-01-01"], env)
        with sqlite3.connect(env["AIRFLOW_HOME"] + "/airflow.db") as db:
            row = db.execute("SELECT state FROM task_instance WHERE dag_id = ? ORDER BY start_date DESC LIMIT 1",
                             (dag_id,)).fetchone()
        states[dag_id] = row[0] if row else None
        assert states[dag_id] is not None, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert states == {"dag_k8s": "success", "dag_server": "skipped"}
    with open(os.path.join(worker["out"], "dag_k8s.json")) as handle:
        seen = json.load(handle)
    assert seen["password"] == "canary-warehouse-pw-1a2b"  # connection from the mounted backend Secret
    assert "canary-file-secret-8e7d" in seen["credential"]  # credential file from failback-credentials
    assert not os.path.exists(os.path.join(worker["out"], "dag_server.json"))

"""The airflow_kubernetes role without a cluster: render every manifest for several configurations,
validate them against the Kubernetes OpenAPI schema and check our policies on them.

Each configuration is rendered once (both clusters of tests/kubernetes/inventory: k8s-prod owns
DAGs, k8s-standby owns none) together with the Secrets the airflow_credentials role would create
and the airflow_auth role's ConfigMap and Secret (FAB sign-in, the users' passwords and the users
Job's request), filled with canary values that must never show up outside a Secret.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import shutil
import sys

import kubernetes_validate
import pytest
import yaml

from failback_ansible import REPO, run_playbook

KUBE = os.path.join(REPO, "tests", "kubernetes")
sys.path.insert(0, KUBE)
import kubepolicy as kp  # noqa: E402  pylint: disable=wrong-import-position

INVENTORY = os.path.join(KUBE, "inventory", "hosts.yml")
CONFIGS = ["defaults", "external-db", "git-sync", "remote-logging", "everything"]
K8S_VERSION = "1.37.0"
CLUSTERS = ("k8s-prod", "k8s-standby")


def _canaries(config="canaries"):
    """The canary secret values of tests/kubernetes/configs/CONFIG.yml (canaries.yml: also the Fernet key)."""
    with open(os.path.join(KUBE, "configs", config + ".yml")) as handle:
        data = yaml.safe_load(handle) or {}
    found = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and ("canary" in value.lower()):
            found.append(value)

    walk(data)
    if "airflow_credentials_fernet_key" in data:
        found.append(data["airflow_credentials_fernet_key"])
    return found


CANARIES = _canaries()
# Given in tests/kubernetes/configs/canaries.yml and everything.yml: never outside a Secret.
ADMIN_PASSWORD = "canary-admin-password-2c4e6a"
OAUTH_SECRET = "canary-oauth-client-secret-5b9e"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def _config_vars(config):
    with open(os.path.join(KUBE, "configs", config + ".yml")) as handle:
        return yaml.safe_load(handle) or {}


def render(config, root, extra=None):
    """Render a configuration (canaries + tests/kubernetes/configs/CONFIG.yml + *extra*) into *root*."""
    extra_vars = _config_vars("canaries")
    extra_vars.update(_config_vars(config))
    extra_vars.update(extra or {})
    extra_vars["render_root"] = str(root)
    return run_playbook(os.path.join(KUBE, "render.yml"), INVENTORY, extra_vars=extra_vars)


class Rendered(object):
    def __init__(self, config, root, run):
        self.config = config
        self.root = root
        self.run = run
        self.vars = _config_vars(config)
        self.canaries = CANARIES + _canaries(config)

    def docs(self, host="k8s-prod"):
        """The manifests the airflow_kubernetes role applies, but for the auth Secret rendered next to them."""
        return [d for d in kp.load_dir(os.path.join(str(self.root), host, "manifests")) if d["kind"] != "Secret"]

    def secrets(self, host="k8s-prod"):
        """The airflow_credentials role's Secrets and the airflow_auth role's (in the manifests directory)."""
        return (kp.load_dir(os.path.join(str(self.root), host, "secrets"))
                + kp.find(kp.load_dir(os.path.join(str(self.root), host, "manifests")), "Secret"))

    def text(self, name, host="k8s-prod"):
        with open(os.path.join(str(self.root), host, "manifests", name)) as handle:
            return handle.read()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render all configurations, three at a time (each is an ansible-playbook run)."""
    roots = dict((config, tmp_path_factory.mktemp("render-" + config)) for config in CONFIGS)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        runs = dict((config, pool.submit(render, config, roots[config])) for config in CONFIGS)
        result = dict((config, Rendered(config, roots[config], future.result())) for config, future in runs.items())
    for config, item in result.items():
        assert item.run.rc == 0, "%s: %r" % (config, item.run)
    return result


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("host", CLUSTERS)
def test_every_manifest_is_valid_for_kubernetes(rendered, config, host):
    docs = rendered[config].docs(host) + rendered[config].secrets(host)
    docs += [yaml.safe_load(text) for cm in kp.find(docs, "ConfigMap")
             for key, text in (cm.get("data") or {}).items() if key.endswith(".yaml")]
    kinds = sorted(set(d["kind"] for d in docs))
    assert {"ConfigMap", "Deployment", "Job", "Pod", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"} <= set(kinds)
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail("%s (%s) is not valid for Kubernetes %s: %s at %s" % (
                kp.name_of(doc), config, K8S_VERSION, exc.message, "/".join(str(p) for p in exc.path)))


def test_the_schema_validation_can_fail(rendered):
    deployment = kp.find(rendered["defaults"].docs(), "Deployment")[0]
    broken = kp.mutated([deployment])[0]
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = {"cores": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown = kp.mutated([deployment])[0]
    unknown["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------- policies


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("host", CLUSTERS)
def test_policies_hold(rendered, config, host):
    item = rendered[config]
    problems = kp.run_all(
        item.docs(host), item.secrets(host), item.canaries,
        prefix=item.vars.get("airflow_kubernetes_name", "failback-airflow"),
        worker_pod_launcher=item.vars.get("airflow_kubernetes_worker_pod_launcher", False),
        pod_log_reading=item.vars.get("airflow_kubernetes_api_server_pod_log_reading", True),
        external_secrets=[item.vars.get("airflow_kubernetes_dags_git_secret", "")],
    )
    assert problems == []


@pytest.mark.parametrize("config", CONFIGS)
def test_the_canaries_are_in_the_secrets_only(rendered, config):
    """The canary check has something to find: every canary is in a rendered Secret."""
    item = rendered[config]
    secret_text = "\n".join(base64.b64decode(value).decode() for s in item.secrets() for value in s["data"].values())
    missing = [c for c in item.canaries if c not in secret_text]
    if config == "external-db":
        missing = [c for c in missing if c != "canary-db-password-9c8b7a"]  # no db_password with an external URL
    assert missing == []
    assert kp.check_no_secret_outside_secrets(item.secrets(), item.canaries) == []  # Secrets are exempt
    assert kp.check_no_secret_outside_secrets(
        [dict(s, kind="ConfigMap") for s in item.secrets()], item.canaries) != []  # ...anything else is not


def _mutations():
    def secret_in_configmap(docs):
        cm = kp.find(docs, "ConfigMap", "failback-airflow-config")[0]
        cm["data"]["AIRFLOW__CORE__FERNET_KEY"] = CANARIES[-1]

    def env_literal(docs):
        c = kp.find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        c["env"].append({"name": "DB_PASSWORD", "value": "hunter2"})

    def root_container(docs):
        c = kp.find(docs, "Deployment")[1]["spec"]["template"]["spec"]["containers"][0]
        c["securityContext"]["runAsUser"] = 0
        c["securityContext"]["runAsNonRoot"] = False

    def escalation_in_worker(docs):
        cm = kp.find(docs, "ConfigMap", "failback-airflow-pod-template")[0]
        pod = yaml.safe_load(cm["data"]["pod_template_file.yaml"])
        pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        cm["data"]["pod_template_file.yaml"] = yaml.safe_dump(pod)

    def no_resources(docs):
        kp.find(docs, "Job")[0]["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}

    def no_probe(docs):
        del kp.find(docs, "Deployment")[2]["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]

    def host_path(docs):
        kp.find(docs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}})

    def extra_verb(docs):
        kp.find(docs, "Role", "failback-airflow-pod-launcher")[0]["rules"].append(
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})

    def cluster_role(docs):
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}, "rules": []})

    def token_everywhere(docs):
        dp = kp.find(docs, "Deployment", "failback-airflow-dag-processor")[0]
        dp["spec"]["template"]["spec"]["automountServiceAccountToken"] = True

    def missing_secret_key(docs):
        volume = [v for v in kp.find(docs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"] if "secret" in v][0]
        volume["secret"].setdefault("items", []).append({"key": "no-such-key", "path": "x"})

    def admin_password_in_job(docs):
        job = [j for j in kp.find(docs, "Job") if j["metadata"]["labels"]["app.kubernetes.io/component"] == "users"][0]
        job["spec"]["template"]["spec"]["containers"][0]["args"].append(ADMIN_PASSWORD)

    def missing_projected_key(docs):
        volume = [v for v in _deployment(docs, "failback-airflow-api-server")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "auth"][0]
        volume["projected"]["sources"][0]["configMap"]["items"].append({"key": "no-such-key", "path": "x"})

    def whole_auth_secret_projected(docs):
        volume = [v for v in _deployment(docs, "failback-airflow-api-server")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "auth"][0]
        volume["projected"]["sources"].append({"secret": {"name": "failback-airflow-auth"}})

    mutations = (secret_in_configmap, env_literal, root_container, escalation_in_worker, no_resources, no_probe,
                 host_path, extra_verb, cluster_role, token_everywhere, missing_secret_key, admin_password_in_job,
                 missing_projected_key, whole_auth_secret_projected)
    return dict((f.__name__, f) for f in mutations)


MUTATIONS = _mutations()


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_the_policy_checks_catch_violations(rendered, mutation):
    item = rendered["defaults"]
    docs = kp.mutated(item.docs())
    assert kp.run_all(docs, item.secrets(), CANARIES, "failback-airflow") == []
    MUTATIONS[mutation](docs)
    assert kp.run_all(docs, item.secrets(), CANARIES, "failback-airflow") != []


# --------------------------------------------------------------------------- what each configuration renders


def _deployment(docs, name):
    return kp.find(docs, "Deployment", name)[0]


def _env(container):
    return dict((e["name"], e.get("value")) for e in container.get("env") or [])


def test_defaults(rendered):
    item = rendered["defaults"]
    docs = item.docs()
    assert [d["metadata"]["name"] for d in kp.find(docs, "Deployment")] == [
        "failback-airflow-api-server", "failback-airflow-scheduler", "failback-airflow-dag-processor", "failback-airflow-triggerer"]
    assert kp.find(docs, "StatefulSet", "failback-airflow-postgresql")
    assert kp.find(docs, "Namespace", "airflow")[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    config = kp.find(docs, "ConfigMap", "failback-airflow-config")[0]["data"]
    assert config["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    assert config["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://failback-airflow-api-server.airflow:8080/execution/"
    assert config["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == "airflow"
    # The worker pod template in the ConfigMap is the rendered file, byte for byte.
    in_cm = kp.find(docs, "ConfigMap", "failback-airflow-pod-template")[0]["data"]["pod_template_file.yaml"]
    assert in_cm.strip() == item.text("pod_template_file.yaml").strip()
    worker = yaml.safe_load(in_cm)
    base = worker["spec"]["containers"][0]
    assert base["name"] == "base" and base["image"] == "apache/airflow:3.3.2"
    assert _env(base)["FAILBACK_INSTALLATION"] == "k8s-prod"
    assert _env(base)["FAILBACK_PLACEMENT_MAP"] == "/opt/airflow/placement/placement.yml"
    assert worker["spec"]["securityContext"]["runAsUser"] == 50000
    # Worker pods get no Airflow secret (Airflow 3 workers talk to the api-server only).
    assert all(v.get("secret", {}).get("secretName") != "failback-airflow-secrets" for v in worker["spec"]["volumes"])
    # Every Airflow container knows the installation, the map and the guard.
    for deployment in kp.find(docs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        for role, container in kp.containers_of(spec):
            if container["image"] != "apache/airflow:3.3.2":
                continue
            mounts = dict((m["mountPath"], m["name"]) for m in container["volumeMounts"])
            assert mounts["/opt/airflow/placement"] == "placement" and mounts["/opt/airflow/config"] == "guard"
            assert _env(container)["FAILBACK_INSTALLATION"] == "k8s-prod"
            assert _env(container)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == "cat /opt/airflow/secrets/airflow/sql_alchemy_conn"
        assert deployment["spec"]["template"]["metadata"]["annotations"]["failback.airflow/config-checksum"]
    # The standby cluster owns no DAG: its scheduler is fenced by scale-to-zero, the rest runs.
    replicas = dict((d["metadata"]["name"], d["spec"]["replicas"]) for d in kp.find(item.docs("k8s-standby"), "Deployment"))
    assert replicas["failback-airflow-scheduler"] == 0 and replicas["failback-airflow-api-server"] == 1
    assert _deployment(docs, "failback-airflow-scheduler")["spec"]["replicas"] == 1
    assert kp.find(item.docs("k8s-standby"), "Namespace")[0]["metadata"]["name"] == "airflow-standby"


def test_external_db(rendered):
    item = rendered["external-db"]
    assert not kp.find(item.docs(), "StatefulSet") and not kp.find(item.docs(), "Service", "failback-airflow-postgresql")
    secret = kp.find(item.secrets(), "Secret", "failback-airflow-secrets")[0]
    assert "db-password" not in secret["data"]
    assert base64.b64decode(secret["data"]["sql-alchemy-conn"]).decode() == item.vars["airflow_credentials_database_url"]


def test_git_sync(rendered):
    docs = rendered["git-sync"].docs()
    config = kp.find(docs, "ConfigMap", "failback-airflow-config")[0]["data"]
    assert config["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags/repo/dags"
    for name in ("failback-airflow-dag-processor", "failback-airflow-triggerer"):
        spec = _deployment(docs, name)["spec"]["template"]["spec"]
        sidecar = spec["initContainers"][0]
        assert sidecar["name"] == "git-sync" and sidecar["restartPolicy"] == "Always" and "startupProbe" in sidecar
        env = _env(sidecar)
        assert env["GITSYNC_REPO"] == "https://git.example.invalid/data/airflow-dags.git"
        assert env["GITSYNC_PASSWORD_FILE"] == "/etc/git-secret/password"
        main = spec["containers"][0]
        assert {"name": "dags", "mountPath": "/opt/airflow/dags", "readOnly": True} in main["volumeMounts"]
    for name in ("failback-airflow-api-server", "failback-airflow-scheduler"):
        spec = _deployment(docs, name)["spec"]["template"]["spec"]
        assert "dags" not in [v["name"] for v in spec["volumes"]] and len(spec["initContainers"]) == 1
    worker = yaml.safe_load(kp.find(docs, "ConfigMap", "failback-airflow-pod-template")[0]["data"]["pod_template_file.yaml"])
    init = worker["spec"]["initContainers"][0]
    assert init["name"] == "git-sync-init" and _env(init)["GITSYNC_ONE_TIME"] == "true" and "restartPolicy" not in init


def test_remote_logging(rendered):
    item = rendered["remote-logging"]
    config = kp.find(item.docs(), "ConfigMap", "failback-airflow-config")[0]["data"]
    assert config["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert config["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://airflow-task-logs/k8s"
    assert config["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "task_logs"
    backend = kp.find(item.secrets(), "Secret", "failback-airflow-backend")[0]
    connections = yaml.safe_load(base64.b64decode(backend["data"]["connections.yaml"]))
    assert "task_logs" in connections
    assert "task_logs" not in json.dumps(kp.find(rendered["defaults"].docs(), "ConfigMap", "failback-airflow-config"))


def test_everything(rendered):
    item = rendered["everything"]
    docs = item.docs()
    assert not kp.find(docs, "Namespace")
    assert [d["metadata"]["name"] for d in kp.find(docs, "Deployment")][0] == "af-api-server"
    replicas = dict((d["metadata"]["name"], d["spec"]["replicas"]) for d in kp.find(docs, "Deployment"))
    assert replicas["af-scheduler"] == 2 and replicas["af-triggerer"] == 0
    for owner, spec in kp.pod_specs(docs):
        if "postgresql" in owner:
            continue
        assert spec["nodeSelector"] == {"node-role/airflow": "true"}, owner
        assert spec["tolerations"][0]["key"] == "dedicated", owner
        assert spec["imagePullSecrets"] == [{"name": "regcred"}], owner
    worker = yaml.safe_load(kp.find(docs, "ConfigMap", "af-pod-template")[0]["data"]["pod_template_file.yaml"])
    assert worker["spec"]["automountServiceAccountToken"] is True
    assert worker["spec"]["containers"][0]["resources"]["limits"]["memory"] == "4Gi"
    assert worker["spec"]["containers"][0]["image"] == "registry.example.invalid/airflow:3.3.2-custom"
    assert {"name": "dags", "persistentVolumeClaim": {"claimName": "airflow-dags", "readOnly": True}} in worker["spec"]["volumes"]
    config = kp.find(docs, "ConfigMap", "af-config")[0]["data"]
    assert config["AIRFLOW__CORE__PARALLELISM"] == "64"
    assert config["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert config["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags/current/dags"
    assert json.loads(config["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]) == [
        {"name": "dags", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
         "kwargs": {"repo_url": "https://git.example.invalid/data/airflow-dags.git", "tracking_ref": "main",
                    "subdir": "dags", "refresh_interval": 120, "git_conn_id": "git_dags"}},
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": "/opt/airflow/dags/current/dags"}}]
    assert "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST" not in kp.find(
        rendered["defaults"].docs(), "ConfigMap", "failback-airflow-config")[0]["data"]
    assert {"name": "TZ", "value": "Europe/Oslo"} in worker["spec"]["containers"][0]["env"]
    assert kp.find(docs, "Service", "af-api-server")[0]["spec"]["type"] == "NodePort"
    assert not kp.find(docs, "Role", "af-pod-log-reader")
    assert all(d["metadata"]["labels"]["team"] == "data" for d in docs)
    # airflow_placement_source s3: the guard's environment and the keys' Secret volume in every Airflow container
    specs = [("worker pod template", worker["spec"])] + [
        (owner, spec) for owner, spec in kp.pod_specs(docs) if "postgresql" not in owner]
    guarded = 0
    for owner, spec in specs:
        volumes = dict((v["name"], v) for v in spec.get("volumes") or [])
        for container in spec["containers"]:
            if container["image"] != "registry.example.invalid/airflow:3.3.2-custom":
                continue
            env = _effective_env(docs, container)
            if "FAILBACK_PLACEMENT_MAP" not in env:
                continue
            guarded += 1
            assert env["FAILBACK_PLACEMENT_MAP"] == "s3://fleet-maps/failback/placement.yml", owner
            assert (env["FAILBACK_PLACEMENT_LEASE"], env["FAILBACK_PLACEMENT_TTL"]) == ("90", "20"), owner
            assert env["FAILBACK_PLACEMENT_S3_ENDPOINT"] == "https://minio.example.invalid", owner
            assert env["FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE"] == "/opt/airflow/placement-s3/s3-credentials.json"
            assert env["FAILBACK_FENCE_FILE"] == "/opt/airflow/placement/fence", owner
            assert {"name": "placement-s3", "mountPath": "/opt/airflow/placement-s3", "readOnly": True} in \
                container["volumeMounts"], owner
            assert volumes["placement-s3"]["secret"]["secretName"] == "failback-placement-s3", owner
    assert guarded >= 3, "the api-server, the scheduler and the worker pods at least"
    for path, _dirs, files in os.walk(os.path.join(str(item.root))):
        for name in files:
            with open(os.path.join(path, name)) as handle:
                assert "everything-reader-key-9d1f" not in handle.read(), os.path.join(path, name)


# --------------------------------------------------------------------------- who may sign in (airflow_auth)


AUTH_DIR = "/opt/airflow/auth"


def _image(item):
    return item.vars.get("airflow_kubernetes_image", "apache/airflow:3.3.2")


def _prefix(item):
    return item.vars.get("airflow_kubernetes_name", "failback-airflow")


def _effective_env(docs, container):
    """What the container sees: the ConfigMaps it reads whole (envFrom), then its own env."""
    env = {}
    for source in container.get("envFrom") or []:
        env.update(kp.find(docs, "ConfigMap", source["configMapRef"]["name"])[0]["data"])
    env.update(_env(container))
    return env


def _airflow_containers(item, host="k8s-prod"):
    """(owner, container) of every container that runs the Airflow image: Deployments, Jobs, worker pods."""
    return [(owner, container) for owner, spec in kp.pod_specs(item.docs(host))
            for _role, container in kp.containers_of(spec) if container["image"] == _image(item)]


def _auth_secret(item, host="k8s-prod"):
    secret = kp.find(item.secrets(host), "Secret", "failback-airflow-auth")[0]
    return dict((key, base64.b64decode(value).decode()) for key, value in secret["data"].items())


def _users_job(docs):
    jobs = [j for j in kp.find(docs, "Job") if j["metadata"]["labels"]["app.kubernetes.io/component"] == "users"]
    assert len(jobs) == 1, [kp.name_of(j) for j in kp.find(docs, "Job")]
    return jobs[0]


def _auth_volume(spec):
    """{'configMap': source, 'secret': source} of the pod's projected auth volume, and its mount in the first container."""
    volume = [v for v in spec["volumes"] if v["name"] == "auth"][0]
    mount = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "auth"][0]
    return dict((kind, source[kind]) for source in volume["projected"]["sources"] for kind in source), mount


def _items(source):
    assert all(i["key"] == i["path"] for i in source["items"]), source
    return sorted(i["key"] for i in source["items"])


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("host", CLUSTERS)
def test_every_airflow_container_uses_the_fab_auth_manager(rendered, config, host):
    item = rendered[config]
    containers = _airflow_containers(item, host)
    owners = set(owner for owner, _c in containers)
    prefix = _prefix(item)
    assert {"Deployment/%s-api-server" % prefix, "Deployment/%s-scheduler" % prefix, "Job/%s" % _users_job(item.docs(host))["metadata"]["name"],
            "ConfigMap/%s-pod-template[pod_template_file.yaml]" % prefix} <= owners, owners
    assert [owner for owner in owners if owner.startswith("Job/%s-migrate-" % prefix)], owners
    for owner, container in containers:
        env = _effective_env(item.docs(host), container)
        assert env.get("AIRFLOW__CORE__AUTH_MANAGER") == FAB, (owner, container["name"])
        assert env.get("AIRFLOW__FAB__CONFIG_FILE") == AUTH_DIR + "/webserver_config.py", (owner, container["name"])


@pytest.mark.parametrize("config", CONFIGS)
def test_no_sign_in_secret_is_in_a_configmap_job_or_deployment(rendered, config):
    """Given passwords, client secrets, bind passwords, generated passwords and the salt stay in the auth Secret."""
    item = rendered[config]
    for host in CLUSTERS:
        auth = _auth_secret(item, host)
        secrets = [ADMIN_PASSWORD] + _canaries(config) + list(json.loads(auth["passwords.json"]).values()) + [auth["checksum-salt"]]
        assert ADMIN_PASSWORD in auth["passwords.json"] and ADMIN_PASSWORD in auth["users-request.json"]
        outside = [d for d in item.docs(host) if d["kind"] in ("ConfigMap", "Job", "Deployment", "Pod")]
        assert kp.check_no_secret_outside_secrets(outside, secrets) == [], host
        # ... and the check has something to find.
        assert kp.check_no_secret_outside_secrets([dict(kp.find(item.secrets(host), "Secret", "failback-airflow-auth")[0],
                                                        kind="ConfigMap")], secrets) != []


def test_fab_sign_in_with_passwords(rendered):
    item = rendered["defaults"]
    docs = item.docs()
    config = kp.find(docs, "ConfigMap", "failback-airflow-auth")[0]
    assert config["metadata"]["labels"]["app.kubernetes.io/instance"] == "failback-airflow"  # removed with state absent
    assert sorted(config["data"]) == ["fab_users.py", "webserver_config.py"]
    assert "AUTH_TYPE = AUTH_DB" in config["data"]["webserver_config.py"]
    with open(os.path.join(REPO, "roles", "airflow_auth", "files", "fab_users.py")) as handle:
        assert config["data"]["fab_users.py"].strip() == handle.read().strip()
    auth = _auth_secret(item)
    assert sorted(auth) == ["checksum-salt", "passwords.json", "users-request.json", "users.json"]
    passwords = json.loads(auth["passwords.json"])
    assert passwords["admin"] == ADMIN_PASSWORD and passwords["ops"] == "canary-ops-password-7d1f"
    assert len(passwords["viewer"]) == 24  # generated, kept in the Secret
    request = json.loads(auth["users-request.json"])
    assert [(u["username"], u["role"], u["password"]) for u in request["users"]] == [
        ("admin", "Admin", ADMIN_PASSWORD), ("ops", "Op", "canary-ops-password-7d1f"), ("viewer", "Viewer", passwords["viewer"])]
    assert request["users"][1]["email"] == "ops@example.invalid" and request["disable"] == [] and request["check"] is False
    assert json.loads(auth["users.json"]) == []  # the users Job has not run yet
    # The api-server mounts webserver_config.py, and no secret file as none is needed with passwords.
    deployments = dict((d["metadata"]["name"], d) for d in kp.find(docs, "Deployment"))
    api = deployments.pop("failback-airflow-api-server")["spec"]["template"]
    sources, mount = _auth_volume(api["spec"])
    assert sorted(sources) == ["configMap"] and _items(sources["configMap"]) == ["webserver_config.py"]
    assert sources["configMap"]["name"] == "failback-airflow-auth"
    assert mount == {"name": "auth", "mountPath": AUTH_DIR, "readOnly": True}
    assert len(api["metadata"]["annotations"]["failback.airflow/auth-checksum"]) == 64
    for name, deployment in deployments.items():
        template = deployment["spec"]["template"]
        assert "auth" not in [v["name"] for v in template["spec"]["volumes"]], name
        assert "failback.airflow/auth-checksum" not in template["metadata"]["annotations"], name
    # The users Job: the api-server's image, configuration and secrets, the users script and the request.
    job = _users_job(docs)
    assert job["metadata"]["name"].startswith("failback-airflow-users-") and len(job["metadata"]["name"]) == 33
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0 and spec["activeDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "failback-airflow-users" and pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    api_container = api["spec"]["containers"][0]
    assert container["args"] == ["python", AUTH_DIR + "/fab_users.py", "--request-file", AUTH_DIR + "/users-request.json"]
    for key in ("image", "envFrom", "env", "securityContext"):
        assert container[key] == api_container[key], key
    mounts = dict((m["mountPath"], m["name"]) for m in container["volumeMounts"])
    assert mounts["/opt/airflow/secrets/airflow"] == "airflow-secrets" and mounts["/opt/airflow/config"] == "guard"
    sources, mount = _auth_volume(pod)
    assert mount["mountPath"] == AUTH_DIR and mount["readOnly"] is True
    assert _items(sources["configMap"]) == ["fab_users.py", "webserver_config.py"]
    assert _items(sources["secret"]) == ["users-request.json"]  # not passwords.json, not the salt


def test_oauth_sign_in(rendered):
    item = rendered["everything"]
    docs = item.docs()
    webserver_config = kp.find(docs, "ConfigMap", "failback-airflow-auth")[0]["data"]["webserver_config.py"]
    assert "AUTH_TYPE = AUTH_OAUTH" in webserver_config
    assert 'client_secret=_secret("oauth-google.secret")' in webserver_config
    assert 'client_secret=_secret("oauth-corp.secret")' in webserver_config
    assert OAUTH_SECRET not in webserver_config
    auth = _auth_secret(item)
    assert auth["oauth-google.secret"] == OAUTH_SECRET and auth["oauth-corp.secret"] == "canary-oidc-client-secret-3e8a"
    api = _deployment(docs, "af-api-server")["spec"]["template"]["spec"]
    sources, _mount = _auth_volume(api)
    assert _items(sources["configMap"]) == ["webserver_config.py"]
    assert _items(sources["secret"]) == ["oauth-corp.secret", "oauth-google.secret"]  # next to webserver_config.py
    job = _users_job(docs)
    assert job["metadata"]["name"].startswith("af-users-") and job["metadata"]["labels"]["team"] == "data"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "af-users" and pod["nodeSelector"] == {"node-role/airflow": "true"}
    sources, _mount = _auth_volume(pod)
    assert _items(sources["secret"]) == ["oauth-corp.secret", "oauth-google.secret", "users-request.json"]
    assert pod["containers"][0]["resources"]["limits"]["memory"]


def test_ldap_sign_in(rendered):
    item = rendered["remote-logging"]
    webserver_config = kp.find(item.docs(), "ConfigMap", "failback-airflow-auth")[0]["data"]["webserver_config.py"]
    assert "AUTH_TYPE = AUTH_LDAP" in webserver_config
    assert 'AUTH_LDAP_BIND_PASSWORD = _secret("ldap-bind-password.secret")' in webserver_config
    assert _auth_secret(item)["ldap-bind-password.secret"] == "canary-ldap-bind-password-9f2c"
    sources, _mount = _auth_volume(_deployment(item.docs(), "failback-airflow-api-server")["spec"]["template"]["spec"])
    assert _items(sources["secret"]) == ["ldap-bind-password.secret"]


def test_a_new_secret_rolls_the_api_server_and_a_new_request_makes_a_new_users_job(rendered, tmp_path):
    """Rendered again over the same files (the generated passwords and the salt are kept from the manifests)."""
    item = rendered["everything"]
    root = tmp_path / "root"
    shutil.copytree(str(item.root), str(root))

    def state():
        docs = kp.load_dir(str(root / "k8s-prod" / "manifests"))
        annotations = _deployment(docs, "af-api-server")["spec"]["template"]["metadata"]["annotations"]
        others = dict((d["metadata"]["name"], d["spec"]["template"]["metadata"]["annotations"]) for d in kp.find(docs, "Deployment"))
        auth = dict((k, base64.b64decode(v).decode()) for k, v in kp.find(docs, "Secret", "failback-airflow-auth")[0]["data"].items())
        return annotations["failback.airflow/auth-checksum"], _users_job(docs)["metadata"]["name"], others, auth

    checksum, job, others, auth = state()
    providers = [dict(p) for p in item.vars["airflow_auth_oauth_providers"]]
    providers[0]["client_secret"] = "canary-oauth-client-secret-rotated-1"
    again = render("everything", root, {"airflow_auth_oauth_providers": providers})
    assert again.rc == 0, again
    checksum2, job2, others2, auth2 = state()
    assert checksum2 != checksum, "a new client secret restarts the api-server"
    assert job2 == job, "the users request did not change"
    assert [n for n in others if n != "af-api-server" and others[n] != others2[n]] == [], "only the api-server restarts"
    assert auth2["passwords.json"] == auth["passwords.json"] and auth2["checksum-salt"] == auth["checksum-salt"]
    users = [{"username": "ops", "role": "Op", "password": "canary-ops-password-7d1f", "email": "ops@example.invalid"},
             {"username": "viewer", "role": "Viewer"}, {"username": "analyst", "role": "User"}]
    third = render("everything", root, {"airflow_auth_oauth_providers": providers, "airflow_auth_users": users})
    assert third.rc == 0, third
    checksum3, job3, _others3, auth3 = state()
    assert job3 != job2 and job3.startswith("af-users-"), "a changed inventory makes a new users Job"
    assert checksum3 == checksum2, "a new user does not restart the api-server"
    assert [u["username"] for u in json.loads(auth3["users-request.json"])["users"]] == ["admin", "ops", "viewer", "analyst"]
    assert json.loads(auth3["passwords.json"])["viewer"] == json.loads(auth["passwords.json"])["viewer"]


def test_the_simple_auth_manager_is_refused_on_kubernetes(tmp_path):
    run = render("defaults", tmp_path, {"airflow_auth_manager": "simple"})
    assert run.rc != 0, run
    assert "only fab is supported" in run.text(), run


def test_rendering_twice_changes_nothing(rendered, tmp_path):
    item = rendered["git-sync"]
    again = render("git-sync", item.root)
    assert again.rc == 0, again
    assert again.changed() == 0, again


# --------------------------------------------------------------------------- refused settings


BAD = [
    ({"airflow_kubernetes_config": {"core": {"fernet_key": "abc"}}}, "core.fernet_key"),
    ({"airflow_kubernetes_config": {"database": {"SQL_ALCHEMY_CONN": "postgresql://u:p@h/db"}}}, "database.sql_alchemy_conn"),
    ({"airflow_kubernetes_env": {"WAREHOUSE_PASSWORD": "x"}}, "WAREHOUSE_PASSWORD"),
    ({"airflow_kubernetes_env": {"FAILBACK_INSTALLATION": "other"}}, "FAILBACK_INSTALLATION"),
    ({"airflow_kubernetes_dags_source": "svn"}, "svn"),
    ({"airflow_kubernetes_dags_source": "git"}, "airflow_kubernetes_dags_git_repo"),
    ({"airflow_kubernetes_namespace": "Bad_Namespace"}, "Bad_Namespace"),
    ({"airflow_kubernetes_run_as_user": 0}, "non-root"),
    ({"airflow_kubernetes_resources": {"worker": {"requests": {"cpu": "1"}}}}, "limits"),
    ({"airflow_kubernetes_resources": {"workers": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}},
     "workers"),
    ({"airflow_kubernetes_remote_logging": True, "airflow_kubernetes_remote_log_conn_id": "task_logs"}, "s3://"),
    ({"airflow_kubernetes_remote_logging": True, "airflow_kubernetes_remote_log_folder": "s3://b/p",
      "airflow_kubernetes_remote_log_conn_id": "nope"}, "nope"),
    ({"airflow_kubernetes_database": "external"}, "airflow_credentials_database_url"),
    ({"airflow_credentials_database_url": "postgresql://a:b@c/d"}, "airflow_kubernetes_database=external"),
    ({"airflow_kubernetes_failover_inflight": "kill"}, "kill"),
    ({"airflow_dag_bundles": [{"name": "dags", "repo_url": "file:///srv/git/dags.git"}]}, "pods cannot read it"),
    ({"airflow_dag_bundles": [{"name": "dags", "repo_url": "https://bot:tok3n@git.example.invalid/d.git"}]},
     "carries a credential"),
    ({"airflow_dag_bundles": [{"name": "dags", "conn_id": "git_nope"}]}, "git_nope"),
]


def test_a_bundle_url_with_a_token_is_refused_without_showing_it(tmp_path):
    run = render("defaults", tmp_path, {"airflow_dag_bundles": [
        {"name": "dags", "repo_url": "https://bot:canary-url-token-9d2f@git.example.invalid/d.git"}]})
    assert run.rc != 0 and "airflow_dag_bundles[0] (dags)" in run.text(), run
    assert "canary-url-token-9d2f" not in run.text(), run


@pytest.mark.parametrize("extra,message", BAD, ids=[m for _e, m in BAD])
def test_bad_settings_fail_before_anything_is_written(tmp_path, extra, message):
    run = render("defaults", tmp_path, extra)
    assert run.rc != 0, run
    assert message in run.text(), run
    assert not os.path.exists(os.path.join(str(tmp_path), "k8s-prod", "manifests")), os.listdir(str(tmp_path / "k8s-prod"))

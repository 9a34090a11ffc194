"""Policy checks for the manifests of the airflow_kubernetes role (pure functions, no cluster).

Each ``check_*`` function takes the list of rendered documents (dicts) and returns a list of
violations (strings naming the object and what is wrong); an empty list means the policy holds.
Used by tests/integration/test_kubernetes_render.py and tests/airflow/test_kubernetes_pod.py.
"""

from __future__ import annotations

import base64
import copy
import glob
import os
import re

import yaml

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "Pod")
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet")
# Volume types the Pod Security Standard "restricted" allows.
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret"}
# What the KubernetesExecutor calls (create, watch, read, adopt = patch, delete worker pods).
EXECUTOR_RULES = {("", "pods"): {"create", "delete", "get", "list", "patch", "watch"}}
POD_LOG_READER_RULES = {("", "pods"): {"get", "list"}, ("", "pods/log"): {"get"}}
POD_OPERATOR_RULES = {("", "pods"): {"create", "delete", "get", "list", "patch", "watch"}, ("", "pods/log"): {"get"},
                      ("", "pods/exec"): {"create", "get"}, ("", "events"): {"list"}}


# --------------------------------------------------------------------------- loading


def load_dir(directory):
    """Every document of every *.yaml file in *directory* (sorted by file name), without empty ones."""
    docs = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as handle:
            docs.extend(doc for doc in yaml.safe_load_all(handle) if doc)
    return docs


def name_of(doc):
    return "%s/%s" % (doc.get("kind"), doc.get("metadata", {}).get("name"))


def find(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def pod_specs(docs):
    """(object name, pod spec) of every workload, including worker pod templates kept in ConfigMaps."""
    result = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            result.append((name_of(doc), doc["spec"]))
        elif kind in ("Deployment", "StatefulSet", "Job"):
            result.append((name_of(doc), doc["spec"]["template"]["spec"]))
        elif kind == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if key.endswith(".yaml"):
                    inner = yaml.safe_load(text)
                    if isinstance(inner, dict) and inner.get("kind") == "Pod":
                        result.append(("%s[%s]" % (name_of(doc), key), inner["spec"]))
    return result


def containers_of(spec):
    """(role, container) for init containers (native sidecars marked) and regular containers."""
    result = []
    for container in spec.get("initContainers") or []:
        role = "sidecar" if container.get("restartPolicy") == "Always" else "init"
        result.append((role, container))
    for container in spec.get("containers") or []:
        result.append(("main", container))
    return result


# --------------------------------------------------------------------------- secrets


def canary_forms(values):
    """Each canary as plain text and in the base64 forms a Secret or an annotation could carry."""
    forms = set()
    for value in values:
        forms.add(value)
        forms.add(base64.b64encode(value.encode()).decode())
    return forms


def check_no_secret_outside_secrets(docs, canaries):
    """No canary secret value (plain or base64) in any object that is not a Secret."""
    forms = canary_forms(canaries)
    problems = []
    for doc in docs:
        if doc.get("kind") == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for form in sorted(forms):
            if form in text:
                problems.append("%s contains a secret value (%s...)" % (name_of(doc), form[:12]))
    return problems


SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|FERNET_KEY|SQL_ALCHEMY_CONN|SECRET_KEY|JWT_SECRET|PRIVATE_KEY|DSN)$|^AIRFLOW_(CONN|VAR)_")


def _looks_secret(name):
    return bool(SECRET_NAME.search(name.upper()))


def check_env(docs):
    """Env literals and ConfigMaps never carry secrets: secret-looking names are only _CMD/_FILE paths or secretKeyRef."""
    problems = []
    for owner, spec in pod_specs(docs):
        for _role, container in containers_of(spec):
            for env in container.get("env") or []:
                name = env["name"]
                if "valueFrom" in env:
                    if "configMapKeyRef" in env["valueFrom"] and _looks_secret(name):
                        problems.append("%s %s: %s comes from a ConfigMap" % (owner, container["name"], name))
                    continue
                if name.endswith("_CMD"):
                    if not str(env.get("value", "")).startswith("cat /"):
                        problems.append("%s %s: %s is not a file read" % (owner, container["name"], name))
                    continue
                if _looks_secret(name):
                    problems.append("%s %s: env %s is a literal" % (owner, container["name"], name))
    for cm in find(docs, "ConfigMap"):
        for key in (cm.get("data") or {}):
            if _looks_secret(key):
                problems.append("%s has key %s" % (name_of(cm), key))
    return problems


# --------------------------------------------------------------------------- pods


def check_pod_security(docs):
    """Every container non-root (PSS restricted): no escalation, all capabilities dropped, seccomp."""
    problems = []
    for owner, spec in pod_specs(docs):
        pod_sc = spec.get("securityContext") or {}
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append("%s shares a host namespace" % owner)
        for volume in spec.get("volumes") or []:
            types = set(volume) - {"name"}
            if not types <= RESTRICTED_VOLUME_TYPES:
                problems.append("%s volume %s is of type %s" % (owner, volume["name"], ", ".join(sorted(types))))
        for role, container in containers_of(spec):
            sc = container.get("securityContext") or {}
            where = "%s %s container %s" % (owner, role, container["name"])
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
                problems.append("%s may run as root (runAsNonRoot not true)" % where)
            if sc.get("runAsUser", pod_sc.get("runAsUser")) in (0, None):
                problems.append("%s has no non-zero runAsUser" % where)
            if sc.get("privileged"):
                problems.append("%s is privileged" % where)
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append("%s allows privilege escalation" % where)
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append("%s keeps capabilities" % where)
            if (sc.get("capabilities") or {}).get("add"):
                problems.append("%s adds capabilities" % where)
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append("%s has no seccomp profile" % where)
    return problems


def check_resources(docs):
    """Every container requests cpu and memory and has a memory limit."""
    problems = []
    for owner, spec in pod_specs(docs):
        for role, container in containers_of(spec):
            resources = container.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            missing = [k for k in ("cpu", "memory") if k not in requests]
            if missing or "memory" not in limits:
                problems.append("%s %s container %s lacks requests %s / memory limit" % (
                    owner, role, container["name"], ",".join(missing) or "-"))
    return problems


def check_probes(docs):
    """Long-running containers (Deployments, StatefulSets, native sidecars) have liveness and readiness or startup probes."""
    problems = []
    for doc in docs:
        if doc.get("kind") not in LONG_RUNNING_KINDS:
            continue
        for role, container in containers_of(doc["spec"]["template"]["spec"]):
            if role == "init":
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if probe in container:
                        problems.append("%s init container %s has a %s (not allowed)" % (name_of(doc), container["name"], probe))
                continue
            if "livenessProbe" not in container:
                problems.append("%s container %s has no livenessProbe" % (name_of(doc), container["name"]))
            if "readinessProbe" not in container and "startupProbe" not in container:
                problems.append("%s container %s has neither readinessProbe nor startupProbe" % (name_of(doc), container["name"]))
    return problems


# --------------------------------------------------------------------------- RBAC


def _rules(role):
    granted = {}
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups") or [""]:
            for resource in rule.get("resources") or []:
                granted.setdefault((group, resource), set()).update(rule.get("verbs") or [])
    return granted


def granted_to(docs, service_account):
    """{(apiGroup, resource): verbs} the RoleBindings of the rendered docs give *service_account*."""
    roles = dict((r["metadata"]["name"], r) for r in find(docs, "Role"))
    granted = {}
    for binding in find(docs, "RoleBinding"):
        if any(s.get("kind") == "ServiceAccount" and s.get("name") == service_account for s in binding.get("subjects") or []):
            ref = binding["roleRef"]
            if ref["kind"] != "Role" or ref["name"] not in roles:
                granted[("?", ref["kind"] + "/" + ref["name"])] = {"?"}
                continue
            for key, verbs in _rules(roles[ref["name"]]).items():
                granted.setdefault(key, set()).update(verbs)
    return granted


def check_rbac(docs, prefix, worker_pod_launcher=False, pod_log_reading=True):
    """Least privilege: the scheduler gets exactly what the KubernetesExecutor needs, nothing is cluster-wide,
    and only ServiceAccounts with a Role get an API token."""
    problems = []
    for doc in docs:
        if doc.get("kind") in ("ClusterRole", "ClusterRoleBinding"):
            problems.append("%s is cluster-wide" % name_of(doc))
    for role in find(docs, "Role"):
        for (group, resource), verbs in _rules(role).items():
            if "*" in verbs or resource == "*" or group == "*":
                problems.append("%s uses a wildcard" % name_of(role))
            if resource in ("secrets", "configmaps", "roles", "rolebindings", "serviceaccounts/token"):
                problems.append("%s grants %s on %s" % (name_of(role), ",".join(sorted(verbs)), resource))
    expected = {
        prefix + "-scheduler": EXECUTOR_RULES,
        prefix + "-api-server": POD_LOG_READER_RULES if pod_log_reading else {},
        prefix + "-worker": POD_OPERATOR_RULES if worker_pod_launcher else {},
    }
    for sa in find(docs, "ServiceAccount"):
        name = sa["metadata"]["name"]
        want = expected.get(name, {})
        got = granted_to(docs, name)
        if got != want:
            problems.append("ServiceAccount %s is granted %s, expected %s" % (name, _show(got), _show(want)))
        if sa.get("automountServiceAccountToken") is not bool(want):
            problems.append("ServiceAccount %s automountServiceAccountToken=%s but has %s rules" % (
                name, sa.get("automountServiceAccountToken"), "" if want else "no"))
    for owner, spec in pod_specs(docs):
        account = spec.get("serviceAccountName")
        if not account or account == "default":
            problems.append("%s runs as the default ServiceAccount" % owner)
            continue
        if spec.get("automountServiceAccountToken") is not bool(expected.get(account)):
            problems.append("%s automountServiceAccountToken=%s for %s" % (owner, spec.get("automountServiceAccountToken"), account))
    return problems


def _show(rules):
    return "{%s}" % ", ".join("%s:%s" % ((g + "/" if g else "") + r, "+".join(sorted(v))) for (g, r), v in sorted(rules.items()))


# --------------------------------------------------------------------------- references


def _volume_sources(volume):
    """(kind, name, reference) of what a volume reads: a Secret or ConfigMap, or each source of a projected volume."""
    if "secret" in volume:
        return [("Secret", volume["secret"]["secretName"], volume["secret"])]
    if "configMap" in volume:
        return [("ConfigMap", volume["configMap"]["name"], volume["configMap"])]
    sources = []
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "secret" in source:
            sources.append(("Secret", source["secret"]["name"], source["secret"]))
        elif "configMap" in source:
            sources.append(("ConfigMap", source["configMap"]["name"], source["configMap"]))
    return sources


def check_references(docs, secrets, external=()):
    """Every Secret key and ConfigMap (key) a pod reads exists in the rendered objects (optional ones and *external* aside);
    projected volumes name the keys they read."""
    problems = []
    secret_keys = dict((s["metadata"]["name"], set((s.get("data") or {}).keys()) | set((s.get("stringData") or {}).keys()))
                       for s in secrets)
    configmap_keys = dict((c["metadata"]["name"], set((c.get("data") or {}).keys())) for c in find(docs, "ConfigMap"))
    # the airflow_placement role publishes these before Airflow starts (guard_kubernetes.yml, publish_kubernetes.yml)
    configmaps = set(configmap_keys) | {"failback-placement", "failback-guard"}
    external = set(external) | {"failback-placement-s3"}
    claims = dict((name_of(d), set(t["metadata"]["name"] for t in d["spec"].get("volumeClaimTemplates") or []))
                  for d in find(docs, "StatefulSet"))
    for owner, spec in pod_specs(docs):
        for volume in spec.get("volumes") or []:
            for kind, name, ref in _volume_sources(volume):
                if "projected" in volume and not ref.get("items"):
                    problems.append("%s projects every key of %s %s (name the keys it reads)" % (owner, kind, name))
                if kind == "Secret":
                    if name in external or ref.get("optional"):
                        continue
                    if name not in secret_keys:
                        problems.append("%s mounts missing Secret %s" % (owner, name))
                        continue
                    for item in ref.get("items") or []:
                        if item["key"] not in secret_keys[name]:
                            problems.append("%s mounts missing key %s of Secret %s" % (owner, item["key"], name))
                    continue
                if name not in configmaps:
                    problems.append("%s mounts missing ConfigMap %s" % (owner, name))
                    continue
                for item in ref.get("items") or []:
                    if name in configmap_keys and item["key"] not in configmap_keys[name]:
                        problems.append("%s mounts missing key %s of ConfigMap %s" % (owner, item["key"], name))
        for _role, container in containers_of(spec):
            for source in container.get("envFrom") or []:
                if "configMapRef" in source and source["configMapRef"]["name"] not in configmaps:
                    problems.append("%s reads missing ConfigMap %s" % (owner, source["configMapRef"]["name"]))
            mounted = set(m["name"] for m in container.get("volumeMounts") or [])
            declared = set(v["name"] for v in spec.get("volumes") or []) | claims.get(owner, set())
            for name in sorted(mounted - declared):
                problems.append("%s container %s mounts undeclared volume %s" % (owner, container["name"], name))
    return problems


ALL_CHECKS = ("check_env", "check_pod_security", "check_resources", "check_probes")


def run_all(docs, secrets, canaries, prefix, worker_pod_launcher=False, pod_log_reading=True, external_secrets=()):
    """Every policy at once; returns the list of violations."""
    problems = check_no_secret_outside_secrets(docs, canaries)
    for name in ALL_CHECKS:
        problems += globals()[name](docs)
    problems += check_rbac(docs, prefix, worker_pod_launcher, pod_log_reading)
    problems += check_references(docs, secrets, external_secrets)
    return problems


def mutated(docs):
    """A deep copy, for tests that break one rule and expect the matching check to notice."""
    return copy.deepcopy(docs)

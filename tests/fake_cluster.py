"""A Kubernetes cluster on 127.0.0.1 for the collection's tests: the test Kubernetes API, and a kubelet
that runs a real Airflow for what the airflow_kubernetes role applies.

No Kubernetes API server can be installed on the build machines, so the cluster installation's paths
are executed against this one (tests/fake_kube.py keeps the objects, statuses and pods), and a real
Airflow 3 (tests/airflow_local.py: FAB auth manager, LocalExecutor, SQLite) stands for the pods:

* the ConfigMap ``failback-placement`` (map and ``fence`` key) is projected into the placement directory
  the components read, ``failback-guard`` into ``AIRFLOW_HOME/config`` (the guard), and the auth
  ConfigMap and Secret ``failback-airflow-auth`` into ``AIRFLOW_HOME/auth`` (``webserver_config.py``);
* the migration Job runs ``airflow db migrate``; the users Job runs its script (the airflow_auth role's
  ``fab_users.py``) with its projected request, and its log is the pod's log the role reads;
* the Deployment ``<name>-<component>`` at n > 0 replicas runs that component (api-server, scheduler,
  dag-processor, triggerer), at 0 stops it - so scaling the scheduler to zero really fences; the
  api-server's replicas make the Service ``<name>-api-server`` answer through the API's Service proxy;
* the installation's name comes from the ``FAILBACK_INSTALLATION`` of the api-server Deployment's
  container, as in a pod; it must be the name the cluster was created for.

The KubernetesExecutor's worker pods are not run (tasks run in the scheduler, LocalExecutor); a test
adds pod objects of its own to check the role's handling of in-flight worker pods.

Run alone, it serves until it is stopped (the drills' Molecule scenario keeps one for a whole run):

    python fake_cluster.py serve ROOT NAME --dags DIR [--dags-file FILE ...] --state STATE.json
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from airflow_local import AIRFLOW, LocalAirflow  # noqa: E402
from fake_kube import FakeKube  # noqa: E402

AIRFLOW_PYTHON = os.path.join(os.path.dirname(AIRFLOW), "python")
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: restartPolicy Always of the test kubelet: how often, and how many seconds apart, a component that ended is started again.
RESTARTS, RESTART_DELAY = 5, 2
_AUTH_DB = "from flask_appbuilder.const import AUTH_DB\nAUTH_TYPE = AUTH_DB\n"


class FakeCluster(object):
    def __init__(self, root, installation, namespace="airflow", name="failback-airflow", dags=None, env=None):
        self.root = root
        self.installation = installation
        self.namespace = namespace
        self.name = name
        self.problems = []  # what the kubelet found wrong in what was applied (a test asserts it stays empty)
        self.jobs_run = []
        os.makedirs(root, exist_ok=True)
        auth = os.path.join(root, installation, "auth")
        self.airflow = LocalAirflow(root, installation, dags=dags, guard=False, env=dict({
            "AIRFLOW__CORE__AUTH_MANAGER": FAB,
            "AIRFLOW__FAB__CONFIG_FILE": os.path.join(auth, "webserver_config.py"),
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
        }, **(env or {})), before_migrate=lambda home: _write(os.path.join(auth, "webserver_config.py"), _AUTH_DB))
        self.auth_dir = auth
        self.config_dir = os.path.join(self.airflow.home, "config")
        os.makedirs(self.config_dir, exist_ok=True)
        self.kube = FakeKube(namespaces=[])
        self.kube.on_write = self._written
        self.kube.on_scale = self._scaled
        self.kube.on_job = self._job
        self.kubeconfig = os.path.join(root, "kubeconfig")
        _write(self.kubeconfig, self.kube.kubeconfig())
        # The kubelet restarts a component whose process ended while its Deployment wants it (restartPolicy
        # Always): at most RESTARTS times each, RESTART_DELAY seconds apart; restarts are counted for the tests.
        self.wanted = {}
        self.restarts = {}
        self._stopping = threading.Event()

    # -------------------------------------------------------------- the kubelet
    def _written(self, plural, namespace, name, obj):
        if namespace != self.namespace:
            return
        data = (obj or {}).get("data") or {}
        if plural == "configmaps" and name == "failback-placement":
            self._project(self.airflow.placement_dir, data, ("placement.yml", "fence"))
        elif plural == "configmaps" and name == "failback-guard":
            self._project(self.config_dir, data, None)
        elif name == "failback-airflow-auth" and plural in ("configmaps", "secrets"):
            if plural == "secrets":
                data = dict((k, base64.b64decode(v).decode("utf-8", "replace")) for k, v in data.items())
                # the admin the users Job creates signs in with the password of the Secret (tests log in with it too)
                password = json.loads(data.get("passwords.json") or "{}").get(self.airflow.username)
                if password:
                    self.airflow.password = password
            self._project(self.auth_dir, data, None, keep=True)

    @staticmethod
    def _project(directory, data, names, keep=False):
        """Make *directory* hold the ConfigMap's keys (*names*: only these, the others are removed), as a volume would."""
        os.makedirs(directory, exist_ok=True)
        for key, value in data.items():
            if names is None or key in names:
                _write(os.path.join(directory, key), value)
        if names is not None and not keep:
            for key in names:
                if key not in data and os.path.exists(os.path.join(directory, key)):
                    os.unlink(os.path.join(directory, key))

    def _component(self, deployment):
        prefix = self.name + "-"
        component = deployment[len(prefix):] if deployment.startswith(prefix) else None
        return component if component in COMPONENTS else None

    def _scaled(self, namespace, deployment, replicas, obj):
        """FakeKube's on_scale: start or stop the component; True when the Deployment becomes available only
        once it answers (the api-server, whose readiness probe the role's rollout wait relies on)."""
        component = self._component(deployment) if namespace == self.namespace else None
        if component is None:
            return False
        if component == "api-server" and obj is not None:
            self._check_env(obj)
        # Starting and stopping take seconds: not under the API's lock.
        threading.Thread(target=self._run_component, args=(component, replicas, deployment), daemon=True).start()
        return component == "api-server" and replicas > 0

    def _run_component(self, component, replicas, deployment):
        self.wanted[component] = replicas
        if replicas > 0:
            self.airflow.start(component)
            if component == "api-server":
                self.kube.serve(self.namespace, self.name + "-api-server", self.airflow.url)
                self.kube.mark_ready("apps/v1/deployments", self.namespace, deployment, replicas)
            threading.Thread(target=self._keep_running, args=(component,), daemon=True).start()
        else:
            self.airflow.stop(component)
            if component == "api-server":
                self.kube.proxies.pop((self.namespace, self.name + "-api-server"), None)

    def _keep_running(self, component):
        """restartPolicy Always, bounded: restart *component* when its process ended while it is wanted."""
        while not self._stopping.wait(RESTART_DELAY):
            if self.wanted.get(component, 0) <= 0 or self.restarts.get(component, 0) >= RESTARTS:
                return
            if component in self.airflow.processes and not self.airflow.running(component):
                self.restarts[component] = self.restarts.get(component, 0) + 1
                sys.stderr.write("test kubelet: %s ended (see %s.out), restart %d\n"
                                 % (component, component, self.restarts[component]))
                self.airflow.stop(component)
                if self.wanted.get(component, 0) > 0:
                    self.airflow.start(component)

    def _check_env(self, deployment):
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        env = dict((e.get("name"), e.get("value")) for c in containers for e in c.get("env") or [])
        if env.get("FAILBACK_INSTALLATION") != self.installation:
            self.problems.append("the api-server's FAILBACK_INSTALLATION is %r, not %r"
                                 % (env.get("FAILBACK_INSTALLATION"), self.installation))

    def _job(self, job):
        """Run the Job's container as its pod would, then finish the Job with its log."""
        name = job["metadata"]["name"]
        self.jobs_run.append(name)
        try:
            spec = job["spec"]["template"]["spec"]
            container = spec["containers"][0]
            args = list(container.get("command") or []) + list(container.get("args") or [])
            directory = os.path.join(self.root, "pods", "%s-%d" % (name, len(self.jobs_run)))
            args = self._lay_out(spec, container, directory, args)
            if args[:3] == ["airflow", "db", "migrate"]:
                command = [AIRFLOW] + args[1:]
                env = self.airflow.env
            elif args and args[0] == "python":
                command = [AIRFLOW_PYTHON] + args[1:]
                env = dict(self.airflow.env, AIRFLOW__FAB__CONFIG_FILE=os.path.join(directory, "auth", "webserver_config.py"))
            else:
                raise RuntimeError("the test kubelet does not know how to run %r" % args)
            proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
            log, ok = proc.stderr + proc.stdout, proc.returncode == 0
        except Exception as exc:  # the test's own failure shows in the Job's log  # pylint: disable=broad-except
            log, ok = "test kubelet failed: %r\n" % exc, False
        self.kube.finish_job(job["metadata"]["namespace"], name, ok, log)

    def _lay_out(self, spec, container, directory, args):
        """Write the pod's projected, Secret and ConfigMap volumes that the container mounts; return *args* with
        the mount paths replaced by where they were laid out."""
        volumes = dict((v["name"], v) for v in spec.get("volumes") or [])
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            target = os.path.join(directory, mount["name"])
            sources = (volume.get("projected") or {}).get("sources") or []
            sources += [{"secret": volume["secret"]}] if "secret" in volume else []
            sources += [{"configMap": volume["configMap"]}] if "configMap" in volume else []
            for source in sources:
                kind = "secrets" if "secret" in source else "configmaps"
                ref = source.get("secret") or source.get("configMap")
                obj = self.kube.objects.get((kind, self.namespace, ref.get("name") or ref.get("secretName")))
                if obj is None:
                    continue
                data = obj.get("data") or {}
                items = ref.get("items") or [{"key": key, "path": key} for key in data]
                for item in items:
                    value = data.get(item["key"])
                    if value is None:
                        continue
                    if kind == "secrets":
                        value = base64.b64decode(value).decode("utf-8", "replace")
                    _write(os.path.join(target, item["path"]), value)
            if sources:
                args = [arg.replace(mount["mountPath"], target) for arg in args]
        if any(m["name"] == "auth" for m in container.get("volumeMounts") or []):
            os.makedirs(os.path.join(directory, "auth"), exist_ok=True)
        return args

    # -------------------------------------------------------------- for tests
    def worker_pod(self, name, dag_id, phase="Running"):
        """A KubernetesExecutor worker pod of *dag_id* (the role waits for it or deletes it)."""
        self.kube.pods[(self.namespace, name)] = {
            "labels": {"app.kubernetes.io/instance": self.name, "kubernetes_executor": "True"},
            "annotations": {"dag_id": dag_id, "task_id": "work"}, "phase": phase}

    def stop(self):
        self._stopping.set()
        self.kube.stop()
        self.airflow.stop()

    def state(self):
        return {"kubeconfig": self.kubeconfig, "api": self.kube.url, "airflow_url": self.airflow.url,
                "home": self.airflow.home, "placement_dir": self.airflow.placement_dir, "pid": os.getpid(),
                "username": self.airflow.username}


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.rename(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve a test Kubernetes cluster with a real Airflow until stopped.")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("root")
    parser.add_argument("installation")
    parser.add_argument("--namespace", default="airflow")
    parser.add_argument("--dags-file", action="append", default=[])
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the Airflow components")
    parser.add_argument("--state", required=True)
    args = parser.parse_args(argv)
    dags = {}
    for path in args.dags_file:
        with open(path) as handle:
            dags[os.path.basename(path)] = handle.read()
    cluster = FakeCluster(args.root, args.installation, namespace=args.namespace, dags=dags,
                          env=dict(item.split("=", 1) for item in args.env))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    _write(args.state, json.dumps(cluster.state(), indent=2))
    deadline = time.monotonic() + 6 * 3600  # bounded: a forgotten cluster goes away by itself
    while not stopping.wait(1) and time.monotonic() < deadline:
        pass
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

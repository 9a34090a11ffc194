"""The airflow_credentials role through ansible-playbook: idempotence, modes and owners, generated
secrets kept and restored, rotation, Kubernetes Secrets, and bad inputs that change nothing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "credentials"))

import credential_helpers as ch  # noqa: E402  (path set just above)

CONNECTIONS = {
    "pg_main": "postgres://etl:p%40ss@db.example.com:5432/dwh",
    "partner_api": {"conn_type": "http", "host": "api.example.com", "password": "tok-1", "port": 443,
                    "extra": {"timeout": 3}},
}
VARIABLES = {"report_to": "ops@example.com", "limits": {"rows": 10}}
FILES = {
    "warehouse.env": {"data": {"WAREHOUSE_USER": "etl", "WAREHOUSE_PASSWORD": "w-pass"}},
    "service.json": {"data": {"user": "svc", "token": "t-1"}},
    "settings.yaml": {"data": {"db": {"password": "y-pass"}}},
    "legacy.ini": {"data": {"db": {"user": "u", "password": "i-pass"}}},
}


def good_vars(root, name="server-1", **extra):
    values = dict(airflow_credentials_connections=CONNECTIONS, airflow_credentials_variables=VARIABLES,
                  airflow_credentials_files=FILES)
    values.update(extra)
    return ch.host_vars(root, name, **values)


@pytest.fixture
def fleet(tmp_path):
    """One local installation with every kind of credential."""
    inventory = ch.write_inventory(tmp_path / "hosts.yml", {"server-1": good_vars(tmp_path)})
    return tmp_path, inventory


def test_check_apply_check_apply(playbook, fleet):
    root, inventory = fleet
    secrets = root / "server-1" / "secrets"

    check = playbook(ch.playbook("site.yml"), inventory, check=True, diff=True)
    assert check.rc == 0, check
    assert check.changed("server-1") >= 2 and not secrets.exists() and not (root / "store").exists()
    assert sorted(ch.facts(check, "server-1")["changed"]) == sorted(
        ["api_secret_key", "connections", "db_password", "fernet_key", "files/legacy.ini", "files/service.json",
         "files/settings.yaml", "files/warehouse.env", "jwt_secret", "sql_alchemy_conn", "variables"])
    told = ch.task_result(check, "server-1", "Tell where generated secrets are kept")["msg"]
    assert told.startswith("server-1: would generate new values for fernet_key, api_secret_key, jwt_secret, db_password")

    apply = playbook(ch.playbook("site.yml"), inventory, diff=True)
    assert apply.rc == 0, apply
    assert apply.changed("server-1") == 3  # store, files, report
    report = ch.report(apply, "server-1")
    assert "connections/pg_main: (hidden, added)\n" in report["diff"]["after"]
    told = ch.task_result(apply, "server-1", "Tell where generated secrets are kept")["msg"]
    assert told == "server-1: new values for fernet_key, api_secret_key, jwt_secret, db_password, kept on the " \
                   "installation and in %s." % (root / "store" / "server-1.json")

    # Layout, owner, group and modes of the contract.
    expected = sorted(["airflow/fernet_key", "airflow/api_secret_key", "airflow/jwt_secret", "airflow/db_password",
                       "airflow/sql_alchemy_conn", "backend/connections.yaml", "backend/variables.yaml",
                       "files/warehouse.env", "files/service.json", "files/settings.yaml", "files/legacy.ini"])
    assert sorted(ch.read_tree(secrets)) == expected
    for directory, dirs, files in os.walk(str(secrets)):
        st = os.stat(directory)
        assert (stat.S_IMODE(st.st_mode), str(st.st_uid), str(st.st_gid)) == (0o750, ch.OWNER, ch.GROUP), directory
        for name in files:
            st = os.stat(os.path.join(directory, name))
            assert (stat.S_IMODE(st.st_mode), str(st.st_uid), str(st.st_gid)) == (0o640, ch.OWNER, ch.GROUP), name
    store = root / "store" / "server-1.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700

    tree = ch.read_tree(secrets)
    backend = yaml.safe_load(tree["backend/connections.yaml"])
    assert backend["pg_main"] == CONNECTIONS["pg_main"] and backend["partner_api"]["port"] == 443
    assert yaml.safe_load(tree["backend/variables.yaml"]) == {"report_to": "ops@example.com", "limits": '{"rows": 10}'}
    assert "WAREHOUSE_PASSWORD='w-pass'" in tree["files/warehouse.env"]
    assert json.loads(tree["files/service.json"]) == FILES["service.json"]["data"]
    assert tree["airflow/sql_alchemy_conn"] == "postgresql+psycopg2://airflow:%s@postgres:5432/airflow" % (
        tree["airflow/db_password"])
    stored = json.loads(store.read_text())["secrets"]
    assert stored == dict((k, tree["airflow/" + k]) for k in ("fernet_key", "api_secret_key", "jwt_secret", "db_password"))

    before = ch.fingerprint(root)
    again_check = playbook(ch.playbook("site.yml"), inventory, check=True, diff=True)
    assert again_check.rc == 0 and again_check.changed() == 0, again_check
    again = playbook(ch.playbook("site.yml"), inventory, diff=True)
    assert again.rc == 0 and again.changed() == 0, again
    assert ch.facts(again, "server-1")["changed"] == []
    assert ch.fingerprint(root) == before


def test_a_changed_connection_is_reported_by_name_and_needs_no_restart(playbook, fleet):
    root, inventory = fleet
    assert playbook(ch.playbook("site.yml"), inventory).rc == 0
    secrets = root / "server-1" / "secrets"
    before = ch.fingerprint(secrets)
    changed = dict(CONNECTIONS, pg_main="postgres://etl:other@db.example.com:5432/dwh")
    ch.write_inventory(root / "hosts.yml", {"server-1": good_vars(root, airflow_credentials_connections=changed)})
    run = playbook(ch.playbook("site.yml"), inventory, diff=True)
    assert run.rc == 0, run
    assert ch.facts(run, "server-1")["changed"] == ["connections"]
    report = ch.report(run, "server-1")
    assert report["changed_keys"] == ["connections/pg_main"]
    assert "other" not in json.dumps(report)
    after = ch.fingerprint(secrets)
    assert ch.changed_files(before, after) == ["backend/connections.yaml"]
    assert after["backend/connections.yaml"][1] != before["backend/connections.yaml"][1]  # replaced by rename


def test_generated_secrets_are_restored_from_the_store_or_read_back_from_the_installation(playbook, fleet):
    root, inventory = fleet
    assert playbook(ch.playbook("site.yml"), inventory).rc == 0
    secrets = root / "server-1" / "secrets"
    original = ch.read_tree(secrets)

    shutil.rmtree(str(secrets))  # the server was rebuilt: the controller-side store restores the values
    run = playbook(ch.playbook("site.yml"), inventory)
    assert run.rc == 0, run
    assert ch.read_tree(secrets) == original

    os.unlink(str(root / "store" / "server-1.json"))  # another controller: the installation's values are kept
    run = playbook(ch.playbook("site.yml"), inventory)
    assert run.rc == 0, run
    assert ch.read_tree(secrets) == original
    assert ch.facts(run, "server-1")["changed"] == []
    stored = json.loads((root / "store" / "server-1.json").read_text())["secrets"]
    assert stored["fernet_key"] == original["airflow/fernet_key"]


def test_explicit_values_win_and_the_store_keeps_only_generated_ones(playbook, tmp_path):
    inventory = ch.write_inventory(tmp_path / "hosts.yml", {"server-1": ch.host_vars(
        tmp_path, "server-1", airflow_credentials_fernet_key=ch.FERNET_LIKE, airflow_credentials_jwt_secret="jwt-given",
        airflow_credentials_database_url="postgresql+psycopg2://ext:ext-pass@db.internal:5432/airflow")})
    run = playbook(ch.playbook("site.yml"), inventory)
    assert run.rc == 0, run
    tree = ch.read_tree(tmp_path / "server-1" / "secrets")
    assert tree["airflow/fernet_key"] == ch.FERNET_LIKE and tree["airflow/jwt_secret"] == "jwt-given"
    assert tree["airflow/sql_alchemy_conn"] == "postgresql+psycopg2://ext:ext-pass@db.internal:5432/airflow"
    assert "airflow/db_password" not in tree
    assert sorted(json.loads((tmp_path / "store" / "server-1.json").read_text())["secrets"]) == ["api_secret_key"]
    volumes = ch.facts(run, "server-1")["volumes"]
    assert [item["key"] for item in volumes[0]["secret"]["items"]] == [
        "fernet-key", "api-secret-key", "jwt-secret", "sql-alchemy-conn"]


def test_rotation_on_purpose_then_fernet_retire(playbook, fleet):
    root, inventory = fleet
    assert playbook(ch.playbook("site.yml"), inventory).rc == 0
    secrets = root / "server-1" / "secrets"
    original = ch.read_tree(secrets)
    before = ch.fingerprint(secrets)

    jwt = playbook(ch.playbook("site.yml"), inventory, extra_vars={"airflow_credentials_rotate": "jwt_secret"})
    assert jwt.rc == 0, jwt
    assert ch.facts(jwt, "server-1")["changed"] == ["jwt_secret"]
    after = ch.fingerprint(secrets)
    assert ch.changed_files(before, after) == ["airflow/jwt_secret"]
    rotated = ch.read_tree(secrets)
    assert rotated["airflow/jwt_secret"] != original["airflow/jwt_secret"]

    fernet = playbook(ch.playbook("site.yml"), inventory, extra_vars={"airflow_credentials_rotate": ["fernet_key"]})
    assert fernet.rc == 0, fernet
    shown = ch.facts(fernet, "server-1")
    assert shown["changed"] == ["fernet_key"] and shown["fernet_rekey"] is True
    new, old = ch.read_tree(secrets)["airflow/fernet_key"].split(",")
    assert old == original["airflow/fernet_key"] and new != old
    told = ch.task_result(fernet, "server-1", "Tell where generated secrets are kept")["msg"]
    assert told.endswith("The Fernet key holds old keys: run airflow rotate-fernet-key, then the fernet_retire entry point.")

    again = playbook(ch.playbook("site.yml"), inventory)  # a normal run keeps new,old: nothing is lost
    assert again.rc == 0 and again.changed() == 0, again
    assert ch.facts(again, "server-1")["fernet_rekey"] is True

    # The consuming role retires within the same run as the rotation, so -e ...rotate is still set:
    # retiring must not rotate anything again.
    jwt_before = ch.read_tree(secrets)["airflow/jwt_secret"]
    retire = playbook(ch.playbook("retire.yml"), inventory,
                      extra_vars={"airflow_credentials_rotate": ["fernet_key", "jwt_secret"]})
    assert retire.rc == 0, retire
    assert ch.facts(retire, "server-1") == {"changed": ["fernet_key"], "fernet_rekey": False}
    assert ch.read_tree(secrets)["airflow/fernet_key"] == new
    assert ch.read_tree(secrets)["airflow/jwt_secret"] == jwt_before
    assert json.loads((root / "store" / "server-1.json").read_text())["secrets"]["fernet_key"] == new
    assert playbook(ch.playbook("retire.yml"), inventory).changed() == 0


def test_kubernetes_secrets_hold_the_same_content(playbook, fleet):
    import kubernetes_validate

    root, inventory = fleet
    assert playbook(ch.playbook("site.yml"), inventory).rc == 0
    render = playbook(ch.playbook("render.yml"), inventory)
    assert render.rc == 0, render
    manifests = root / "server-1" / "manifests"
    assert sorted(os.listdir(str(manifests))) == ["failback-airflow-backend.yaml", "failback-airflow-secrets.yaml",
                                                  "failback-credentials.yaml"]
    assert stat.S_IMODE(manifests.stat().st_mode) == 0o700
    files = ch.read_tree(root / "server-1" / "secrets")
    version = kubernetes_validate.latest_version()
    decoded = {}
    for name in os.listdir(str(manifests)):
        assert stat.S_IMODE((manifests / name).stat().st_mode) == 0o600
        definition = yaml.safe_load((manifests / name).read_text())
        kubernetes_validate.validate(definition, version, strict=True)
        assert definition["kind"] == "Secret" and definition["metadata"]["namespace"] == "airflow"
        for key, value in definition["data"].items():
            decoded["%s/%s" % (definition["metadata"]["name"], key)] = base64.b64decode(value).decode()
    expected = {}
    for path, text in files.items():
        directory, name = path.split("/")
        secret = {"airflow": "failback-airflow-secrets", "backend": "failback-airflow-backend",
                  "files": "failback-credentials"}[directory]
        expected["%s/%s" % (secret, name.replace("_", "-") if directory == "airflow" else name)] = text
    assert decoded == expected

    shown = ch.facts(render, "server-1")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": "airflow"},
           "spec": {"volumes": shown["volumes"],
                    "containers": [{"name": "base", "image": "localhost/airflow:test", "env": [
                        {"name": k, "value": v} for k, v in sorted(shown["env"].items())],
                        "volumeMounts": shown["volume_mounts"]}]}}
    kubernetes_validate.validate(pod, version, strict=True)
    for secret_value in [files[p] for p in files if p.startswith("airflow/")]:
        assert secret_value not in json.dumps(pod)

    again = playbook(ch.playbook("render.yml"), inventory)
    assert again.rc == 0 and again.changed() == 0, again


# Every installation gets one bad input; each must fail with a message that names the bad entry
# and what is allowed, before anything is written (the files of a good first run stay as they were).
BAD_INPUTS = {
    "unknown-field": ({"airflow_credentials_connections": {"pg": {"conn_type": "postgres", "hostname": "db"}}},
                      "connection 'pg' has unknown field(s) hostname; allowed: conn_type, description, host"),
    "bad-port": ({"airflow_credentials_connections": {"pg": {"conn_type": "postgres", "port": 70000,
                                                             "password": "Leak-Me-1"}}},
                 "connection 'pg': port must be a port number 1-65535, got 70000"),
    "bad-uri-port": ({"airflow_credentials_connections": {"pg": "postgres://u:Leak-Me-2@db:99999/x"}},
                     "connection 'pg': the URI's port is not a number 1-65535"),
    "duplicate-id": ({"airflow_credentials_connections": [{"conn_id": "pg", "uri": "postgres://a"},
                                                          {"conn_id": "pg", "uri": "postgres://b"}]},
                     "connection id 'pg' is given twice"),
    "env-name": ({"airflow_credentials_files": {"a.env": {"data": {"BAD-NAME": "x"}}}},
                 "'BAD-NAME' is not a valid environment variable name"),
    "file-format": ({"airflow_credentials_files": {"a.toml": {"format": "toml", "data": {}}}},
                    "format 'toml' is not supported; allowed: env, json, yaml, ini"),
    "file-name": ({"airflow_credentials_files": {"../escape.env": {"data": {}}}},
                  "name '../escape.env' is not allowed"),
    "fernet": ({"airflow_credentials_fernet_key": "Leak-Me-3-not-a-fernet-key"},
               "airflow_credentials_fernet_key is not a valid Fernet key"),
    "rotate-name": ({"airflow_credentials_rotate": ["fernet"]},
                    "airflow_credentials_rotate names fernet, which cannot be rotated; allowed: fernet_key"),
    "rotate-given": ({"airflow_credentials_jwt_secret": "Leak-Me-4", "airflow_credentials_rotate": ["jwt_secret"]},
                     "airflow_credentials_jwt_secret is set in the inventory: rotate it by changing that value"),
    "file-mode": ({"airflow_credentials_file_mode": "0644"}, "airflow_credentials_file_mode must be one of: 0600, 0640, got: 0644"),
    "target": ({"airflow_credentials_target": "nfs"}, "airflow_credentials_target must be one of: files, kubernetes"),
    "variable": ({"airflow_credentials_variables": {"flag": True}}, "variable 'flag' is bool"),
    "database-url": ({"airflow_credentials_database_url": "postgres://u:Leak-Me-5@db/air flow"},
                     "airflow_credentials_database_url is not a SQLAlchemy URL"),
    "relative-dir": ({"airflow_credentials_dir": "secrets"}, "must be an absolute path other than /"),
}


def test_bad_inputs_fail_clearly_and_change_nothing(playbook, tmp_path):
    good = dict((name, good_vars(tmp_path, name)) for name in BAD_INPUTS)
    inventory = ch.write_inventory(tmp_path / "hosts.yml", good)
    first = playbook(ch.playbook("site.yml"), inventory)
    assert first.rc == 0, first
    before = ch.fingerprint(tmp_path)

    bad = dict((name, dict(good[name], **BAD_INPUTS[name][0])) for name in BAD_INPUTS)
    ch.write_inventory(tmp_path / "hosts.yml", bad)
    run = playbook(ch.playbook("site.yml"), inventory, diff=True)
    assert run.rc != 0
    messages = ch.failures(run)
    assert sorted(messages) == sorted(BAD_INPUTS), run
    for name, (_vars, expected) in BAD_INPUTS.items():
        assert expected in messages[name], "%s: %s" % (name, messages[name])
    assert "Leak-Me" not in run.text()
    after = ch.fingerprint(tmp_path)
    del before["hosts.yml"], after["hosts.yml"]
    assert after == before


def test_kubernetes_target_applies_the_secrets_server_side(playbook, tmp_path):
    from fake_kube import FakeKube

    with FakeKube() as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        inventory = ch.write_inventory(tmp_path / "hosts.yml", {"k8s-prod": good_vars(
            tmp_path, "k8s-prod", airflow_credentials_target="kubernetes", airflow_credentials_kubernetes_namespace="af",
            airflow_credentials_kubernetes_kubeconfig=str(kubeconfig))})

        check = playbook(ch.playbook("site.yml"), inventory, check=True)
        assert check.rc == 0, check
        assert check.changed("k8s-prod") >= 2 and kube.secrets == {}
        patches = [r for r in kube.requests if r["method"] == "PATCH"]
        assert len(patches) == 3 and all(r["query"].get("dryRun") == ["All"] for r in patches)

        apply = playbook(ch.playbook("site.yml"), inventory)
        assert apply.rc == 0, apply
        assert sorted(kube.secrets) == [("af", "failback-airflow-backend"), ("af", "failback-airflow-secrets"),
                                        ("af", "failback-credentials")]
        for request in [r for r in kube.requests if r["method"] == "PATCH"]:
            assert request["content_type"] == "application/apply-patch+yaml"
            assert request["query"]["fieldManager"] == ["failback-airflow"]
            assert "annotations" not in request["body"]["metadata"], "no last-applied copy of the data"
        # The same content as the render entry point produces for this installation.
        render = playbook(ch.playbook("render.yml"), inventory)
        assert render.rc == 0, render
        manifests = tmp_path / "k8s-prod" / "manifests"
        for name in os.listdir(str(manifests)):
            definition = yaml.safe_load((manifests / name).read_text())
            assert kube.secrets[("af", definition["metadata"]["name"])]["data"] == definition["data"]
        airflow = kube.secrets[("af", "failback-airflow-secrets")]["data"]
        conn = base64.b64decode(airflow["sql-alchemy-conn"]).decode()
        assert conn.endswith(":%s@postgres:5432/airflow" % base64.b64decode(airflow["db-password"]).decode())

        versions = dict((key, s["metadata"]["resourceVersion"]) for key, s in kube.secrets.items())
        again = playbook(ch.playbook("site.yml"), inventory)
        assert again.rc == 0 and again.changed() == 0, again
        assert dict((key, s["metadata"]["resourceVersion"]) for key, s in kube.secrets.items()) == versions

        changed = dict(CONNECTIONS, pg_main="postgres://etl:other@db.example.com:5432/dwh")
        ch.write_inventory(tmp_path / "hosts.yml", {"k8s-prod": good_vars(
            tmp_path, "k8s-prod", airflow_credentials_target="kubernetes", airflow_credentials_kubernetes_namespace="af",
            airflow_credentials_kubernetes_kubeconfig=str(kubeconfig), airflow_credentials_connections=changed)})
        update = playbook(ch.playbook("site.yml"), inventory)
        assert update.rc == 0, update
        assert ch.facts(update, "k8s-prod")["changed"] == ["connections"]
        moved = [key for key, s in kube.secrets.items() if s["metadata"]["resourceVersion"] != versions[key]]
        assert moved == [("af", "failback-airflow-backend")]

    # The API is gone now: the read fails with a message, and nothing is rendered or applied.
    gone = playbook(ch.playbook("site.yml"), inventory)
    assert gone.rc != 0
    assert "Stop when the Secrets cannot be read: Cannot read the Secrets in namespace af" in ch.failures(gone)["k8s-prod"]

"""Rules of the credentials module_utils: validation, resolution of Airflow secrets, rendering, diffs."""

from __future__ import annotations

import base64
import configparser
import json
import os

import pytest
import yaml

from ansible_collections.failback.airflow.plugins.module_utils import credentials as cr
from ansible_collections.failback.airflow.plugins.module_utils.credentials import CredentialError

SECRET = "S3cr3t-Never-Shown"
FERNET_A = base64.urlsafe_b64encode(b"a" * 32).decode()
FERNET_B = base64.urlsafe_b64encode(b"b" * 32).decode()


def counter_generator():
    """Deterministic stand-in for generate_secret: name-1, name-2, ... (fernet keys stay valid)."""
    count = {"n": 0}

    def generate(name):
        count["n"] += 1
        if name == "fernet_key":
            return base64.urlsafe_b64encode(bytes([count["n"]]) * 32).decode()
        return "%s-%d" % (name, count["n"])

    return generate


# --------------------------------------------------------------------------- connections


def test_connections_uri_and_fields_render_for_the_local_filesystem_backend():
    conns = cr.normalize_connections({
        "warehouse": "postgres://etl:p%40ss@db.example.com:5432/dwh",
        "api": {"conn_type": "http", "host": "api.example.com", "password": SECRET, "port": "443",
                "extra": {"timeout": 3, "verify": True}},
    })
    assert list(conns) == ["api", "warehouse"]
    assert conns["api"]["port"] == 443
    text = cr.render_backend(conns)
    assert text.startswith(cr.HEADER)
    data = yaml.safe_load(text)
    assert data["warehouse"] == "postgres://etl:p%40ss@db.example.com:5432/dwh"
    assert data["api"] == {"conn_type": "http", "host": "api.example.com", "password": SECRET, "port": 443,
                           "extra": '{"timeout": 3, "verify": true}'}


def test_connection_list_form_with_uri_and_fields():
    conns = cr.normalize_connections([
        {"conn_id": "b", "uri": "http://h"},
        {"conn_id": "a", "conn_type": "ssh", "host": "h", "login": "u"},
    ])
    assert conns == {"a": {"conn_type": "ssh", "host": "h", "login": "u"}, "b": "http://h"}


def test_extra_given_as_json_string_is_normalised():
    conns = cr.normalize_connections({"x": {"conn_type": "http", "extra": '{"b": 1, "a": 2}'}})
    assert conns["x"]["extra"] == '{"a": 2, "b": 1}'


def test_no_connections_is_an_empty_mapping_airflow_accepts():
    assert cr.render_backend({}) == cr.HEADER + "{}\n"
    assert yaml.safe_load(cr.render_backend({})) == {}


@pytest.mark.parametrize("value, message", [
    ({"pg": {"conn_type": "postgres", "hostname": "db"}}, "connection 'pg' has unknown field(s) hostname; allowed: conn_type"),
    ({"pg": {"conn_type": "postgres", "port": 70000}}, "port must be a port number 1-65535, got 70000"),
    ({"pg": {"conn_type": "postgres", "port": 0}}, "got 0"),
    ({"pg": {"conn_type": "postgres", "port": "http"}}, "got 'http'"),
    ({"pg": {"conn_type": "postgres", "port": True}}, "got True"),
    ({"pg": "postgres://u:%s@db:99999/x" % SECRET}, "connection 'pg': the URI's port is not a number 1-65535"),
    ({"pg": "postgres://u:%s@db:abc/x" % SECRET}, "the URI's port is not a number"),
    ({"pg": "no scheme %s" % SECRET}, "contains spaces"),
    ({"pg": "db.example.com/%s" % SECRET}, "the URI must look like TYPE://"),
    ({"pg": "google_cloud://%s@x" % SECRET}, "write '-' for '_'"),
    ({"pg": {"host": "db"}}, "connection 'pg' has no conn_type"),
    ({"pg": {"conn_type": "postgres", "password": 12345}}, "password must be a string, got int"),
    ({"pg": {"conn_type": "postgres", "extra": "not json %s" % SECRET}}, "extra is a string but not JSON"),
    ({"pg": {"conn_type": "postgres", "extra": [SECRET]}}, "extra must be a mapping"),
    ({"pg": {"conn_type": "postgres", "conn_id": "other"}}, "has conn_id 'other' inside"),
    ({"bad id": "http://x"}, "'bad id' is not a valid Airflow connection id"),
    ({"x" * 251: "http://x"}, "longer than 250 characters"),
    ({7: "http://x"}, "is of type int"),
    ({"pg": 5}, "must be a URI string or a mapping of fields, got int"),
    ([{"conn_id": "a", "uri": "http://x"}, {"conn_id": "a", "uri": "http://y"}],
     "connection id 'a' is given twice (airflow_credentials_connections item 1 and airflow_credentials_connections item 2)"),
    ([{"uri": "http://x"}], "item 1 has no conn_id"),
    ([{"conn_id": "a", "uri": "http://x", "host": "h"}], "mixes uri with other fields (host)"),
    (["http://x"], "item 1 must be a mapping"),
    ("http://x", "must be a mapping (conn_id: URI or fields) or a list, got str"),
])
def test_bad_connections_are_clear_errors_without_the_secret(value, message):
    with pytest.raises(CredentialError) as err:
        cr.normalize_connections(value)
    assert message in str(err.value)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("uri", [
    "postgres://user:pass@host:5432/db",
    "postgresql://host",
    "http://",
    "aws://?region_name=eu-west-1",
    "google-cloud-platform://?extra__key_path=%2Fkeys%2Fk.json",
    "http://https://example.com:443/path",  # host with protocol, as Airflow allows
    "mysql://u:p%20w@h/s?charset=utf8",
])
def test_airflow_uris_are_accepted(uri):
    assert cr.normalize_connections({"c": uri}) == {"c": uri}


# --------------------------------------------------------------------------- variables


def test_variables_render_strings_and_json():
    variables = cr.normalize_variables({"b": "text", "a": {"x": [1, 2]}, "n": 3, "f": 1.5})
    assert variables == {"a": '{"x": [1, 2]}', "b": "text", "f": "1.5", "n": "3"}
    assert yaml.safe_load(cr.render_backend(variables)) == variables


def test_variables_list_form():
    assert cr.normalize_variables([{"key": "k", "value": "v"}]) == {"k": "v"}


@pytest.mark.parametrize("value, message", [
    ({"flag": True}, "variable 'flag' is bool; give a string (quote true/false/null in YAML)"),
    ({"none": None}, "variable 'none' is null"),
    ({"has space": "x"}, "contains spaces"),
    ({"": "x"}, "must have 1 to 250 characters"),
    ([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}], "variable 'a' is given twice"),
    ([{"key": "a"}], "must be a mapping with exactly key and value"),
    (["a"], "must be a mapping with exactly key and value"),
    (5, "must be a mapping (key: value) or a list, got int"),
])
def test_bad_variables(value, message):
    with pytest.raises(CredentialError) as err:
        cr.normalize_variables(value)
    assert message in str(err.value)


# --------------------------------------------------------------------------- credential files


def test_env_file_is_shell_and_dotenv_compatible(tmp_path):
    files = cr.normalize_files({"app.env": {"data": {"DB_PASSWORD": "p@ss w$rd`x\"", "PORT": 5432}}})
    text = files["app.env"]
    assert text == cr.HEADER + "DB_PASSWORD='p@ss w$rd`x\"'\nPORT='5432'\n"
    path = tmp_path / "app.env"
    path.write_text(text)
    out = os.popen("set -a; . '%s'; printf '%%s|%%s' \"$DB_PASSWORD\" \"$PORT\"" % path).read()
    assert out == "p@ss w$rd`x\"|5432"


def test_json_yaml_and_ini_files_round_trip():
    data = {"user": "u", "password": SECRET, "nested": {"list": [1, "two"]}}
    files = cr.normalize_files({
        "a.json": {"data": data},
        "b.yml": {"data": data},
        "c.ini": {"data": {"db": {"user": "u", "password": SECRET, "port": 5432, "ssl": True}}},
        "d": {"format": "yaml", "data": ["x"]},
    })
    assert json.loads(files["a.json"]) == data
    assert yaml.safe_load(files["b.yml"]) == data
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(files["c.ini"])
    assert dict(parser["db"]) == {"user": "u", "password": SECRET, "port": "5432", "ssl": "true"}
    assert yaml.safe_load(files["d"]) == ["x"]


@pytest.mark.parametrize("value, message", [
    ({"../etc/passwd": {"format": "env", "data": {}}}, "name '../etc/passwd' is not allowed"),
    ({".hidden.env": {"data": {}}}, "name '.hidden.env' is not allowed"),
    ({"noext": {"data": {"a": 1}}}, "needs a format (env, json, yaml, ini)"),
    ({"a.toml": {"format": "toml", "data": {}}}, "format 'toml' is not supported; allowed: env, json, yaml, ini"),
    ({"a.env": {"data": {"1BAD": "x"}}}, "'1BAD' is not a valid environment variable name"),
    ({"a.env": {"data": {"K": "it's %s" % SECRET}}}, "the value of K contains a single quote"),
    ({"a.env": {"data": {"K": "two\nlines"}}}, "a line break"),
    ({"a.env": {"data": {"K": False}}}, "K must be a string or a number, got bool"),
    ({"a.env": {"data": ["K=v"]}}, "data must be a mapping of variable names"),
    ({"a.ini": {"data": {"s": "not a mapping"}}}, "section 's' must be a mapping"),
    ({"a.ini": {"data": {"s": {"k=v": "x"}}}}, "key 'k=v' must not contain '='"),
    ({"a.ini": {"data": {"s": {"k": " padded"}}}}, "surrounding spaces"),
    ({"a.ini": {"data": {"s]": {"k": "v"}}}}, "must not contain '[' or ']'"),
    ({"a.json": {"format": "json"}}, "credential file 'a.json' has no data"),
    ({"a.json": {"data": {}, "mode": "0644"}}, "unknown field(s) mode; allowed: format, data"),
    ([{"name": "a.env", "data": {}}, {"name": "a.env", "data": {}}], "credential file 'a.env' is given twice"),
    ("a.env", "must be a mapping (name: {format, data}) or a list"),
])
def test_bad_credential_files(value, message):
    with pytest.raises(CredentialError) as err:
        cr.normalize_files(value)
    assert message in str(err.value)
    assert SECRET not in str(err.value)


# --------------------------------------------------------------------------- Airflow's own secrets


def test_generated_secrets_have_the_right_shape():
    key = cr.generate_secret("fernet_key")
    assert cr.check_fernet_key(key) == key
    assert len(cr.generate_secret("jwt_secret")) >= 64
    assert cr.generate_secret("db_password") != cr.generate_secret("db_password")
    assert cr.generate_secret("db_password").replace("-", "").replace("_", "").isalnum()


@pytest.mark.parametrize("value", ["", "short", FERNET_A[:-2], FERNET_A + "," + SECRET, "%s,%s" % (FERNET_A, FERNET_A[1:])])
def test_bad_fernet_keys_never_echo_the_value(value):
    with pytest.raises(CredentialError) as err:
        cr.check_fernet_key(value)
    assert "airflow_credentials_fernet_key" in str(err.value)
    if value:
        assert value not in str(err.value) and SECRET not in str(err.value)


def test_generated_once_then_kept_from_the_installation():
    generate = counter_generator()
    first, sources = cr.resolve_secrets({}, {}, {}, generate=generate)
    assert set(first) == set(cr.AIRFLOW_SECRETS)
    assert set(sources.values()) == {"generated"}
    again, sources = cr.resolve_secrets({}, first, {}, generate=generate)
    assert again == first and set(sources.values()) == {"installation"}


def test_the_installation_wins_over_the_store_and_the_store_restores_a_rebuilt_installation():
    live = {"fernet_key": FERNET_A, "jwt_secret": "live-jwt"}
    stored = {"fernet_key": FERNET_B, "jwt_secret": "stored-jwt", "api_secret_key": "stored-api"}
    values, sources = cr.resolve_secrets({}, live, stored, generate=counter_generator())
    assert values["fernet_key"] == FERNET_A and sources["fernet_key"] == "installation"
    assert values["api_secret_key"] == "stored-api" and sources["api_secret_key"] == "store"
    assert sources["db_password"] == "generated"


def test_explicit_values_win_and_cannot_be_rotated_here():
    values, sources = cr.resolve_secrets({"jwt_secret": "given"}, {"jwt_secret": "live"}, {}, generate=counter_generator())
    assert values["jwt_secret"] == "given" and sources["jwt_secret"] == "explicit"
    with pytest.raises(CredentialError, match="airflow_credentials_jwt_secret is set in the inventory"):
        cr.check_rotate(["jwt_secret"], {"jwt_secret": "given"}, False)


def test_rotation_replaces_only_what_is_named_and_keeps_old_fernet_keys():
    live = {"fernet_key": FERNET_A, "api_secret_key": "api", "jwt_secret": "jwt", "db_password": "pw"}
    values, sources = cr.resolve_secrets({}, live, {}, rotate=["fernet_key", "jwt_secret"], generate=counter_generator())
    assert sources == {"fernet_key": "rotated", "jwt_secret": "rotated", "api_secret_key": "installation",
                       "db_password": "installation"}
    new, old = values["fernet_key"].split(",")
    assert old == FERNET_A and new != FERNET_A
    assert values["jwt_secret"] != "jwt" and values["api_secret_key"] == "api"
    again, _sources = cr.resolve_secrets({}, values, {}, rotate=["fernet_key"], generate=counter_generator())
    assert again["fernet_key"].split(",")[1:] == [new, FERNET_A]  # an un-retired old key is never dropped
    retired, sources = cr.resolve_secrets({}, values, {}, retire_fernet=True)
    assert retired["fernet_key"] == new and sources["fernet_key"] == "installation"


def test_retiring_and_rotating_together_is_refused():
    with pytest.raises(CredentialError, match="cannot be rotated and retired in the same run"):
        cr.resolve_secrets({}, {}, {}, rotate=["fernet_key"], retire_fernet=True)


@pytest.mark.parametrize("rotate, explicit, external, message", [
    (["fernet"], {}, False, "names 'fernet', which cannot be rotated; allowed: fernet_key, api_secret_key"),
    (["sql_alchemy_conn"], {}, False, "names 'sql_alchemy_conn', which cannot be rotated"),
    (["db_password"], {}, True, "the database is external"),
    ({"fernet_key": 1}, {}, False, "must be a list of names"),
])
def test_bad_rotation_requests(rotate, explicit, external, message):
    with pytest.raises(CredentialError) as err:
        cr.check_rotate(rotate, explicit, external)
    assert message in str(err.value)


def test_rotate_accepts_a_comma_separated_string():
    assert cr.check_rotate("jwt_secret, fernet_key,jwt_secret", {}, False) == ["jwt_secret", "fernet_key"]


def test_a_corrupt_fernet_key_on_the_installation_is_reported_not_used():
    with pytest.raises(CredentialError, match="the fernet_key held by the installation is not a valid Fernet key"):
        cr.resolve_secrets({}, {"fernet_key": "garbage"}, {})


def test_held_values_lose_stray_newlines():
    held = {"jwt_secret": "jwt\n", "fernet_key": FERNET_A + "\n"}
    values, _sources = cr.resolve_secrets({}, held, {}, generate=counter_generator())
    assert values["jwt_secret"] == "jwt" and values["fernet_key"] == FERNET_A


def test_external_database_needs_no_password():
    values, _sources = cr.resolve_secrets({}, {}, {}, external_db=True, generate=counter_generator())
    assert "db_password" not in values


# --------------------------------------------------------------------------- database URL


def test_database_url_escapes_the_password():
    url = cr.database_url(password="p@ss/w:rd%", host="db", port="5433", name="air flow", user="u@x")
    assert url == "postgresql+psycopg2://u%40x:p%40ss%2Fw%3Ard%25@db:5433/air%20flow"


def test_external_database_url_is_used_as_given():
    assert cr.database_url(url="sqlite:////tmp/airflow.db") == "sqlite:////tmp/airflow.db"


@pytest.mark.parametrize("kwargs, message", [
    ({"url": "postgres://u:%s@h/db with space" % SECRET}, "airflow_credentials_database_url is not a SQLAlchemy URL"),
    ({"url": "not a url %s" % SECRET}, "is not a SQLAlchemy URL"),
    ({"host": "db host"}, "airflow_credentials_database_host 'db host' is not a host name"),
    ({"port": 0}, "airflow_credentials_database_port must be a port number 1-65535, got 0"),
    ({"scheme": "Postgres Driver"}, "airflow_credentials_database_scheme"),
    ({"user": ""}, "airflow_credentials_database_user '' must be a non-empty string"),
])
def test_bad_database_settings(kwargs, message):
    with pytest.raises(CredentialError) as err:
        cr.database_url(password="pw", **kwargs)
    assert message in str(err.value)
    assert SECRET not in str(err.value)


# --------------------------------------------------------------------------- tree, changes and diffs


def _tree(**overrides):
    values = {"fernet_key": FERNET_A, "api_secret_key": "api", "jwt_secret": "jwt", "db_password": "pw"}
    values.update(overrides)
    return cr.build_tree(values, cr.database_url(password=values["db_password"]),
                         cr.normalize_connections({"a": "http://a", "b": {"conn_type": "http", "password": "pb"}}),
                         cr.normalize_variables({"v": "1"}),
                         cr.normalize_files({"app.env": {"data": {"K": "v"}}}))


def test_tree_layout_follows_the_contract():
    tree = _tree()
    assert sorted(tree) == ["airflow/api_secret_key", "airflow/db_password", "airflow/fernet_key", "airflow/jwt_secret",
                            "airflow/sql_alchemy_conn", "backend/connections.yaml", "backend/variables.yaml",
                            "files/app.env"]
    assert not any(tree[p].endswith("\n") for p in tree if p.startswith("airflow/"))  # _CMD output is not stripped
    assert cr.live_airflow_values(tree) == {"fernet_key": FERNET_A, "api_secret_key": "api", "jwt_secret": "jwt",
                                            "db_password": "pw"}


def test_key_changes_name_entries_and_never_values():
    before = _tree()
    after = dict(_tree(jwt_secret="jwt2"))
    after[cr.CONNECTIONS_FILE] = cr.render_backend(cr.normalize_connections(
        {"a": "http://a", "b": {"conn_type": "http", "password": "pb2"}, "c": "http://c"}))
    del after["files/app.env"]
    states = dict(cr.key_changes(before, after))
    assert states["jwt_secret"] == "changed"
    assert states["connections/b"] == "changed" and states["connections/c"] == "added"
    assert states["connections/a"] == "unchanged" and states["fernet_key"] == "unchanged"
    assert states["files/app.env"] == "removed"
    assert cr.changed_names(before, after) == ["connections", "files/app.env", "jwt_secret"]
    diff = cr.key_diff(cr.key_changes(before, after), "server-1:/x")
    text = diff["before"] + diff["after"]
    assert "connections/b: (hidden, changed)" in diff["after"] and "files/app.env: (hidden)" in diff["before"]
    for secret in ("pb", "pb2", "jwt2", FERNET_A):
        assert secret not in text


def test_everything_is_added_on_an_empty_installation():
    states = cr.key_changes({}, _tree())
    assert {state for _key, state in states} == {"added"}
    assert cr.changed_names(None, _tree())[0] == "api_secret_key"


def test_an_unreadable_backend_file_counts_as_changed():
    before = dict(_tree())
    before[cr.VARIABLES_FILE] = "{not: yaml: at all"
    states = dict(cr.key_changes(before, _tree()))
    assert states["variables (unreadable before)"] == "changed"


# --------------------------------------------------------------------------- Kubernetes


def test_secrets_hold_the_same_content_and_read_back():
    tree = _tree()
    definitions = cr.tree_to_secrets(tree, "airflow", {"team": "data"})
    assert [d["metadata"]["name"] for d in definitions] == [cr.SECRET_AIRFLOW, cr.SECRET_BACKEND, cr.SECRET_FILES]
    assert sorted(definitions[0]["data"]) == ["api-secret-key", "db-password", "fernet-key", "jwt-secret",
                                              "sql-alchemy-conn"]
    assert sorted(definitions[1]["data"]) == ["connections.yaml", "variables.yaml"]
    assert sorted(definitions[2]["data"]) == ["app.env"]
    assert definitions[0]["metadata"]["labels"]["team"] == "data"
    assert base64.b64decode(definitions[0]["data"]["fernet-key"]).decode() == FERNET_A
    assert cr.secrets_to_tree(definitions) == tree
    manifest = yaml.safe_load(cr.manifest_text(definitions[1]))
    assert manifest == definitions[1]
    for definition in definitions:
        assert "stringData" not in definition and "annotations" not in definition["metadata"]


def test_secrets_read_back_ignores_foreign_keys_and_undecodable_data():
    resources = [{"metadata": {"name": cr.SECRET_AIRFLOW},
                  "data": {"fernet-key": base64.b64encode(FERNET_A.encode()).decode(), "other": "eA==",
                           "jwt-secret": "!!!"}},
                 {"metadata": {"name": "unrelated"}, "data": {"x": "eA=="}}]
    assert cr.secrets_to_tree(resources) == {"airflow/fernet_key": FERNET_A}


# --------------------------------------------------------------------------- the store


def test_store_text_round_trips_and_rejects_garbage():
    text = cr.store_text({"fernet_key": FERNET_A, "jwt_secret": "j"}, "server-1")
    assert cr.parse_store(text, "/s") == {"fernet_key": FERNET_A, "jwt_secret": "j"}
    assert cr.parse_store(None, "/s") == {}
    with pytest.raises(CredentialError, match="the credential store /s is not valid JSON"):
        cr.parse_store("{", "/s")
    with pytest.raises(CredentialError, match="has no 'secrets' mapping"):
        cr.parse_store("[]", "/s")


# --------------------------------------------------------------------------- AWS secrets backend keys


def test_aws_keys_become_a_shared_credentials_file_and_a_backend_secret_key():
    text = cr.render_aws_credentials(
        {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cr=t/key", "aws_session_token": ""})
    assert text.endswith("[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr=t/key\n")
    tree = cr.build_tree({}, "sqlite://", {}, {}, {}, aws_credentials=text)
    backend = [d for d in cr.tree_to_secrets(tree, "ns") if d["metadata"]["name"] == "failback-airflow-backend"][0]
    assert sorted(backend["data"]) == ["aws_credentials", "connections.yaml", "variables.yaml"]
    assert cr.render_aws_credentials({}) == "" and "backend/aws_credentials" not in cr.build_tree(
        {}, "sqlite://", {}, {}, {})


@pytest.mark.parametrize("value, message", [
    ({"aws_access_key_id": "AKIA"}, "needs both aws_access_key_id and aws_secret_access_key"),
    ({"aws_session_token": "tok"}, "aws_session_token of the secrets backend needs"),
    ({"aws_access_key_id": "AKIA", "aws_secret_access_key": "bad\nvalue"}, "aws_secret_access_key of the secrets backend holds a control"),
    ({"aws_access_key_id": "AKIA", "aws_secret_access_key": 7}, "must be a string, not int"),
    ({"region": "eu-west-1"}, "unknown AWS key field(s) region"),
    ("AKIA:secret", "must be a mapping"),
])
def test_bad_aws_keys_are_named_without_their_value(value, message):
    with pytest.raises(CredentialError) as raised:
        cr.render_aws_credentials(value)
    assert message in str(raised.value) and "bad\nvalue" not in str(raised.value)

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential rules of failback.airflow: validate, resolve and render an installation's credentials.

Pure Python, no Ansible import, so every rule is unit-tested directly.  Used by the
``credential_bundle`` module (on the controller) and the ``credential_report`` module.

What an installation gets (the *tree*, relative paths under the credentials directory; on
Kubernetes the same contents as Secrets, see ``KUBERNETES_SECRETS``)::

    airflow/fernet_key  airflow/api_secret_key  airflow/jwt_secret
    airflow/db_password (not with an external database URL)  airflow/sql_alchemy_conn
    backend/connections.yaml  backend/variables.yaml   (Airflow's LocalFilesystemBackend)
    files/<name>                                        (credential files for DAG tasks)

Airflow's own secrets are resolved in this order: the value given in the inventory, the value
the installation already holds, the value in the controller-side store, a new random value.
Only ``rotate`` replaces a held value on purpose.

The error messages name the bad entry and what is allowed, and never contain a secret value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets as _random

from urllib.parse import quote, urlsplit

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - exercised only where PyYAML is missing
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = _exc


class CredentialError(ValueError):
    """Invalid credential input.  The message names the bad entry and never holds a secret value."""


# --------------------------------------------------------------------------- layout (the contract)

#: Airflow's own secrets, the only ones that are generated and can be rotated.
AIRFLOW_SECRETS = ("fernet_key", "api_secret_key", "jwt_secret", "db_password")
#: Derived from the database settings and db_password (or given as a whole URL).
SQL_ALCHEMY_CONN = "sql_alchemy_conn"
AIRFLOW_KEYS = AIRFLOW_SECRETS + (SQL_ALCHEMY_CONN,)

AIRFLOW_DIR = "airflow"
BACKEND_DIR = "backend"
FILES_DIR = "files"
TREE_DIRS = (AIRFLOW_DIR, BACKEND_DIR, FILES_DIR)
CONNECTIONS_FILE = BACKEND_DIR + "/connections.yaml"
VARIABLES_FILE = BACKEND_DIR + "/variables.yaml"
# The AWS shared credentials file of an AWS secrets backend (AWS_SHARED_CREDENTIALS_FILE).
AWS_CREDENTIALS_FILE = BACKEND_DIR + "/aws_credentials"
AWS_CREDENTIAL_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

#: Where containers and pods see the tree (constants every role uses).
CONTAINER_SECRETS_DIR = "/opt/airflow/secrets"
CONTAINER_CREDENTIALS_DIR = "/opt/airflow/credentials"

SECRET_AIRFLOW = "failback-airflow-secrets"
SECRET_BACKEND = "failback-airflow-backend"
SECRET_FILES = "failback-credentials"
#: Kubernetes Secret name -> (tree directory, {tree file name: Secret key}); None maps names 1:1.
KUBERNETES_SECRETS = (
    (SECRET_AIRFLOW, AIRFLOW_DIR, dict((name, name.replace("_", "-")) for name in AIRFLOW_KEYS)),
    (SECRET_BACKEND, BACKEND_DIR, {"connections.yaml": "connections.yaml", "variables.yaml": "variables.yaml",
                                   "aws_credentials": "aws_credentials"}),
    (SECRET_FILES, FILES_DIR, None),
)

HEADER = "# Managed by failback.airflow (airflow_credentials role). Changes here are overwritten.\n"

# Airflow: airflow.models.connection.RE_SANITIZE_CONN_ID and CONN_ID_MAX_LEN.
CONN_ID_MAX_LEN = 250
_CONN_ID_RE = re.compile(r"^[\w#!()\-.:/\\]+$")
_CONN_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_URI_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
#: Fields of a connection given as a mapping (airflow.models.connection.Connection arguments).
CONNECTION_FIELDS = ("conn_type", "description", "host", "login", "password", "schema", "port", "extra")
_CONNECTION_STRING_FIELDS = ("conn_type", "description", "host", "login", "password", "schema")

VARIABLE_KEY_MAX_LEN = 250
FILE_FORMATS = ("env", "json", "yaml", "ini")
_FORMAT_BY_EXTENSION = {"env": "env", "json": "json", "yaml": "yaml", "yml": "yaml", "ini": "ini", "cfg": "ini",
                        "conf": "ini"}
FILE_NAME_MAX_LEN = 253
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")
_DB_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*$")
_DB_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S*$")

FERNET_KEY_BYTES = 32


def _type_name(value):
    return "null" if value is None else type(value).__name__


def _is_text(value):
    return isinstance(value, str)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- Airflow's own secrets


def check_fernet_key(value, where="airflow_credentials_fernet_key"):
    """Check a Fernet key value (one key or ``new,old,...``); return it.  Never echoes the value."""
    if not _is_text(value) or not value.strip():
        raise CredentialError("%s is empty or not a string" % where)
    keys = value.split(",")
    for index, key in enumerate(keys, 1):
        position = " (key %d of %d)" % (index, len(keys)) if len(keys) > 1 else ""
        try:
            raw = base64.urlsafe_b64decode(key.strip().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != FERNET_KEY_BYTES or not re.match(r"^[A-Za-z0-9_-]+=*$", key.strip()):
            raise CredentialError(
                "%s is not a valid Fernet key%s: it must be 32 url-safe base64-encoded bytes (44 characters), "
                "several separated by commas with the newest first; generate one with "
                "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
                % (where, position)
            )
    return value


def fernet_keys(value):
    """The keys of a Fernet key value, newest first."""
    return [key.strip() for key in value.split(",") if key.strip()]


def generate_secret(name):
    """A new random value for one of AIRFLOW_SECRETS."""
    if name == "fernet_key":
        return base64.urlsafe_b64encode(os.urandom(FERNET_KEY_BYTES)).decode("ascii")
    if name == "jwt_secret":
        return _random.token_urlsafe(64)  # 512 bits: the HS512 signing key Airflow uses by default
    if name == "db_password":
        return _random.token_urlsafe(24)  # URL-safe, so the connection URL needs no escaping
    if name == "api_secret_key":
        return _random.token_urlsafe(32)
    raise CredentialError("%r is not a generated secret; allowed: %s" % (name, ", ".join(AIRFLOW_SECRETS)))


def check_rotate(rotate, explicit, external_db):
    """Validate the list of secrets to rotate; return it as a list."""
    if rotate is None:
        return []
    if _is_text(rotate):
        rotate = [item.strip() for item in rotate.split(",") if item.strip()]
    if not isinstance(rotate, (list, tuple)):
        raise CredentialError("airflow_credentials_rotate must be a list of names; allowed: %s"
                              % ", ".join(AIRFLOW_SECRETS))
    names = []
    for name in rotate:
        if name not in AIRFLOW_SECRETS:
            raise CredentialError("airflow_credentials_rotate names %r, which cannot be rotated; allowed: %s"
                                  % (name, ", ".join(AIRFLOW_SECRETS)))
        if explicit.get(name):
            raise CredentialError(
                "airflow_credentials_rotate names %s, but airflow_credentials_%s is set in the inventory: "
                "rotate it by changing that value" % (name, name))
        if name == "db_password" and external_db:
            raise CredentialError("airflow_credentials_rotate names db_password, but the database is external "
                                  "(airflow_credentials_database_url): change the password there")
        if name not in names:
            names.append(name)
    return names


def _clean_held(name, value, where):
    """A value read from the installation or the store: stripped, and checked when it is a Fernet key."""
    if value is None:
        return ""
    if not _is_text(value):
        raise CredentialError("%s of %s is not text" % (name, where))
    value = value.strip()
    if value and name == "fernet_key":
        check_fernet_key(value, where="the fernet_key held by %s" % where)
    return value


def resolve_secrets(explicit, live, stored, rotate=(), retire_fernet=False, external_db=False,
                    generate=generate_secret):
    """Decide the value of every Airflow secret.

    *explicit*: values from the inventory ("" = not given); *live*: values the installation holds;
    *stored*: values from the controller-side store.  Returns ``(values, sources)`` where *sources*
    maps each name to one of ``explicit``, ``installation``, ``store``, ``generated``, ``rotated``.
    """
    if retire_fernet and "fernet_key" in rotate:
        raise CredentialError("fernet_key cannot be rotated and retired in the same run: rotate, run "
                              "'airflow rotate-fernet-key', then retire")
    values, sources = {}, {}
    for name in AIRFLOW_SECRETS:
        if name == "db_password" and external_db:
            continue
        given = explicit.get(name) or ""
        if not _is_text(given):
            raise CredentialError("airflow_credentials_%s must be a string, got %s" % (name, _type_name(given)))
        if given:
            if _CONTROL_RE.search(given):
                raise CredentialError("airflow_credentials_%s contains a line break or control character" % name)
            if name == "fernet_key":
                check_fernet_key(given)
            values[name], sources[name] = given, "explicit"
            continue
        held = _clean_held(name, live.get(name), "the installation")
        source = "installation"
        if not held:
            held, source = _clean_held(name, stored.get(name), "the controller-side store"), "store"
        if name in rotate:
            value = generate(name)
            if name == "fernet_key" and held:
                value = ",".join([value] + fernet_keys(held))  # old keys keep decrypting until re-keyed
            values[name], sources[name] = value, "rotated"
        elif held:
            if name == "fernet_key" and retire_fernet:
                held = fernet_keys(held)[0]
            values[name], sources[name] = held, source
        else:
            values[name], sources[name] = generate(name), "generated"
    return values, sources


# --------------------------------------------------------------------------- the metadata database


def database_url(url="", password="", host="postgres", port=5432, name="airflow", user="airflow",
                 scheme="postgresql+psycopg2"):
    """The SQLAlchemy URL Airflow uses: *url* when given, else built with the password escaped."""
    if url:
        if not _is_text(url) or not _DB_URL_RE.match(url) or _CONTROL_RE.search(url):
            raise CredentialError(
                "airflow_credentials_database_url is not a SQLAlchemy URL: it must look like "
                "DIALECT[+DRIVER]://USER:PASSWORD@HOST:PORT/DATABASE without spaces or line breaks "
                "(percent-encode special characters in the password)")
        return url
    if not _is_text(scheme) or not _DB_SCHEME_RE.match(scheme):
        raise CredentialError("airflow_credentials_database_scheme %r is not a SQLAlchemy dialect[+driver] such as "
                              "postgresql+psycopg2" % (scheme,))
    if not _is_text(host) or not _HOST_RE.match(host):
        raise CredentialError("airflow_credentials_database_host %r is not a host name or address" % (host,))
    port = check_port(port, "airflow_credentials_database_port")
    for label, value in (("name", name), ("user", user)):
        if not _is_text(value) or not value or _CONTROL_RE.search(value):
            raise CredentialError("airflow_credentials_database_%s %r must be a non-empty string" % (label, value))
    return "%s://%s:%s@%s:%d/%s" % (
        scheme, quote(user, safe=""), quote(password, safe=""), host, port, quote(name, safe=""))


def check_port(port, where):
    """Return *port* as an int in 1..65535 (digit strings are accepted), else raise."""
    if isinstance(port, bool):
        raise CredentialError("%s must be a port number 1-65535, got %r" % (where, port))
    if _is_text(port) and port.strip().isdigit():
        port = int(port.strip())
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise CredentialError("%s must be a port number 1-65535, got %r" % (where, port))
    return port


# --------------------------------------------------------------------------- connections


def check_conn_id(conn_id, where="connection id"):
    if not _is_text(conn_id):
        raise CredentialError("%s %r is of type %s, not a string: quote it in YAML"
                              % (where, conn_id, _type_name(conn_id)))
    if not conn_id:
        raise CredentialError("%s is empty" % where)
    if len(conn_id) > CONN_ID_MAX_LEN:
        raise CredentialError("%s %r is longer than %d characters" % (where, conn_id[:40] + "...", CONN_ID_MAX_LEN))
    if not _CONN_ID_RE.match(conn_id):
        raise CredentialError(
            "%s %r is not a valid Airflow connection id: allowed are letters, digits and _ # ! ( ) - . : / \\"
            % (where, conn_id))
    return conn_id


def _check_uri(conn_id, uri):
    """Check an Airflow connection URI without ever echoing it (it may hold a password)."""
    where = "connection %r" % conn_id
    if not _is_text(uri) or not uri:
        raise CredentialError("%s: the URI must be a non-empty string, got %s" % (where, _type_name(uri)))
    if re.search(r"\s", uri) or _CONTROL_RE.search(uri):
        raise CredentialError("%s: the URI contains spaces or line breaks; percent-encode them" % where)
    count = uri.count("://")
    if count not in (1, 2):
        raise CredentialError(
            "%s: the URI must look like TYPE://[LOGIN[:PASSWORD]@]HOST[:PORT][/SCHEMA][?EXTRA]" % where)
    scheme, rest = uri.split("://", 1)
    if not _URI_SCHEME_RE.match(scheme):
        raise CredentialError(
            "%s: the URI scheme %r is not a connection type; use letters, digits, '+', '.' and '-' "
            "(write '-' for '_', e.g. google-cloud-platform://)" % (where, scheme))
    if count == 2:
        protocol = rest.split("://", 1)[0]
        if "@" in protocol or ":" in protocol:
            raise CredentialError("%s: the URI has a second '://' in a place Airflow cannot parse" % where)
        rest = rest.split("://", 1)[1]
    try:
        parts = urlsplit("//" + rest)
        port = parts.port
    except ValueError:
        raise CredentialError("%s: the URI's port is not a number 1-65535" % where)
    if port is not None and port == 0:
        raise CredentialError("%s: the URI's port is not a number 1-65535" % where)
    return uri


def _check_extra(conn_id, extra):
    where = "connection %r: extra" % conn_id
    if _is_text(extra):
        try:
            extra = json.loads(extra)
        except ValueError:
            raise CredentialError("%s is a string but not JSON; give a mapping or a JSON object" % where)
    if not isinstance(extra, dict):
        raise CredentialError("%s must be a mapping (or a JSON object string), got %s" % (where, _type_name(extra)))
    try:
        return json.dumps(extra, sort_keys=True)
    except (TypeError, ValueError):
        raise CredentialError("%s holds values that are not JSON data" % where)


def _check_connection_fields(conn_id, fields):
    where = "connection %r" % conn_id
    unknown = sorted(str(key) for key in fields if key not in CONNECTION_FIELDS)
    if unknown:
        raise CredentialError("%s has unknown field(s) %s; allowed: %s, or a URI string instead of the fields"
                              % (where, ", ".join(unknown), ", ".join(CONNECTION_FIELDS)))
    if not fields.get("conn_type"):
        raise CredentialError("%s has no conn_type (e.g. postgres, http, aws)" % where)
    result = {}
    for key in CONNECTION_FIELDS:
        if key not in fields or fields[key] is None:
            continue
        value = fields[key]
        if key == "port":
            result[key] = check_port(value, "%s: port" % where)
        elif key == "extra":
            result[key] = _check_extra(conn_id, value)
        elif not _is_text(value):
            raise CredentialError("%s: %s must be a string, got %s (quote numbers and booleans in YAML)"
                                  % (where, key, _type_name(value)))
        else:
            result[key] = value
    if not _CONN_TYPE_RE.match(result["conn_type"]):
        raise CredentialError("%s: conn_type %r is not valid; use letters, digits, '_', '.', '+' and '-'"
                              % (where, result["conn_type"]))
    return result


def normalize_connections(value):
    """Validate connections; return ``{conn_id: uri_string | {field: value}}`` sorted by id.

    *value* is a mapping ``conn_id: URI-or-fields`` or a list of mappings with ``conn_id`` and either
    ``uri`` or the fields (the list form lets several sources be concatenated; a repeated id is an error).
    """
    if value is None or value == "":
        return {}
    items = []
    if isinstance(value, dict):
        for conn_id, spec in value.items():
            items.append((conn_id, spec, "airflow_credentials_connections[%r]" % (conn_id,)))
    elif isinstance(value, list):
        for index, entry in enumerate(value, 1):
            where = "airflow_credentials_connections item %d" % index
            if not isinstance(entry, dict):
                raise CredentialError("%s must be a mapping with conn_id, got %s" % (where, _type_name(entry)))
            if "conn_id" not in entry:
                raise CredentialError("%s has no conn_id" % where)
            spec = dict((k, v) for k, v in entry.items() if k != "conn_id")
            if set(spec) == {"uri"}:
                spec = spec["uri"]
            elif "uri" in spec:
                raise CredentialError("%s (%r) mixes uri with other fields (%s); give one or the other"
                                      % (where, entry["conn_id"], ", ".join(sorted(str(k) for k in spec if k != "uri"))))
            items.append((entry["conn_id"], spec, where))
    else:
        raise CredentialError("airflow_credentials_connections must be a mapping (conn_id: URI or fields) or a list, "
                              "got %s" % _type_name(value))
    result, first = {}, {}
    for conn_id, spec, where in items:
        check_conn_id(conn_id, where="connection id in %s" % where)
        if conn_id in first:
            raise CredentialError("connection id %r is given twice (%s and %s); each id must be unique"
                                  % (conn_id, first[conn_id], where))
        first[conn_id] = where
        if _is_text(spec):
            result[conn_id] = _check_uri(conn_id, spec)
        elif isinstance(spec, dict):
            if "conn_id" in spec and spec["conn_id"] != conn_id:
                raise CredentialError("connection %r has conn_id %r inside; remove it or make them equal"
                                      % (conn_id, spec["conn_id"]))
            result[conn_id] = _check_connection_fields(conn_id, dict((k, v) for k, v in spec.items()
                                                                     if k != "conn_id"))
        else:
            raise CredentialError("connection %r must be a URI string or a mapping of fields, got %s"
                                  % (conn_id, _type_name(spec)))
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------- variables


def check_variable_key(key, where="variable"):
    if not _is_text(key):
        raise CredentialError("%s key %r is of type %s, not a string" % (where, key, _type_name(key)))
    if not key or len(key) > VARIABLE_KEY_MAX_LEN:
        raise CredentialError("%s key %r must have 1 to %d characters" % (where, key[:40], VARIABLE_KEY_MAX_LEN))
    if re.search(r"\s", key) or _CONTROL_RE.search(key):
        raise CredentialError("%s key %r contains spaces or control characters" % (where, key))
    return key


def _variable_value(key, value):
    if _is_text(value):
        return value
    if _is_number(value) or isinstance(value, (dict, list)):
        try:
            return json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):
            raise CredentialError("variable %r holds values that are not JSON data" % key)
    raise CredentialError("variable %r is %s; give a string (quote true/false/null in YAML), a number, "
                          "a mapping or a list" % (key, _type_name(value)))


def normalize_variables(value):
    """Validate variables; return ``{key: string}`` sorted by key (mappings and lists become JSON)."""
    if value is None or value == "":
        return {}
    items = []
    if isinstance(value, dict):
        items = [(key, item, "airflow_credentials_variables") for key, item in value.items()]
    elif isinstance(value, list):
        for index, entry in enumerate(value, 1):
            where = "airflow_credentials_variables item %d" % index
            if not isinstance(entry, dict) or set(entry) != {"key", "value"}:
                raise CredentialError("%s must be a mapping with exactly key and value" % where)
            items.append((entry["key"], entry["value"], where))
    else:
        raise CredentialError("airflow_credentials_variables must be a mapping (key: value) or a list, got %s"
                              % _type_name(value))
    result, first = {}, {}
    for key, item, where in items:
        check_variable_key(key, where="variable in %s:" % where)
        if key in first:
            raise CredentialError("variable %r is given twice (%s and %s)" % (key, first[key], where))
        first[key] = where
        result[key] = _variable_value(key, item)
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------- credential files


def check_file_name(name, where="credential file"):
    if not _is_text(name):
        raise CredentialError("%s name %r is of type %s, not a string" % (where, name, _type_name(name)))
    if len(name) > FILE_NAME_MAX_LEN or not _FILE_NAME_RE.match(name):
        raise CredentialError(
            "%s name %r is not allowed: use 1-%d letters, digits, '.', '_' or '-', not starting with '.' "
            "(it becomes a file name and a Kubernetes Secret key)" % (where, name, FILE_NAME_MAX_LEN))
    return name


def _check_env(name, data):
    where = "credential file %r (env)" % name
    if not isinstance(data, dict):
        raise CredentialError("%s: data must be a mapping of variable names to values, got %s"
                              % (where, _type_name(data)))
    lines = []
    for key, value in data.items():
        if not _is_text(key) or not _ENV_NAME_RE.match(key):
            raise CredentialError("%s: %r is not a valid environment variable name (letters, digits, '_', "
                                  "not starting with a digit)" % (where, key))
        if _is_number(value):
            value = json.dumps(value)
        if not _is_text(value):
            raise CredentialError("%s: %s must be a string or a number, got %s (quote booleans in YAML)"
                                  % (where, key, _type_name(value)))
        if "'" in value or _CONTROL_RE.search(value):
            raise CredentialError("%s: the value of %s contains a single quote, a line break or a control "
                                  "character, which env files cannot carry portably; use the json or yaml format"
                                  % (where, key))
        lines.append("%s='%s'\n" % (key, value))
    return HEADER + "".join(lines)


def _check_ini_part(kind, text, where):
    if not _is_text(text) or not text or text != text.strip() or _CONTROL_RE.search(text):
        raise CredentialError("%s: %s %r must be a non-empty string without surrounding spaces or line breaks"
                              % (where, kind, text))


def _check_ini(name, data):
    where = "credential file %r (ini)" % name
    if not isinstance(data, dict):
        raise CredentialError("%s: data must be a mapping of sections, got %s" % (where, _type_name(data)))
    blocks = []
    for section, options in data.items():
        _check_ini_part("section", section, where)
        if "[" in section or "]" in section:
            raise CredentialError("%s: section %r must not contain '[' or ']'" % (where, section))
        if not isinstance(options, dict):
            raise CredentialError("%s: section %r must be a mapping of keys to values, got %s"
                                  % (where, section, _type_name(options)))
        lines = ["[%s]\n" % section]
        for key, value in options.items():
            _check_ini_part("key", key, "%s [%s]" % (where, section))
            if "=" in key or ":" in key or key[0] in "#;[":
                raise CredentialError("%s [%s]: key %r must not contain '=' or ':' nor start with '#', ';' or '['"
                                      % (where, section, key))
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif _is_number(value):
                value = json.dumps(value)
            if not _is_text(value):
                raise CredentialError("%s [%s]: %s must be a string, number or boolean, got %s"
                                      % (where, section, key, _type_name(value)))
            if value != value.strip() or _CONTROL_RE.search(value):
                raise CredentialError("%s [%s]: the value of %s has surrounding spaces or a line break, which INI "
                                      "readers drop or split; use the json or yaml format" % (where, section, key))
            lines.append("%s = %s\n" % (key, value))
        blocks.append("".join(lines))
    return HEADER + "\n".join(blocks)


def _check_json_data(name, data, fmt):
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        raise CredentialError("credential file %r (%s): data holds values that are not JSON/YAML data" % (name, fmt))


def render_file(name, fmt, data):
    """Render one credential file; raise CredentialError on data its format cannot carry."""
    if fmt == "env":
        return _check_env(name, data)
    if fmt == "ini":
        return _check_ini(name, data)
    if fmt == "json":
        _check_json_data(name, data, fmt)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        _check_json_data(name, data, fmt)
        return HEADER + dump_yaml(data)
    raise CredentialError("credential file %r: format %r is not supported; allowed: %s"
                          % (name, fmt, ", ".join(FILE_FORMATS)))


def normalize_files(value):
    """Validate credential files; return ``{name: rendered text}`` sorted by name.

    *value* is a mapping ``name: {format, data}`` or a list of mappings with ``name``; ``format`` may be
    left out when the name ends in .env, .json, .yaml/.yml or .ini/.cfg/.conf.
    """
    if value is None or value == "":
        return {}
    items = []
    if isinstance(value, dict):
        items = [(name, spec, "airflow_credentials_files") for name, spec in value.items()]
    elif isinstance(value, list):
        for index, entry in enumerate(value, 1):
            where = "airflow_credentials_files item %d" % index
            if not isinstance(entry, dict) or "name" not in entry:
                raise CredentialError("%s must be a mapping with a name" % where)
            items.append((entry["name"], dict((k, v) for k, v in entry.items() if k != "name"), where))
    else:
        raise CredentialError("airflow_credentials_files must be a mapping (name: {format, data}) or a list, got %s"
                              % _type_name(value))
    result, first = {}, {}
    for name, spec, where in items:
        check_file_name(name, where="credential file in %s:" % where)
        if name in first:
            raise CredentialError("credential file %r is given twice (%s and %s)" % (name, first[name], where))
        first[name] = where
        if not isinstance(spec, dict):
            raise CredentialError("credential file %r must be a mapping with format and data, got %s"
                                  % (name, _type_name(spec)))
        unknown = sorted(str(key) for key in spec if key not in ("format", "data"))
        if unknown:
            raise CredentialError("credential file %r has unknown field(s) %s; allowed: format, data"
                                  % (name, ", ".join(unknown)))
        if "data" not in spec:
            raise CredentialError("credential file %r has no data" % name)
        fmt = spec.get("format") or _FORMAT_BY_EXTENSION.get(name.rsplit(".", 1)[-1].lower() if "." in name else "")
        if not fmt:
            raise CredentialError("credential file %r needs a format (%s): its name has no known extension"
                                  % (name, ", ".join(FILE_FORMATS)))
        if fmt not in FILE_FORMATS:
            raise CredentialError("credential file %r: format %r is not supported; allowed: %s"
                                  % (name, fmt, ", ".join(FILE_FORMATS)))
        result[name] = render_file(name, fmt, spec["data"])
    return dict(sorted(result.items()))


# --------------------------------------------------------------------------- rendering


def _require_yaml():
    if not HAS_YAML:
        raise CredentialError("PyYAML is required to render credentials: %s" % (YAML_IMPORT_ERROR,))


def dump_yaml(data):
    _require_yaml()
    return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True, sort_keys=False, width=1 << 16)


def render_backend(mapping):
    """A LocalFilesystemBackend YAML file.  Airflow rejects an empty file, so no entries is ``{}``."""
    return HEADER + (dump_yaml(mapping) if mapping else "{}\n")


def render_aws_credentials(value):
    """The AWS shared credentials file of a secrets backend ("" when no key is given).

    *value* maps aws_access_key_id, aws_secret_access_key and optionally aws_session_token to text;
    the key id and the secret come together or not at all.  Errors name the field, never a value.
    """
    value = value or {}
    if not isinstance(value, dict):
        raise CredentialError("the secrets backend's AWS keys must be a mapping of %s, not %s"
                              % (", ".join(AWS_CREDENTIAL_FIELDS), _type_name(value)))
    unknown = sorted(set(value) - set(AWS_CREDENTIAL_FIELDS))
    if unknown:
        raise CredentialError("unknown AWS key field(s) %s (allowed: %s)"
                              % (", ".join(map(str, unknown)), ", ".join(AWS_CREDENTIAL_FIELDS)))
    fields = dict((name, value.get(name) or "") for name in AWS_CREDENTIAL_FIELDS)
    for name, text in fields.items():
        if not _is_text(text):
            raise CredentialError("%s of the secrets backend must be a string, not %s" % (name, _type_name(text)))
        if _CONTROL_RE.search(text) or text != text.strip():
            raise CredentialError("%s of the secrets backend holds a control character or surrounding blanks"
                                  " (the value is not shown)" % name)
    if not fields["aws_access_key_id"] and not fields["aws_secret_access_key"]:
        if fields["aws_session_token"]:
            raise CredentialError("aws_session_token of the secrets backend needs aws_access_key_id and"
                                  " aws_secret_access_key")
        return ""
    if not fields["aws_access_key_id"] or not fields["aws_secret_access_key"]:
        raise CredentialError("the secrets backend needs both aws_access_key_id and aws_secret_access_key, or"
                              " neither (then the default AWS credential chain: instance profile, IRSA)")
    lines = ["[default]"] + ["%s = %s" % (name, fields[name]) for name in AWS_CREDENTIAL_FIELDS if fields[name]]
    return HEADER + "\n".join(lines) + "\n"


def build_tree(secret_values, sql_alchemy_conn, connections, variables, files, aws_credentials=""):
    """Every file of an installation: ``{relative path: text}``.  Airflow secrets carry no newline."""
    tree = {}
    for name in AIRFLOW_SECRETS:
        if name in secret_values:
            tree["%s/%s" % (AIRFLOW_DIR, name)] = secret_values[name]
    tree["%s/%s" % (AIRFLOW_DIR, SQL_ALCHEMY_CONN)] = sql_alchemy_conn
    tree[CONNECTIONS_FILE] = render_backend(connections)
    tree[VARIABLES_FILE] = render_backend(variables)
    if aws_credentials:
        tree[AWS_CREDENTIALS_FILE] = aws_credentials
    for name, text in files.items():
        tree["%s/%s" % (FILES_DIR, name)] = text
    return tree


def live_airflow_values(tree):
    """The Airflow secrets an installation holds, from its tree."""
    prefix = AIRFLOW_DIR + "/"
    return dict((path[len(prefix):], text) for path, text in (tree or {}).items()
                if path.startswith(prefix) and path[len(prefix):] in AIRFLOW_SECRETS)


# --------------------------------------------------------------------------- what changed


def _backend_entries(text):
    """Entries of a backend file (None when it cannot be read: then every entry counts as changed)."""
    if text is None:
        return {}
    _require_yaml()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if data is None:
        return {}
    return data if isinstance(data, dict) else None


def change_name(path):
    """The name a consumer sees in airflow_credentials_changed for a tree path."""
    if path.startswith(AIRFLOW_DIR + "/"):
        return path[len(AIRFLOW_DIR) + 1:]
    if path == CONNECTIONS_FILE:
        return "connections"
    if path == VARIABLES_FILE:
        return "variables"
    return path


def changed_names(before, after):
    """Names (see change_name) of every file whose content differs, is new or is gone, sorted."""
    before = before or {}
    paths = set(before) | set(after)
    return sorted(change_name(path) for path in paths if before.get(path) != after.get(path))


def key_changes(before, after):
    """Per-key states ``[(key, state)]`` between two trees; state is added/changed/removed/unchanged.

    Keys are secret names (fernet_key), ``connections/<id>``, ``variables/<key>`` and ``files/<name>``,
    so a diff can say what changed without a value.
    """
    before = before or {}
    states = {}
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if path in (CONNECTIONS_FILE, VARIABLES_FILE):
            label = change_name(path)
            old_entries, new_entries = _backend_entries(old), _backend_entries(new)
            if old_entries is None:
                states[label + " (unreadable before)"] = "changed"
                old_entries = {}
            for key in sorted(set(old_entries) | set(new_entries or {}), key=str):
                states["%s/%s" % (label, key)] = _state(old_entries.get(key), (new_entries or {}).get(key),
                                                        key in old_entries, key in (new_entries or {}))
            continue
        states[change_name(path)] = _state(old, new, path in before, path in after)
    return sorted(states.items())


def _state(old, new, had, has):
    if not had:
        return "added"
    if not has:
        return "removed"
    return "unchanged" if old == new else "changed"


def key_diff(changes, location):
    """A diff (before/after text) naming every key and marking the changed ones; no value appears."""
    before, after = [], []
    for key, state in changes:
        if state in ("unchanged", "changed", "removed"):
            before.append("%s: (hidden)\n" % key)
        if state == "unchanged":
            after.append("%s: (hidden)\n" % key)
        elif state in ("changed", "added"):
            after.append("%s: (hidden, %s)\n" % (key, state))
    return {
        "before": "".join(before),
        "after": "".join(after),
        "before_header": "%s (names only, values hidden)" % location,
        "after_header": "%s (names only, values hidden)" % location,
    }


# --------------------------------------------------------------------------- Kubernetes Secrets


def _secret_key(mapping, name):
    return name if mapping is None else mapping.get(name)


def tree_to_secrets(tree, namespace, labels=None):
    """The Kubernetes Secrets holding *tree*: a list of v1 Secret definitions (data base64-encoded)."""
    definitions = []
    for secret_name, directory, mapping in KUBERNETES_SECRETS:
        data = {}
        for path in sorted(tree):
            parent, _sep, name = path.partition("/")
            key = _secret_key(mapping, name) if parent == directory else None
            if key:
                data[key] = base64.b64encode(tree[path].encode("utf-8")).decode("ascii")
        all_labels = dict(labels or {})
        all_labels.update({"app.kubernetes.io/part-of": "failback-airflow", "app.kubernetes.io/component": secret_name})
        metadata = {"name": secret_name, "namespace": namespace, "labels": all_labels}
        definitions.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata,
                            "data": data})
    return definitions


def secrets_to_tree(resources):
    """The tree held by Kubernetes Secrets (as returned by k8s_info or read from manifests)."""
    tree = {}
    by_name = dict((_secret_meta(resource).get("name"), resource) for resource in resources or [] if resource)
    for secret_name, directory, mapping in KUBERNETES_SECRETS:
        resource = by_name.get(secret_name)
        if not resource:
            continue
        reverse = None if mapping is None else dict((key, name) for name, key in mapping.items())
        for key, encoded in sorted((resource.get("data") or {}).items()):
            name = key if reverse is None else reverse.get(key)
            if not name:
                continue
            try:
                text = base64.b64decode(encoded or "", validate=True).decode("utf-8")
            except (binascii.Error, ValueError, UnicodeDecodeError):
                text = None  # unreadable: it will be rewritten
            if text is not None:
                tree["%s/%s" % (directory, name)] = text
        for key, text in sorted((resource.get("stringData") or {}).items()):
            name = key if reverse is None else reverse.get(key)
            if name and _is_text(text):
                tree["%s/%s" % (directory, name)] = text
    return tree


def _secret_meta(resource):
    return resource.get("metadata") or {} if isinstance(resource, dict) else {}


def manifest_text(definition):
    """A Secret definition as a YAML manifest file."""
    return HEADER + dump_yaml(definition)


# --------------------------------------------------------------------------- the controller-side store

STORE_FORMAT = 1


def parse_store(text, path):
    """The secrets held by a store file's text ({} for a missing file)."""
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise CredentialError("the credential store %s is not valid JSON; restore it from a backup or move it away "
                              "(the installation's own values are used when it is missing)" % path)
    if not isinstance(data, dict) or not isinstance(data.get("secrets"), dict):
        raise CredentialError("the credential store %s has no 'secrets' mapping" % path)
    return dict((name, value) for name, value in data["secrets"].items() if name in AIRFLOW_SECRETS and _is_text(value))


def store_text(values, installation):
    """The text of a store file holding *values* (generated secrets only, never inventory values)."""
    return json.dumps({"format": STORE_FORMAT, "installation": installation,
                       "note": "Airflow secrets generated by failback.airflow for this installation. Keep it "
                               "private (mode 0600) and backed up; see docs/credentials.md.",
                       "secrets": dict(sorted(values.items()))}, indent=2, sort_keys=False) + "\n"

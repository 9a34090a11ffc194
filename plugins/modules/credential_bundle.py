#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credential_bundle
short_description: Validate and render the credentials of an Airflow installation
version_added: "0.1.0"
description:
  - Validates the credentials of an Airflow installation (connections, variables, credential files for DAG tasks)
    and decides Airflow's own secrets (Fernet key, API secret key, JWT secret, database password), then renders
    everything as file contents (RV(files)) and, with O(kubernetes_namespace), as Kubernetes Secret definitions
    (RV(kubernetes_secrets)).
  - It runs on the controller and writes nothing but the O(store) file; M(failback.airflow.credential_files) writes
    the rendered files on the installation.
  - The module returns secrets, so B(always) set C(no_log) on its task.
author:
  - Failback Airflow Maintainers (@failback)
requirements:
  - PyYAML on the host that runs the module (the controller).
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Computes everything, new secrets included, but does not write O(store). Secrets generated in check mode are
        not kept, so a later run generates other values.
  diff_mode:
    support: none
    details:
      - The content is secret. RV(changes) lists what changed by name; M(failback.airflow.credential_report) turns it
        into a diff that holds no value.
  idempotent:
    support: full
    details:
      - Held secrets are reused, so a second run renders the same content and leaves O(store) alone.
      - The module reports a change only when it writes O(store).
  platform:
    support: full
    platforms: posix
    details:
      - Runs on the controller (Python with PyYAML).
options:
  installation:
    description: Name of the installation, recorded in the store file.
    type: str
    default: ""
  store:
    description:
      - Controller-side file that keeps the generated (never the given) Airflow secrets of this installation, so that
        they survive an installation that lost its files. Empty disables it.
      - It is written with mode C(0600) (a missing directory is created with mode C(0700)) when its content or mode differs.
    type: path
    default: ""
  connections:
    description:
      - Airflow connections, as a mapping of connection id to a URI string or a mapping of fields
        (C(conn_type) required; C(description), C(host), C(login), C(password), C(schema), C(port),
        C(extra)), or as a list of mappings with C(conn_id) plus C(uri) or the fields.
      - They are rendered as C(backend/connections.yaml) for Airflow's C(LocalFilesystemBackend).
    type: raw
    default: {}
  variables:
    description:
      - Airflow variables as a mapping of key to value, or a list of mappings with C(key) and
        C(value). Mappings and lists are stored as JSON (read them with C(deserialize_json=True)).
      - They are rendered as C(backend/variables.yaml) for Airflow's C(LocalFilesystemBackend).
    type: raw
    default: {}
  files:
    description:
      - Credential files for DAG tasks, as a mapping of file name to C({format, data}) or a list of
        mappings with C(name). C(format) is V(env), V(json), V(yaml) or V(ini), inferred from the
        name's extension when left out.
      - They are rendered under C(files/).
    type: raw
    default: {}
  fernet_key:
    description:
      - The Fernet key (or C(new,old) keys, newest first).
      - When empty, the key the installation holds (O(current) or O(current_secrets)) is kept, else the one in O(store),
        else a new one is generated.
    type: str
    default: ""
  api_secret_key:
    description:
      - Airflow's C([api] secret_key).
      - When empty, kept from the installation or O(store), else generated, like O(fernet_key).
    type: str
    default: ""
  jwt_secret:
    description:
      - Airflow's C([api_auth] jwt_secret).
      - When empty, kept from the installation or O(store), else generated, like O(fernet_key).
    type: str
    default: ""
  db_password:
    description:
      - Password of the metadata database user.
      - When empty, kept from the installation or O(store), else generated, like O(fernet_key).
      - Not used with O(database_url).
    type: str
    default: ""
  database_url:
    description:
      - Complete SQLAlchemy URL of an external metadata database; replaces O(database_host), O(database_port),
        O(database_name), O(database_user), O(database_scheme) and O(db_password).
      - Without it, the URL is built from those options.
    type: str
    default: ""
  aws_credentials:
    description:
      - The AWS keys of an AWS secrets backend (Secrets Manager, SSM Parameter Store) - C(aws_access_key_id),
        C(aws_secret_access_key) and optionally C(aws_session_token). Rendered as C(backend/aws_credentials), an AWS
        shared credentials file (profile C(default)) that Airflow reads through C(AWS_SHARED_CREDENTIALS_FILE).
      - Empty - no file; the backend then uses the default AWS credential chain (instance profile, IRSA).
    type: dict
    default: {}
  database_host:
    description: Host of the metadata database.
    type: str
    default: postgres
  database_port:
    description: Port of the metadata database (a number or a string of digits, 1-65535).
    type: raw
    default: 5432
  database_name:
    description: Name of the metadata database.
    type: str
    default: airflow
  database_user:
    description: User of the metadata database.
    type: str
    default: airflow
  database_scheme:
    description: SQLAlchemy dialect and driver.
    type: str
    default: postgresql+psycopg2
  rotate:
    description:
      - Airflow secrets to replace with new random values in this run (V(fernet_key), V(api_secret_key),
        V(jwt_secret), V(db_password)). Without it, a held secret is never replaced.
      - A rotated Fernet key keeps the old keys after the new one (C(new,old)) until O(retire_fernet).
      - Secrets given in the options cannot be rotated here, nor V(db_password) with O(database_url).
    type: list
    elements: str
    default: []
  retire_fernet:
    description:
      - Keep only the newest key of a held C(new,old) Fernet key value. Use it after C(airflow rotate-fernet-key)
        re-encrypted the data with the new key.
      - Cannot be combined with V(fernet_key) in O(rotate).
    type: bool
    default: false
  current:
    description:
      - What the installation holds now, relative path to text (for example RV(failback.airflow.credential_files#module:contents)
        of M(failback.airflow.credential_files) with O(failback.airflow.credential_files#module:state=read)).
      - It is compared with the result (RV(changes)) and its Airflow secrets are kept.
      - Mutually exclusive with O(current_secrets).
    type: dict
  current_secrets:
    description:
      - What a Kubernetes installation holds now, as Secret objects (from C(kubernetes.core.k8s_info)
        or parsed manifests). Used like O(current).
      - Mutually exclusive with O(current).
    type: list
    elements: dict
  kubernetes_namespace:
    description: When set, also return the content as Secret definitions in this namespace.
    type: str
    default: ""
  kubernetes_labels:
    description: Extra labels of the Secrets.
    type: dict
    default: {}
notes:
  - Everything is validated before anything is written. The error message names the bad entry and what is allowed and
    never contains a secret value; it is also returned as RV(error) for tasks that use C(no_log).
  - Ansible's masking of option values is not used for this module's options, because it would corrupt the returned content.
  - The Kubernetes Secrets are C(failback-airflow-secrets) (keys C(fernet-key), C(api-secret-key),
    C(jwt-secret), C(db-password), C(sql-alchemy-conn)), C(failback-airflow-backend)
    (C(connections.yaml), C(variables.yaml)) and C(failback-credentials) (one key per file).
seealso:
  - module: failback.airflow.credential_files
  - module: failback.airflow.credential_report
  - name: Airflow's local filesystem secrets backend
    description: The file format of connections and variables.
    link: https://airflow.apache.org/docs/apache-airflow/stable/security/secrets/secrets-backend/local-filesystem-secrets-backend.html
"""

EXAMPLES = r"""
- name: Read what the installation holds
  failback.airflow.credential_files:
    path: /opt/failback-airflow/secrets
    state: read
  register: current
  no_log: true

- name: Validate and render the credentials on the controller
  failback.airflow.credential_bundle:
    installation: "{{ inventory_hostname }}"
    store: "~/.local/share/failback-airflow/credentials/{{ inventory_hostname }}.json"
    connections:
      warehouse: "postgres://etl:{{ vault_warehouse_password | urlencode }}@db.example.com:5432/dwh"
      api_partner:
        conn_type: http
        host: partner.example.com
        password: "{{ vault_partner_token }}"
        extra: {timeout: 30}
    variables:
      report_recipients: ops@example.com
    files:
      warehouse.env:
        data: {WAREHOUSE_PASSWORD: "{{ vault_warehouse_password }}"}
    current: "{{ current.contents }}"
  delegate_to: localhost
  register: bundle
  no_log: true

- name: Write them
  failback.airflow.credential_files:
    path: /opt/failback-airflow/secrets
    files: "{{ bundle.files }}"
    owner: "50000"
    group: "0"
  no_log: true

- name: Rotate the JWT secret on purpose
  failback.airflow.credential_bundle:
    store: "~/.local/share/failback-airflow/credentials/{{ inventory_hostname }}.json"
    rotate: [jwt_secret]
    current: "{{ current.contents }}"
  delegate_to: localhost
  register: bundle
  no_log: true
"""

RETURN = r"""
valid:
  description: V(true) when the input was valid (V(false) with RV(error) otherwise).
  returned: always
  type: bool
  sample: true
files:
  description:
    - Every file of the installation, relative path to content. Secret.
    - C(airflow/fernet_key), C(airflow/api_secret_key), C(airflow/jwt_secret), C(airflow/db_password) (not with
      O(database_url)) and C(airflow/sql_alchemy_conn) hold Airflow's own secrets, one value each without a newline;
      C(backend/connections.yaml) and C(backend/variables.yaml) the connections and variables; C(files/NAME) the
      credential files of O(files).
  returned: success
  type: dict
  sample: {"airflow/fernet_key": "...", "backend/connections.yaml": "...", "files/warehouse.env": "..."}
kubernetes_secrets:
  description: The same content as three v1 Secret definitions (data base64-encoded). Secret.
  returned: success, when O(kubernetes_namespace) is set
  type: list
  elements: dict
  sample: [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "failback-airflow-secrets"}, "data": {}}]
kubernetes_manifests:
  description: The Secret definitions as YAML manifest texts, by file name. Secret.
  returned: success, when O(kubernetes_namespace) is set
  type: dict
  sample: {"failback-airflow-secrets.yaml": "..."}
changes:
  description: Every credential name with its state (V(added), V(changed), V(removed), V(unchanged)) compared with O(current) or O(current_secrets).
  returned: success
  type: list
  elements: dict
  sample: [{"key": "connections/warehouse", "state": "changed"}, {"key": "fernet_key", "state": "unchanged"}]
changed_names:
  description:
    - What changed compared with O(current) or O(current_secrets), as the names consumers restart on - V(fernet_key),
      V(api_secret_key), V(jwt_secret), V(db_password), V(sql_alchemy_conn), V(connections),
      V(variables), C(files/NAME).
  returned: success
  type: list
  elements: str
  sample: [fernet_key, connections]
sources:
  description: Where each Airflow secret came from (V(explicit), V(installation), V(store), V(generated), V(rotated)).
  returned: success
  type: dict
  sample: {"fernet_key": "installation", "jwt_secret": "rotated"}
fernet_rekey:
  description:
    - V(true) when the Fernet key value holds more than one key, so data encrypted with an older key
      must be re-encrypted (C(airflow rotate-fernet-key)) before the old key is retired (O(retire_fernet)).
  returned: success
  type: bool
  sample: false
store_changed:
  description: Whether the O(store) file was (or in check mode would be) written.
  returned: success
  type: bool
  sample: false
error:
  description: Why the input is invalid; names the bad entry, never a secret value.
  returned: failure
  type: str
  sample: "connection 'warehouse': port must be a port number 1-65535, got 70000"
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.failback.airflow.plugins.module_utils import credential_fs, credentials

_SECRET_OPTIONS = ("fernet_key", "api_secret_key", "jwt_secret", "db_password")


def _read_store(path):
    if not path:
        return None, {}
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except IOError as exc:
        if not os.path.exists(path):
            return None, {}
        raise credentials.CredentialError("cannot read the credential store %s: %s" % (path, exc.strerror))
    return os.stat(path), credentials.parse_store(text, path)


def _write_store(path, text):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    credential_fs.atomic_write(path, text, mode=0o600)


def compute(params):
    """Everything but the store write; raises CredentialError on invalid input."""
    if params["current"] is not None and params["current_secrets"] is not None:
        raise credentials.CredentialError("give current or current_secrets, not both")
    external_db = bool(params["database_url"])
    explicit = dict((name, params[name]) for name in _SECRET_OPTIONS)
    rotate = credentials.check_rotate(params["rotate"], explicit, external_db)
    connections = credentials.normalize_connections(params["connections"])
    variables = credentials.normalize_variables(params["variables"])
    files = credentials.normalize_files(params["files"])
    if params["current_secrets"] is not None:
        current = credentials.secrets_to_tree(params["current_secrets"])
    else:
        current = dict(params["current"] or {})
    store_stat, stored = _read_store(params["store"])
    values, sources = credentials.resolve_secrets(
        explicit, credentials.live_airflow_values(current), stored, rotate=rotate,
        retire_fernet=params["retire_fernet"], external_db=external_db)
    url = credentials.database_url(
        url=params["database_url"], password=values.get("db_password", ""), host=params["database_host"],
        port=params["database_port"], name=params["database_name"], user=params["database_user"],
        scheme=params["database_scheme"])
    aws = credentials.render_aws_credentials(params["aws_credentials"])
    tree = credentials.build_tree(values, url, connections, variables, files, aws_credentials=aws)
    to_store = dict((name, value) for name, value in values.items() if sources[name] != "explicit")
    store_text = None
    if params["store"]:
        wide = store_stat is not None and stat.S_IMODE(store_stat.st_mode) != 0o600
        if store_stat is None or stored != to_store or wide:
            store_text = credentials.store_text(to_store, params["installation"])
    result = dict(
        valid=True,
        files=tree,
        changes=[dict(key=key, state=state) for key, state in credentials.key_changes(current, tree)],
        changed_names=credentials.changed_names(current, tree),
        sources=sources,
        fernet_rekey=len(credentials.fernet_keys(values["fernet_key"])) > 1,
        store_changed=store_text is not None,
    )
    if params["kubernetes_namespace"]:
        definitions = credentials.tree_to_secrets(tree, params["kubernetes_namespace"], params["kubernetes_labels"])
        result["kubernetes_secrets"] = definitions
        result["kubernetes_manifests"] = dict(
            ("%s.yaml" % d["metadata"]["name"], credentials.manifest_text(d)) for d in definitions)
    return result, store_text


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            installation=dict(type="str", default=""),
            store=dict(type="path", default=""),
            connections=dict(type="raw", default={}),
            variables=dict(type="raw", default={}),
            files=dict(type="raw", default={}),
            # Not masked by the module: it returns these values (masking would corrupt the result);
            # every task that calls it sets no_log.
            fernet_key=dict(type="str", default="", no_log=False),
            api_secret_key=dict(type="str", default="", no_log=False),
            jwt_secret=dict(type="str", default="", no_log=False),
            db_password=dict(type="str", default="", no_log=False),
            database_url=dict(type="str", default="", no_log=False),
            database_host=dict(type="str", default="postgres"),
            database_port=dict(type="raw", default=5432),
            database_name=dict(type="str", default="airflow"),
            database_user=dict(type="str", default="airflow"),
            database_scheme=dict(type="str", default="postgresql+psycopg2"),
            rotate=dict(type="list", elements="str", default=[]),
            retire_fernet=dict(type="bool", default=False),
            current=dict(type="dict"),
            current_secrets=dict(type="list", elements="dict", no_log=False),
            aws_credentials=dict(type="dict", default={}, no_log=False),
            kubernetes_namespace=dict(type="str", default=""),
            kubernetes_labels=dict(type="dict", default={}),
        ),
        mutually_exclusive=[("current", "current_secrets")],
        supports_check_mode=True,
    )
    if not credentials.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), valid=False, error=missing_required_lib("PyYAML"))
    try:
        result, store_text = compute(module.params)
    except credentials.CredentialError as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, valid=False, error="%s; nothing was changed" % exc)
    if store_text is not None and not module.check_mode:
        try:
            _write_store(module.params["store"], store_text)
        except (IOError, OSError) as exc:
            message = "cannot write the credential store %s: %s" % (module.params["store"], exc.strerror)
            module.fail_json(msg=message, valid=False, error=message)
    module.exit_json(changed=result["store_changed"], **result)


def main():
    run_module()


if __name__ == "__main__":
    main()

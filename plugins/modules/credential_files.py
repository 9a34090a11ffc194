#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credential_files
short_description: Write or read a directory tree of secret files
version_added: "0.1.0"
description:
  - Writes a set of secret files (the credentials of an Airflow installation) under O(path) and removes the ones that
    are no longer configured, or with O(state=read) returns the files it holds.
  - The file contents are secrets; the module returns them only with O(state=read). Always use C(no_log) on its task;
    M(failback.airflow.credential_report) shows which names changed.
author:
  - Failback Airflow Maintainers (@failback)
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be written or removed without touching the host.
  diff_mode:
    support: none
    details:
      - File contents are secrets; use M(failback.airflow.credential_report) for a diff of names.
  idempotent:
    support: full
    details:
      - Files are compared byte for byte; files with the wanted content, owner, group and mode are left untouched.
  platform:
    support: full
    platforms: posix
    details:
      - Runs on any POSIX host with Python (standard library only).
options:
  path:
    description:
      - The top directory. It and the O(directories) under it are created when missing.
    type: path
    required: true
  state:
    description:
      - V(present) writes O(files) and, with O(purge=true), removes the files not listed.
      - V(read) returns the regular files of the managed O(directories) as RV(contents) (symbolic links and names
        starting with a dot are skipped) and changes nothing.
    type: str
    choices: [present, read]
    default: present
  files:
    description:
      - The wanted files, as a mapping of C(DIRECTORY/NAME) (or C(NAME) when O(directories) has
        V(.)) to the text content, written byte for byte (no newline is added).
      - C(DIRECTORY) must be one of O(directories); C(NAME) has letters, digits, C(.), C(_) and C(-) and does not start
        with a dot.
      - Each file is replaced atomically - a temporary file created with mode C(0600) gets its owner, group and mode, is
        flushed to disk and renamed over the old file - so readers and containers that mount the directories never see
        a partial file or a file with wider permissions.
    type: dict
    default: {}
  directories:
    description:
      - The managed directories, relative to O(path); V(.) is O(path) itself.
    type: list
    elements: str
    default: [airflow, backend, files]
  purge:
    description:
      - Remove every file in the managed O(directories) that is not in O(files), so a credential that is no longer
        configured disappears from the installation.
    type: bool
    default: true
  owner:
    description:
      - Owner (user name or uid) of the directories and files. Empty leaves the owner of new files to the
        user running the module.
      - Changing the owner to another user needs root (C(become)).
    type: str
    default: ""
  group:
    description:
      - Group (name or gid) of the directories and files. Empty leaves it to the user running the module.
    type: str
    default: ""
  mode:
    description:
      - Mode of the files, an octal string such as V(0640).
      - Modes with execute for the owner, write or execute for the group, any access for others, or a setuid, setgid or
        sticky bit are refused.
    type: str
    default: "0640"
  directory_mode:
    description:
      - Mode of the directories, an octal string such as V(0750).
      - Modes with write for the group, any access for others, or a setuid, setgid or sticky bit are refused.
    type: str
    default: "0750"
seealso:
  - module: failback.airflow.credential_bundle
  - module: failback.airflow.credential_report
"""

EXAMPLES = r"""
- name: Read what the installation holds
  failback.airflow.credential_files:
    path: /opt/failback-airflow/secrets
    state: read
  register: current
  no_log: true

- name: Write the installation's credentials (owned by the Airflow uid, group 0)
  failback.airflow.credential_files:
    path: /opt/failback-airflow/secrets
    files:
      airflow/fernet_key: "{{ fernet_key }}"
      backend/connections.yaml: "{{ connections_yaml }}"
      files/warehouse.env: "WAREHOUSE_PASSWORD='{{ warehouse_password }}'\n"
    owner: "50000"
    group: "0"
    mode: "0640"
  no_log: true

- name: Keep rendered Kubernetes manifests in a flat private directory on the controller
  failback.airflow.credential_files:
    path: "{{ playbook_dir }}/manifests"
    directories: ["."]
    purge: false
    files:
      failback-airflow-secrets.yaml: "{{ manifest_text }}"
    mode: "0600"
    directory_mode: "0700"
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
path:
  description: The top directory.
  returned: always
  type: str
  sample: /opt/failback-airflow/secrets
changed_files:
  description: Files written or whose owner, group or mode was fixed (paths relative to O(path)).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [airflow/fernet_key, backend/connections.yaml]
removed_files:
  description: Files removed because they are not in O(files).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [files/old.env]
changed_directories:
  description: Directories created or whose owner, group or mode was fixed (V(.) is O(path)).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [".", airflow]
contents:
  description: The current files, relative path to text. Secret; use C(no_log).
  returned: when O(state=read)
  type: dict
  sample: {"airflow/fernet_key": "..."}
error:
  description: Why the module failed (never holds a file content), for a caller whose task uses C(no_log).
  returned: failure
  type: str
  sample: "cannot update /opt/failback-airflow/secrets: Operation not permitted"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import credential_fs


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["present", "read"], default="present"),
            files=dict(type="dict", default={}, no_log=True),
            directories=dict(type="list", elements="str", default=["airflow", "backend", "files"]),
            purge=dict(type="bool", default=True),
            owner=dict(type="str", default=""),
            group=dict(type="str", default=""),
            mode=dict(type="str", default="0640"),
            directory_mode=dict(type="str", default="0750"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    root = params["path"]
    result = dict(changed=False, path=root)
    try:
        if params["state"] == "read":
            result["contents"] = credential_fs.read_tree(root, params["directories"])
            module.exit_json(**result)
        files = dict((str(path), "" if text is None else str(text)) for path, text in params["files"].items())
        mode = credential_fs.parse_mode(params["mode"], "mode", credential_fs.FILE_FORBIDDEN_BITS)
        dir_mode = credential_fs.parse_mode(params["directory_mode"], "directory_mode", credential_fs.DIR_FORBIDDEN_BITS)
        uid = credential_fs.resolve_uid(params["owner"])
        gid = credential_fs.resolve_gid(params["group"])
        plan = credential_fs.plan(root, files, params["directories"], uid, gid, mode, dir_mode,
                                  purge=params["purge"])
        if plan.changed and not module.check_mode:
            credential_fs.apply(root, files, plan, uid, gid, mode, dir_mode)
    except credential_fs.CredentialFsError as exc:
        module.fail_json(msg=str(exc), error=str(exc), **result)
    result.update(
        changed=plan.changed,
        changed_files=plan.changed_files(),
        removed_files=plan.removals,
        changed_directories=plan.directories,
    )
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()

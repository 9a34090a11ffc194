#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credential_report
short_description: Report which credentials changed, by name only
version_added: "0.1.0"
description:
  - Reports which credentials changed, from their names and states, with a diff that holds no value.
  - Tasks that handle secrets must use C(no_log), which hides their diff too. This module takes only the names and
    states (as returned by M(failback.airflow.credential_bundle) in RV(failback.airflow.credential_bundle#module:changes)),
    so its task needs no C(no_log).
  - It changes nothing on any host.
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
      - This action does not modify state; it reports the same in check mode.
  diff_mode:
    support: full
    details:
      - The diff lists every name and marks the added, changed and removed ones; values are shown as C((hidden)).
  idempotent:
    support: partial
    details:
      - This action does not modify state. It reports a change whenever O(changes) has a state other than V(unchanged),
        so a second run with the same input reports the same change.
  platform:
    support: full
    platforms: posix
    details:
      - Runs anywhere; it only formats its input.
options:
  changes:
    description: Credential names and their states.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The credential's name, such as V(fernet_key), V(connections/warehouse) or V(files/app.env).
        type: str
        required: true
      state:
        description: What happened to it.
        type: str
        required: true
        choices: [added, changed, removed, unchanged]
  location:
    description: Where the credentials live (a directory or a namespace), shown in the diff headers.
    type: str
    default: credentials
seealso:
  - module: failback.airflow.credential_bundle
"""

EXAMPLES = r"""
- name: Show which credentials changed (names only)
  failback.airflow.credential_report:
    changes: "{{ bundle.changes }}"
    location: /opt/failback-airflow/secrets

- name: Report a hand-made list
  failback.airflow.credential_report:
    changes:
      - {key: fernet_key, state: unchanged}
      - {key: connections/warehouse, state: changed}
      - {key: files/app.env, state: added}
"""

RETURN = r"""
changed_keys:
  description: The names whose state is not V(unchanged).
  returned: always
  type: list
  elements: str
  sample: [connections/warehouse, files/app.env]
keys:
  description: Every name given, with its state.
  returned: always
  type: dict
  sample: {"fernet_key": "unchanged", "connections/warehouse": "changed"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.failback.airflow.plugins.module_utils import credentials


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            changes=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    key=dict(type="str", required=True, no_log=False),
                    state=dict(type="str", required=True, choices=["added", "changed", "removed", "unchanged"]),
                ),
            ),
            location=dict(type="str", default="credentials"),
        ),
        supports_check_mode=True,
    )
    changes = [(item["key"], item["state"]) for item in module.params["changes"]]
    changed_keys = [key for key, state in changes if state != "unchanged"]
    result = dict(changed=bool(changed_keys), changed_keys=changed_keys, keys=dict(changes))
    if module._diff:
        result["diff"] = credentials.key_diff(changes, module.params["location"])
    module.exit_json(**result)


def main():
    run_module()


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: placement_authority
short_description: Publish the placement map to the fleet's authority (an object in an S3 bucket), or read it
version_added: "0.3.0"
description:
  - The authority is the one place every installation's guard reads the map from when the fleet pulls its map
    (C(FAILBACK_PLACEMENT_MAP=s3://BUCKET/KEY)); a guard decides only with a map it confirmed there within its lease.
  - V(present) reads the object, checks the new map against it (an older generation never replaces a newer one, nor
    a different map of the same generation) and writes it with a conditional PUT - C(If-Match) the ETag it read, or
    C(If-None-Match) for a new object - so that of two controllers writing at once one wins and the other fails
    with nothing changed (compare-and-swap).
  - V(read) returns what the authority holds and changes nothing.
  - Requests are signed with AWS Signature Version 4 by the Python standard library (no boto3), so AWS S3 and
    S3-compatible stores (MinIO, Ceph RGW) work alike.
author:
  - Failback Airflow Maintainers (@failback)
requirements:
  - PyYAML on the host that runs the module.
extends_documentation_fragment:
  - failback.airflow.attributes
  - failback.airflow.attributes.actiongroup_failback
  - failback.airflow.attributes.platform
options:
  url:
    description: The map's object, V(s3://BUCKET/KEY).
    type: str
    required: true
  region:
    description: The bucket's region (part of every signature).
    type: str
    default: us-east-1
  endpoint:
    description:
      - URL of an S3-compatible service, for example V(https://minio.example.com:9000); the bucket is addressed by path.
      - Without it, AWS S3 of O(region) with the bucket in the host name.
    type: str
  credentials_file:
    description:
      - JSON file, on the host that runs the module, with C(access_key_id), C(secret_access_key) and maybe
        C(session_token) - the same format the guard reads. The keys never pass through Ansible.
      - Mutually exclusive with O(credentials). Without either, requests are not signed.
    type: path
  credentials:
    description: The same keys as a dictionary (keep them in Ansible Vault).
    type: dict
    suboptions:
      access_key_id:
        description: Access key id.
        type: str
        required: true
      secret_access_key:
        description: Secret access key.
        type: str
        required: true
      session_token:
        description: Session token of temporary credentials.
        type: str
  ca_file:
    description: CA bundle to verify an C(https) endpoint with (default the system's).
    type: path
  timeout:
    description: Timeout of one request in seconds.
    type: int
    default: 10
  state:
    description: V(present) publishes O(content); V(read) returns what the authority holds.
    type: str
    choices: [present, read]
    default: present
  content:
    description: O(state=present) - the map to publish, as YAML text or data.
    type: raw
  installations:
    description: The known installation names; every owner in O(content) must be one of them.
    type: list
    elements: str
  expect_etag:
    description:
      - O(state=present) - publish only if the object is still this version (the C(etag) an earlier read returned),
        for a caller that decided on what it read; V(absent) means only if there is no object yet.
      - Without it the module writes over the version it reads itself (still compare-and-swap).
    type: str
attributes:
  check_mode:
    support: full
    details:
      - Reads the authority and reports what would be written; writes nothing.
  diff_mode:
    support: full
    details:
      - The map text before and after (maps hold no secrets).
  idempotent:
    support: full
    details:
      - Publishing the map the authority holds changes nothing.
  platform:
    support: full
    platforms: posix
    details:
      - Needs Python and PyYAML on the host that runs it, which must reach the bucket.
notes:
  - The credentials need C(s3:GetObject) and C(s3:PutObject) on the key; the installations' guards need only
    C(s3:GetObject).
  - AWS S3 has honoured conditional writes since November 2024; an S3-compatible store that ignores C(If-Match) gives
    no compare-and-swap (the fleet lock of the playbooks still keeps one controller at a time).
seealso:
  - module: failback.airflow.placement_publish
"""

EXAMPLES = r"""
- name: Publish the controller's map to the fleet's bucket
  failback.airflow.placement_authority:
    url: s3://team-airflow/failback/placement.yml
    region: eu-west-1
    credentials_file: /etc/failback/s3-controller.json
    content: "{{ lookup('ansible.builtin.file', inventory_dir ~ '/placement.yml') }}"
    installations: "{{ groups['airflow_installations'] }}"

- name: Read what the installations read
  failback.airflow.placement_authority:
    url: s3://team-airflow/failback/placement.yml
    region: eu-west-1
    credentials_file: /etc/failback/s3-controller.json
    state: read
  register: authority
"""

RETURN = r"""
exists:
  description: Whether the authority holds a map after the task.
  returned: always
  type: bool
  sample: true
generation:
  description: Generation the authority holds after the task (V(null) without a map).
  returned: always
  type: int
  sample: 7
previous_generation:
  description: Generation it held before the task (V(null) without a map or with an invalid one).
  returned: always
  type: int
  sample: 6
map:
  description: The map the authority holds after the task, as data.
  returned: always
  type: dict
  sample: {"@failback": {"generation": 7}, "sales_daily": "server-2"}
etag:
  description: The object's ETag after the task (give it as O(expect_etag) to a later write).
  returned: always
  type: str
  sample: '"5d41402abc4b2a76b9719d911017c592"'
written:
  description: Whether the object was (or in check mode would be) written.
  returned: always
  type: bool
  sample: true
invalid:
  description: Why the object held no valid map before the task (the guards fail closed on it), or V(null).
  returned: always
  type: str
  sample: null
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.urls import open_url

from ansible_collections.failback.airflow.plugins.module_utils import placement, s3_object


def _lenient_generation(body):
    """The generation an object claims, when it is not a map this collection reads (None if it claims none)."""
    try:
        data = placement.load_yaml(body.decode("utf-8", "replace"), source="the authority's map")
        generation = data[placement.META_KEY]["generation"]
    except (placement.PlacementError, KeyError, TypeError, AttributeError):
        return None
    return generation if isinstance(generation, int) and not isinstance(generation, bool) else None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            region=dict(type="str", default="us-east-1"),
            endpoint=dict(type="str"),
            credentials_file=dict(type="path"),
            credentials=dict(type="dict", no_log=True, options=dict(
                access_key_id=dict(type="str", required=True, no_log=False),
                secret_access_key=dict(type="str", required=True, no_log=True),
                session_token=dict(type="str", no_log=True))),
            ca_file=dict(type="path"),
            timeout=dict(type="int", default=10),
            state=dict(type="str", default="present", choices=["present", "read"]),
            content=dict(type="raw"),
            installations=dict(type="list", elements="str"),
            expect_etag=dict(type="str"),
        ),
        mutually_exclusive=[("credentials", "credentials_file")],
        required_if=[("state", "present", ("content",))],
        supports_check_mode=True,
    )
    if not placement.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"), exception=str(placement.YAML_IMPORT_ERROR))
    params = module.params
    url = params["url"]
    result = dict(changed=False, url=url, written=False, invalid=None)
    try:
        bucket_name, key = s3_object.parse_url(url)
        if params["timeout"] <= 0:
            raise ValueError("timeout=%d: give a positive number of seconds" % params["timeout"])
        if params["credentials_file"]:
            credentials = s3_object.read_credentials(params["credentials_file"])
        else:
            credentials = dict((k, v) for k, v in (params["credentials"] or {}).items() if v)
        # Never shown, whatever an error quotes (keys from a file are not module options).
        module.no_log_values.update(v for k, v in credentials.items() if k != "access_key_id")
        bucket = s3_object.Bucket(bucket_name, region=params["region"], endpoint=params["endpoint"],
                                  credentials=credentials, ca_file=params["ca_file"], timeout=params["timeout"],
                                  opener=lambda url, method, headers, data, timeout: open_url(
                                      url, data=data, headers=headers, method=method, timeout=timeout,
                                      ca_path=params["ca_file"], follow_redirects="none"))
        new = placement.as_map(params["content"], params["installations"], "content") if params["state"] == "present" else None
        status, body, etag = bucket.get(key, limit=placement.MAX_MAP_BYTES)
    except (ValueError, s3_object.S3Error, placement.PlacementError) as exc:
        module.fail_json(msg="%s; nothing was changed" % exc, **result)
    current = None
    if status == 200:
        try:
            current = placement.parse_map(body.decode("utf-8"), source="the authority's map %s" % url)
        except (UnicodeDecodeError, placement.PlacementError) as exc:
            result["invalid"] = str(exc)
            held = _lenient_generation(body)
            if new is not None and held is not None and new.generation <= held:
                module.fail_json(msg="the authority's map %s holds generation %d, which this collection cannot read (%s); "
                                     "refusing to write generation %d over it - is a newer collection publishing? "
                                     "Nothing was changed" % (url, held, exc, new.generation), **result)
    after, after_etag = current, etag
    if new is not None:
        expected = params["expect_etag"]
        if expected is not None and expected != (etag if status == 200 else "absent"):
            module.fail_json(msg="the authority's map %s changed since it was read (ETag %s, expected %s): read it again "
                                 "and decide on what it holds now; nothing was changed" % (url, etag or "none", expected),
                             **result)
        try:
            needed = placement.check_publish(current, new) if current is not None else True
        except placement.PlacementError as exc:
            module.fail_json(msg="%s at %s; nothing was changed" % (exc, url), **result)
        if needed:
            result.update(changed=True, written=True)
            after = new
            if not module.check_mode:
                try:
                    after_etag = bucket.put(key, placement.dump_map(new).encode("utf-8"),
                                            if_match=etag if status == 200 else None)
                except s3_object.PreconditionFailed as exc:
                    module.fail_json(msg="%s: another writer published between this task's read and write; run again "
                                         "to decide on what the authority holds now; nothing was changed" % exc, **result)
                except s3_object.S3Error as exc:
                    module.fail_json(msg="%s; nothing was changed" % exc, **result)
            if result["invalid"]:
                module.warn("%s held no valid map (%s); replaced" % (url, result["invalid"]))
        if module._diff:
            result["diff"] = dict(
                before=placement.dump_map(current) if current is not None else (body or b"").decode("utf-8", "replace"),
                after=placement.dump_map(after),
                before_header="%s (generation %s)" % (url, current.generation if current is not None else "none"),
                after_header="%s (generation %s)" % (url, after.generation))
    result.update(exists=after is not None, generation=after.generation if after is not None else None,
                  previous_generation=current.generation if current is not None else None,
                  map=after.to_data() if after is not None else None, etag=after_etag)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

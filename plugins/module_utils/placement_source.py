# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the installations' guards read the placement map: the fleet's ``airflow_placement_source``.

* ``{type: push}`` (the default): the controller writes the map into each installation (a file on
  a server, a ConfigMap on a cluster) and the guard reads that copy.
* ``{type: s3, url: s3://BUCKET/KEY, ...}``: every guard reads one object (the *authority*) with a
  lease: it decides only with a map it confirmed there at most ``lease`` seconds ago and fails
  closed past that, so an installation the controller cannot reach stops by itself. The
  controller writes the object with compare-and-swap (module placement_authority), and a
  failover waits until an old owner that did not confirm the revoke stage has certainly lost its
  lease (``lease + clock_margin`` after the revoke stage was written) before it grants.

One rule each, used by the airflow_placement role through filters; pure Python, no Ansible import.
"""

from __future__ import annotations

import math

from ansible_collections.failback.airflow.plugins.module_utils import s3_object

TYPES = ("push", "s3")
KEYS = ("type", "url", "region", "endpoint", "refresh", "lease", "clock_margin", "credentials",
        "controller_credentials_file")
DEFAULTS = {"type": "push", "region": "us-east-1", "endpoint": None, "refresh": 15, "lease": 60, "clock_margin": 5,
            "credentials": None, "controller_credentials_file": None}
#: A lease longer than this would make a failover wait more than an hour for an unreachable owner.
MAX_LEASE = 3600
NAME = "airflow_placement_source"


def settled(source):
    """*source* with the defaults filled in (no checks: see problems)."""
    found = dict(DEFAULTS)
    found.update(source or {})
    return found


def _seconds(value, key, problems, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append("%s.%s is %r: give a number of seconds" % (NAME, key, value))
        return None
    if value < minimum:
        problems.append("%s.%s is %r: give at least %s seconds" % (NAME, key, value, minimum))
        return None
    return value


def problems(source, check_files=True):
    """What is wrong with *source* (sentences naming the key and the value; empty when nothing).

    With *check_files*, the controller's credentials file is read (on the controller): a file it
    cannot read, or that is not a credentials JSON object, stops the run before anything is written.
    """
    if source is None:
        return []
    if not isinstance(source, dict):
        return ["%s must be a mapping ({type: push} or {type: s3, url: ...}), got %s" % (NAME, type(source).__name__)]
    found = []
    unknown = sorted(str(key) for key in source if key not in KEYS)
    if unknown:
        found.append("%s: unknown key(s) %s; allowed: %s" % (NAME, ", ".join(unknown), ", ".join(KEYS)))
    source = settled(source)
    if source["type"] not in TYPES:
        return found + ["%s.type is %r: give one of %s" % (NAME, source["type"], ", ".join(TYPES))]
    if source["type"] == "push":
        return found
    try:
        s3_object.parse_url(source.get("url"))
    except ValueError as exc:
        found.append("%s.url: %s" % (NAME, exc))
    try:
        s3_object.check_region(source["region"])
        if source["endpoint"]:
            s3_object.Bucket("placeholder-bucket", source["region"], source["endpoint"])
    except ValueError as exc:
        found.append("%s: %s" % (NAME, exc))
    refresh = _seconds(source["refresh"], "refresh", found, 1)
    lease = _seconds(source["lease"], "lease", found, 1)
    _seconds(source["clock_margin"], "clock_margin", found, 0)
    if refresh is not None and lease is not None:
        if lease < refresh:
            found.append("%s.lease is %r, shorter than refresh %r: a guard's map would expire before it is read again; "
                         "give a lease of at least the refresh (3 refreshes or more ride out a lost request)"
                         % (NAME, lease, refresh))
        if lease > MAX_LEASE:
            found.append("%s.lease is %r: at most %d seconds (a failover waits a whole lease for an owner it cannot "
                         "reach)" % (NAME, lease, MAX_LEASE))
    credentials = source["credentials"]
    if credentials is not None:
        if not isinstance(credentials, dict) or sorted(set(credentials) - set(s3_object.CREDENTIAL_KEYS)) \
                or not all(isinstance(credentials.get(k), str) and credentials.get(k) for k in s3_object.CREDENTIAL_KEYS[:2]):
            found.append("%s.credentials (the installations' read-only keys) must be a mapping with access_key_id and "
                         "secret_access_key (and maybe session_token)" % NAME)
    controller = source["controller_credentials_file"]
    if not controller:
        found.append("%s.controller_credentials_file is not set: the controller writes the map with its own keys, "
                     "from a file on the controller" % NAME)
    elif check_files:
        try:
            s3_object.read_credentials(controller)
        except s3_object.S3Error as exc:
            found.append("%s.controller_credentials_file: %s" % (NAME, exc))
    return found


def guard_env(source, credentials_path, fence_path):
    """The environment the guard needs to read the map from *source* (no secret: paths and numbers)."""
    source = settled(source)
    if source["type"] != "s3":
        return {}
    env = {
        "FAILBACK_PLACEMENT_MAP": source["url"],
        "FAILBACK_PLACEMENT_TTL": str(source["refresh"]),
        "FAILBACK_PLACEMENT_LEASE": str(source["lease"]),
        "FAILBACK_PLACEMENT_S3_REGION": source["region"],
        "FAILBACK_FENCE_FILE": fence_path,
    }
    if source["endpoint"]:
        env["FAILBACK_PLACEMENT_S3_ENDPOINT"] = source["endpoint"]
    if source["credentials"]:
        env["FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE"] = credentials_path
    return env


def grant_wait(source, revoked_at, now, confirmed_at=None):
    """Seconds to wait before a grant may follow the revoke stage written at *revoked_at* (epoch seconds).

    An old owner that did not confirm the revoke stage may decide with the map before it until its
    lease runs out: ``lease + clock_margin`` after the write (its last confirming request was sent
    before the write ended). When every old owner confirmed it (*confirmed_at*: the controller's time
    after the last of them was handed the revoke stage, module placement_guard_cache), a task process
    there may still hold the map before in memory for one refresh after that.
    """
    source = settled(source)
    if confirmed_at is not None:
        return max(0.0, float(confirmed_at) + source["refresh"] - now)
    return max(0.0, revoked_at + source["lease"] + source["clock_margin"] - now)

# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""failback.airflow guard: a task executes only on the installation that owns its DAG.

Installed by the ``failback.airflow.airflow_placement`` role next to ``failback_placement.py``
(the collection's placement rules) and ``airflow_local_settings.py`` in a directory on
Airflow's ``sys.path`` (``$AIRFLOW_HOME/config`` in the official image).

Configuration, read from the environment of the process that runs the task:

``FAILBACK_INSTALLATION``
    This installation's name (falls back to ``HOST_HOSTNAME``).
``FAILBACK_PLACEMENT_MAP``
    Path of the map file, an ``http://``/``https://`` URL, or an ``s3://BUCKET/KEY`` object.
``FAILBACK_PLACEMENT_TTL`` (default 30)
    Seconds a URL or S3 map is used before it is checked again (with a conditional request).
``FAILBACK_PLACEMENT_LEASE``
    Seconds a URL or S3 map may be used after the last request that confirmed it was *sent*;
    past that every task fails until the map can be read again (the lease that ends a
    partitioned installation's authority). Must not be shorter than the TTL. Unset: TTL plus
    ``FAILBACK_PLACEMENT_MAX_STALE``.
``FAILBACK_PLACEMENT_MAX_STALE`` (default 0)
    Seconds past the TTL a cached URL map may still be used while the URL cannot be read, when
    ``FAILBACK_PLACEMENT_LEASE`` is not set; 0 fails at once.
``FAILBACK_PLACEMENT_S3_ENDPOINT`` / ``FAILBACK_PLACEMENT_S3_REGION`` (default us-east-1)
    For an ``s3://`` map: the S3-compatible service's URL (none: AWS S3 of the region).
``FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE``
    For an ``s3://`` map: a JSON file with ``access_key_id``, ``secret_access_key`` and maybe
    ``session_token``; without it requests are not signed (a public object).
``FAILBACK_PLACEMENT_TIMEOUT`` (default 5)
    HTTP timeout in seconds.
``FAILBACK_PLACEMENT_CA_FILE`` / ``FAILBACK_PLACEMENT_TOKEN_FILE``
    CA bundle for https, and a file whose content is sent as a bearer token.
``FAILBACK_PLACEMENT_CACHE_DIR``
    Where URL maps are cached between task processes (default: a per-user temp directory).
``FAILBACK_FENCE_FILE``
    The fence marker; defaults to ``fence`` next to a file map.  While it exists every task
    fails: the installation restarted (or was fenced by an operator) and must be given the
    current map before it may run anything again.

Decisions: the owner runs the task; everybody else raises ``AirflowSkipException`` so the task
ends *skipped*; a missing, unreadable or malformed map, an unset name or a fence fail the task
(fail closed).  One log line per decision.  Nothing here sleeps.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import math
import os
import ssl
import stat
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import failback_placement as placement

LOG = logging.getLogger("failback.guard")

ENV_INSTALLATION = "FAILBACK_INSTALLATION"
ENV_INSTALLATION_FALLBACK = "HOST_HOSTNAME"
ENV_MAP = "FAILBACK_PLACEMENT_MAP"
ENV_TTL = "FAILBACK_PLACEMENT_TTL"
ENV_MAX_STALE = "FAILBACK_PLACEMENT_MAX_STALE"
ENV_LEASE = "FAILBACK_PLACEMENT_LEASE"
ENV_S3_ENDPOINT = "FAILBACK_PLACEMENT_S3_ENDPOINT"
ENV_S3_REGION = "FAILBACK_PLACEMENT_S3_REGION"
ENV_S3_CREDENTIALS_FILE = "FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE"
ENV_TIMEOUT = "FAILBACK_PLACEMENT_TIMEOUT"
ENV_CA_FILE = "FAILBACK_PLACEMENT_CA_FILE"
ENV_TOKEN_FILE = "FAILBACK_PLACEMENT_TOKEN_FILE"
ENV_CACHE_DIR = "FAILBACK_PLACEMENT_CACHE_DIR"
ENV_FENCE_FILE = "FAILBACK_FENCE_FILE"

DEFAULT_TTL = 30.0
DEFAULT_MAX_STALE = 0.0
DEFAULT_TIMEOUT = 5.0
MAX_MAP_BYTES = placement.MAX_MAP_BYTES

RUN = placement.RUN
SKIP = placement.SKIP


class GuardError(RuntimeError):
    """The guard cannot decide safely; the task must fail (fail closed)."""


class Decision(object):
    __slots__ = ("decision", "dag_id", "task_id", "owner", "installation", "generation", "reason", "source", "due")

    def __init__(self, decision, dag_id, task_id, owner, installation, generation, reason, source, due=None):
        self.due = due
        self.decision = decision
        self.dag_id = dag_id
        self.task_id = task_id
        self.owner = owner
        self.installation = installation
        self.generation = generation
        self.reason = reason
        self.source = source

    @property
    def runs(self):
        return self.decision == RUN

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)


def _env_float(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GuardError("%s=%r is not a number of seconds" % (name, raw))
    if not math.isfinite(value):
        raise GuardError("%s=%r is not a finite number of seconds" % (name, raw))
    if value < 0:
        raise GuardError("%s=%r must not be negative" % (name, raw))
    return value


def installation_name():
    name = os.environ.get(ENV_INSTALLATION) or os.environ.get(ENV_INSTALLATION_FALLBACK)
    if not name:
        raise GuardError(
            "this installation has no name: set %s (or %s) where tasks execute" % (ENV_INSTALLATION, ENV_INSTALLATION_FALLBACK)
        )
    return name


def _is_url(spec):
    return spec.startswith("http://") or spec.startswith("https://") or spec.startswith("s3://")


def lease_seconds(ttl):
    """How long after the last confirming request a URL or S3 map may be used (see ENV_LEASE)."""
    if (os.environ.get(ENV_LEASE) or "").strip():
        lease = _env_float(ENV_LEASE, None)
        if lease < ttl:
            raise GuardError("%s=%s is shorter than %s=%s: the map would expire before it is checked again; "
                             "give a lease of at least the TTL" % (ENV_LEASE, os.environ[ENV_LEASE], ENV_TTL, ttl))
        return lease
    return ttl + _env_float(ENV_MAX_STALE, DEFAULT_MAX_STALE)


def _check_length(where, declared, body):
    """Refuse a body shorter or longer than its Content-Length (a connection cut off mid-map)."""
    if declared is not None:
        try:
            expected = int(declared)
        except ValueError:
            raise GuardError("placement map %s answered a Content-Length of %r" % (where, declared[:40])) from None
        if expected != len(body):
            raise GuardError("placement map %s: the answer ended after %d of %d bytes" % (where, len(body), expected))


# --------------------------------------------------------------------------- sources


class FileSource(object):
    """A map file, parsed again only when it changed (inode, size, mtime or ctime)."""

    def __init__(self, path):
        self.path = path
        self.description = path
        self._signature = None
        self._map = None
        self._lock = threading.Lock()

    def fence_path(self):
        return os.path.join(os.path.dirname(self.path), placement.FENCE_FILE_NAME)

    def get(self):
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise GuardError("placement map %s cannot be read: %s" % (self.path, exc.strerror)) from None
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if signature == self._signature:
            return self._map
        with self._lock:
            try:
                # O_NONBLOCK: a FIFO put where the map belongs must not hang the task.
                with os.fdopen(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as handle:
                    st = os.fstat(handle.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        raise GuardError("placement map %s is not a regular file" % self.path)
                    data = handle.read(MAX_MAP_BYTES + 1)
            except OSError as exc:
                raise GuardError("placement map %s cannot be read: %s" % (self.path, exc.strerror)) from None
            if len(data) > MAX_MAP_BYTES:
                raise GuardError("placement map %s is larger than %d bytes" % (self.path, MAX_MAP_BYTES))
            try:
                pmap = placement.parse_map(data, source="placement map %s" % self.path)
            except placement.PlacementError as exc:
                raise GuardError(str(exc)) from None
            self._map = pmap
            self._signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            return pmap


class UrlSource(object):
    """A map behind an http(s) URL: cached for the TTL, then checked with a conditional request.

    The cache is kept in memory and in a small file so that short-lived task processes share it.
    A response with a lower generation than the cached one is ignored (a lagging mirror or CDN
    must not roll ownership back).
    """

    def __init__(self, url):
        self.url = url
        self.description = url
        self._lock = threading.Lock()
        self._map = None
        self._entry = None  # {"etag", "last_modified", "checked_at", "ok_at", "body"}

    def fence_path(self):
        return None

    def _cache_file(self):
        directory = os.environ.get(ENV_CACHE_DIR) or os.path.join(
            tempfile.gettempdir(), "failback-placement-%d" % os.getuid()
        )
        return directory, os.path.join(directory, placement.guard_cache_name(self.url))

    def _cache_dir_ok(self, directory):
        """The cache is trusted only in a directory of this user that nobody else may write."""
        problem = placement.guard_cache_dir_problem(directory, os.geteuid())
        if problem is not None and os.path.lexists(directory):
            LOG.warning("failback guard: %s; the cache there is not used", problem)
        return problem is None

    def _read_disk(self, path):
        """The entry in the cache file and its map, or None (none, damaged, or from a clock ahead of this one)."""
        try:
            text = placement.read_text(path, "map cache", follow_symlinks=False, limit=2 * MAX_MAP_BYTES + 4096)
            entry = json.loads(text) if text is not None else None
            pmap = placement.parse_map(entry["body"], source="cached placement map of %s" % self.url)
            checked_at, ok_at = float(entry["checked_at"]), float(entry["ok_at"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError, placement.PlacementError):
            return None
        if checked_at > time.time() or ok_at > time.time():
            return None  # written by a clock ahead of this one, or by hand: never trusted
        return entry, pmap

    def _load_disk(self):
        directory, path = self._cache_file()
        if not self._cache_dir_ok(directory):
            return
        found = self._read_disk(path)
        if found is not None and (self._entry is None or found[0]["checked_at"] > self._entry.get("checked_at", 0)):
            self._entry, self._map = found

    def _save_disk(self):
        directory, path = self._cache_file()
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            if not self._cache_dir_ok(directory):
                return
            found = self._read_disk(path)
            if found is not None and found[0]["checked_at"] >= self._entry["checked_at"]:
                # A newer entry is there (another task process, or the revoke stage a failover handed this
                # installation): a request sent before it must not replace it.
                return
            placement.atomic_write(path, json.dumps(self._entry, sort_keys=True), mode=0o600)
        except OSError as exc:
            LOG.warning("failback guard: cannot write the map cache %s: %s", path, exc)

    def _request(self, timeout):
        headers = {"Accept": "application/yaml, text/plain, */*", "User-Agent": "failback-airflow-guard"}
        if self._entry is not None and self._map is not None:
            if self._entry.get("etag"):
                headers["If-None-Match"] = self._entry["etag"]
            if self._entry.get("last_modified"):
                headers["If-Modified-Since"] = self._entry["last_modified"]
        token_file = os.environ.get(ENV_TOKEN_FILE)
        if token_file:
            try:
                with open(token_file, "r") as handle:
                    headers["Authorization"] = "Bearer " + handle.read().strip()
            except OSError as exc:
                raise GuardError("token file %s (%s) cannot be read: %s" % (token_file, ENV_TOKEN_FILE, exc.strerror))
        context = None
        if self.url.startswith("https://"):
            context = ssl.create_default_context(cafile=os.environ.get(ENV_CA_FILE) or None)
        request = urllib.request.Request(self.url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                body = response.read(MAX_MAP_BYTES + 1)
                if len(body) > MAX_MAP_BYTES:
                    raise GuardError("placement map %s is larger than %d bytes" % (self.url, MAX_MAP_BYTES))
                _check_length(self.url, response.headers.get("Content-Length"), body)
                return 200, body, response.headers.get("ETag"), response.headers.get("Last-Modified")
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return 304, None, exc.headers.get("ETag"), exc.headers.get("Last-Modified")
            raise GuardError("placement map %s answered HTTP %d" % (self.url, exc.code)) from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise GuardError("placement map %s cannot be fetched: %s" % (self.url, reason)) from None

    def confirmed_at(self):
        """When the last request that confirmed the map was sent (epoch seconds), or None."""
        if self._entry is None:
            self._load_disk()
        return self._entry.get("ok_at") if self._entry else None

    def _fresh(self, now, ttl, lease):
        """The cached map may decide without a request: checked within the TTL and confirmed within the
        lease (a time ahead of this clock counts as neither)."""
        entry = self._entry
        return (self._map is not None and 0 <= now - entry["checked_at"] < ttl
                and 0 <= now - entry.get("ok_at", float("-inf")) <= lease)

    def get(self):
        ttl = _env_float(ENV_TTL, DEFAULT_TTL)
        lease = lease_seconds(ttl)
        now = time.time()
        if self._fresh(now, ttl, lease):
            return self._map
        with self._lock:
            if not self._fresh(now, ttl, lease):
                self._load_disk()
            if self._fresh(now, ttl, lease):
                return self._map
            # *now* is when the request is sent: a map it confirms counts from here, never from its answer.
            try:
                status, body, etag, last_modified = self._request(_env_float(ENV_TIMEOUT, DEFAULT_TIMEOUT))
            except GuardError as exc:
                return self._stale_or_fail(exc, lease, time.time())
            if status == 304:
                if self._map is None:
                    raise GuardError("placement map %s answered 304 Not Modified to a request without a cached map"
                                     % self.url)
                self._entry.update(checked_at=now, ok_at=now)
                if etag:
                    self._entry["etag"] = etag
                self._save_disk()
                return self._map
            try:
                text = body.decode("utf-8")
                fresh = placement.parse_map(text, source="placement map %s" % self.url)
            except (UnicodeDecodeError, placement.PlacementError) as exc:
                raise GuardError(str(exc)) from None
            if self._map is not None and fresh.generation < self._map.generation:
                # A lagging mirror or an object rolled back: it does not confirm the cached map, so the
                # lease runs on (only the next request waits a TTL).
                LOG.warning(
                    "failback guard: %s served generation %d, older than the cached generation %d; keeping the cached map",
                    self.url, fresh.generation, self._map.generation,
                )
                self._entry.update(checked_at=now)
                self._save_disk()
                return self._stale_or_fail(GuardError("placement map %s served generation %d, older than the cached "
                                                      "generation %d" % (self.url, fresh.generation, self._map.generation)),
                                           lease, time.time())
            self._map = fresh
            self._entry = dict(placement.guard_cache_entry(text, now), etag=etag, last_modified=last_modified)
            self._save_disk()
            return fresh

    def _stale_or_fail(self, error, lease, now):
        age = now - self._entry["ok_at"] if self._map is not None else None
        if age is not None and 0 <= age <= lease:
            LOG.warning("failback guard: %s; using the cached map (generation %d), confirmed %.0f s ago, "
                        "within its lease of %.0f s", error, self._map.generation, age, lease)
            return self._map
        if age is not None:
            raise GuardError("%s; the cached map (generation %d) was last confirmed %.0f s ago, past its lease of "
                             "%.0f s: nothing runs here until the map can be read again"
                             % (error, self._map.generation, age, lease))
        raise error


class S3Source(UrlSource):
    """A map in an S3-compatible bucket (``s3://BUCKET/KEY``), read with signed conditional GETs.

    The cache, TTL and lease are those of UrlSource; failback_s3 (the collection's s3_object) signs.
    """

    def __init__(self, url):
        super().__init__(url)
        import failback_s3  # pylint: disable=import-outside-toplevel
        self._s3 = failback_s3
        try:
            self._bucket_name, self._key = failback_s3.parse_url(url)
        except ValueError as exc:
            raise GuardError("%s: %s" % (ENV_MAP, exc)) from None

    def _request(self, timeout):
        s3 = self._s3
        credentials_file = os.environ.get(ENV_S3_CREDENTIALS_FILE)
        try:
            credentials = s3.read_credentials(credentials_file) if credentials_file else None
            bucket = s3.Bucket(self._bucket_name, region=os.environ.get(ENV_S3_REGION) or "us-east-1",
                               endpoint=os.environ.get(ENV_S3_ENDPOINT) or None, credentials=credentials,
                               ca_file=os.environ.get(ENV_CA_FILE) or None, timeout=timeout)
            etag = self._entry.get("etag") if self._entry is not None and self._map is not None else None
            status, body, etag = bucket.get(self._key, etag=etag, limit=MAX_MAP_BYTES)
        except ValueError as exc:
            raise GuardError("placement map %s: %s" % (self.url, exc)) from None
        except s3.S3Error as exc:
            raise GuardError("placement map %s cannot be fetched: %s" % (self.url, exc)) from None
        if status == 404:
            raise GuardError("placement map %s does not exist" % self.url)
        return status, body, etag, None


_SOURCES = {}
_SOURCES_LOCK = threading.Lock()


def source_for(spec):
    """The (cached) source object for a map path or URL."""
    source = _SOURCES.get(spec)
    if source is None:
        with _SOURCES_LOCK:
            source = _SOURCES.get(spec)
            if source is None:
                if spec.startswith("s3://"):
                    source = S3Source(spec)
                elif _is_url(spec):
                    source = UrlSource(spec)
                else:
                    source = FileSource(os.path.abspath(spec))
                _SOURCES[spec] = source
    return source


def current_source():
    spec = os.environ.get(ENV_MAP)
    if not spec:
        raise GuardError("%s is not set: the guard does not know where the placement map is" % ENV_MAP)
    return source_for(spec)


def _fence_reason(source):
    fence = os.environ.get(ENV_FENCE_FILE) or source.fence_path()
    if not fence:
        return None
    try:
        with open(fence, "r") as handle:
            text = handle.read(2000).strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "fence file %s exists but cannot be read (%s)" % (fence, exc.strerror)
    return "fence file %s: %s" % (fence, text or "(no reason given)")


# --------------------------------------------------------------------------- decisions


def evaluate(dag_id, task_id=None, due=None):
    """Decide for one task of the run due at *due* (its ``run_after``; None: the DAG's current owner).

    Returns a Decision; raises GuardError when it cannot decide safely.
    """
    try:
        installation = installation_name()
        source = current_source()
        fenced = _fence_reason(source)
        if fenced:
            raise GuardError(
                "installation %r is fenced (%s); publish the current placement map to it "
                "(site.yml or failover.yml) to lift the fence" % (installation, fenced)
            )
        pmap = source.get()
    except GuardError as exc:
        LOG.error("failback guard: decision=error dag=%s task=%s reason=%s", dag_id, task_id, exc)
        raise
    try:
        decision, owner, reason = placement.decide(pmap, dag_id, installation, due)
    except placement.PlacementError as exc:
        raise GuardError("cannot decide for DAG %r: %s" % (dag_id, exc))
    due_text = placement.format_time(due) if due is not None else None
    LOG.info(
        "failback guard: decision=%s dag=%s task=%s owner=%s installation=%s generation=%d due=%s map=%s",
        decision, dag_id, task_id, owner, installation, pmap.generation, due_text, source.description,
    )
    return Decision(decision, dag_id, task_id, owner, installation, pmap.generation, reason, source.description,
                    due_text)


def _skip_exception():
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:  # Airflow 2
        from airflow.exceptions import AirflowSkipException
    return AirflowSkipException


def _ids_from_context(context, dag_id, task_id):
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is not None:
        return getattr(ti, "dag_id", dag_id), getattr(ti, "task_id", task_id)
    dag = context.get("dag") if hasattr(context, "get") else None
    return (getattr(dag, "dag_id", dag_id), task_id)


def due_time(context):
    """When the task's DAG run was due: ``run_after`` (Airflow 3), else the end of its data interval
    or its logical date (Airflow 2).  None when the context has no run (the DAG's owner decides)."""
    if context is None:
        return None
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    for value in (getattr(dag_run, "run_after", None), getattr(dag_run, "data_interval_end", None),
                  context.get("data_interval_end"), getattr(dag_run, "logical_date", None), context.get("logical_date")):
        if value is not None:
            return value
    return None


def _current_context():
    try:
        from airflow.sdk import get_current_context
    except ImportError:  # Airflow 2
        try:
            from airflow.operators.python import get_current_context
        except ImportError:
            return None
    try:
        return get_current_context()
    except Exception:  # pylint: disable=broad-except
        # no task is running (a test, the CLI)
        return None


def guarded_hook(original=None, dag_id=None, task_id=None):
    """A ``pre_execute`` hook that runs the guard first, then *original* (if any).  Idempotent."""
    if original is not None and getattr(original, "_failback_guard", False):
        return original

    def failback_pre_execute(context, *args, **kwargs):
        enforce(*_ids_from_context(context, dag_id, task_id), context=context)
        if original is not None:
            return original(context, *args, **kwargs)
        return None

    failback_pre_execute._failback_guard = True
    return failback_pre_execute


# One XCom key per decision, so that Airflow's REST API tells them apart by key alone.
GUARD_XCOM_KEYS = {RUN: "failback_guard_run", SKIP: "failback_guard_skip", "error": "failback_guard_error"}


def _record(context, decision, reason, owner=None, installation=None, generation=None, due=None):
    """Leave the guard's decision on the task instance as an XCom (GUARD_XCOM_KEYS).

    A task the guard skipped or failed is then told apart from one skipped for another reason (a
    branch, a trigger rule), and a task it let run from one that never reached it: failover.yml's
    drain and catch-up read these records, and only re-run what the guard did not let run.  Airflow
    clears them when the task instance is tried again.  Best effort: the decision stands even when
    it cannot be recorded.
    """
    ti = context.get("ti") if context is not None and hasattr(context, "get") else None
    if ti is None or not hasattr(ti, "xcom_push"):
        return
    try:
        ti.xcom_push(key=GUARD_XCOM_KEYS[decision], value={
            "decision": decision, "reason": reason, "owner": owner, "installation": installation,
            "generation": generation, "due": due, "at": placement.utc_now()})
    except Exception as exc:  # pylint: disable=broad-except
        LOG.warning("failback guard: the decision could not be recorded on the task instance: %s", exc)


def enforce(dag_id, task_id=None, context=None):
    """Raise AirflowSkipException unless this installation owns the run (GuardError if unsure).

    *context* is the task's context (default: the current one); the run it names decides (see
    due_time).  The decision is recorded on the task instance.
    """
    context = context if context is not None else _current_context()
    due = due_time(context)
    try:
        decision = evaluate(dag_id, task_id, due)
    except GuardError as exc:
        _record(context, "error", str(exc))
        raise
    _record(context, decision.decision, decision.reason, decision.owner, decision.installation, decision.generation,
            decision.due)
    if not decision.runs:
        raise _skip_exception()(
            "failback: %s (placement map generation %d); skipped here" % (decision.reason, decision.generation)
        )
    return decision


def guard_task(task):
    """Decide for *task* as it is prepared for execution (see enforce)."""
    return enforce(getattr(task, "dag_id", None), getattr(task, "task_id", None))


def _explicitly_guarded(task):
    return getattr(task, "failback_explicit_guard", False) or getattr(
        getattr(task, "operator_class", None), "failback_explicit_guard", False)


#: Tasks (dag_id, task_id) whose author asked them to start in the triggerer (``start_from_trigger``); filled by
#: :func:`apply` wherever Airflow parses the DAG (the DAG processor, and the worker that runs the task).
_STARTS_IN_TRIGGERER = set()


def _import_string(path):
    """Airflow's own import of a dotted path (its triggerer imports ``trigger_cls`` with it)."""
    try:
        from airflow.sdk.module_loading import import_string
    except ImportError:  # an Airflow 3 before the task SDK had it
        from airflow.utils.module_loading import import_string
    return import_string(path)


def _start_with_trigger(task):
    """Give *task* (the copy prepared for execution, after the guard said run) an ``execute`` that does what
    starting in the triggerer does: defer to its ``start_trigger_args`` trigger, to resume in their
    ``next_method``. The author's ``execute`` - missing (Airflow's "Override me.") or a stub - never runs,
    as it would not have in the triggerer."""

    def execute(context, **_sentinel):
        args = task.expand_start_trigger_args(context=context)
        if args is None:
            raise GuardError("task %s.%s asks to start in the triggerer but has no start_trigger_args"
                             % (task.dag_id, task.task_id))
        trigger = _import_string(args.trigger_cls)(**(args.trigger_kwargs or {}))
        LOG.info("failback guard: task %s.%s starts with its trigger %s, as in the triggerer", task.dag_id, task.task_id,
                 args.trigger_cls)
        task.defer(trigger=trigger, method_name=args.next_method, kwargs=args.next_kwargs, timeout=args.timeout)

    task.execute = execute


def _wrap_prepare_for_execution(cls):
    """Guard *cls*.prepare_for_execution (where it is defined), once."""
    original = cls.__dict__.get("prepare_for_execution")
    if original is None or getattr(original, "_failback_guard", False):
        return

    def prepare_for_execution(self, *args, **kwargs):
        if not _explicitly_guarded(self):
            guard_task(self)
        prepared = original(self, *args, **kwargs)
        if (getattr(prepared, "dag_id", None), getattr(prepared, "task_id", None)) in _STARTS_IN_TRIGGERER \
                and hasattr(prepared, "expand_start_trigger_args"):
            _start_with_trigger(prepared)
        return prepared

    prepare_for_execution._failback_guard = True
    prepare_for_execution.__doc__ = original.__doc__
    cls.prepare_for_execution = prepare_for_execution


def _guard_execution(task):
    """Airflow 3: put the guard where the task runner prepares a task, before anything of it.

    ``prepare_for_execution`` is called for every task that executes - classic, TaskFlow, mapped
    (before it is unmapped), retried, rescheduled, resumed after a deferral - before its templated
    fields are rendered and before ``pre_execute`` and ``execute``.  It is a method, so mapped
    arguments (``.expand(pre_execute=...)``, ``expand_kwargs``) cannot replace it.  Returns False
    where this Airflow has no task SDK (Airflow 2).
    """
    try:
        from airflow.sdk.bases.operator import BaseOperator
        from airflow.sdk.definitions.mappedoperator import MappedOperator
    except ImportError:
        return False
    for cls in (BaseOperator, MappedOperator, type(task), getattr(task, "operator_class", None)):
        if isinstance(cls, type) and hasattr(cls, "prepare_for_execution"):
            for klass in cls.__mro__:
                if "prepare_for_execution" in klass.__dict__:
                    _wrap_prepare_for_execution(klass)
                    break
    return True


def apply(task):
    """Install the guard on an Airflow task (operator or mapped operator).  Used by task_policy.

    Airflow 3: the guard runs when the task is prepared for execution (see _guard_execution),
    before its templates are rendered and before anything else of it.  A task that would start in
    the triggerer (``start_from_trigger``) starts in a worker instead, where the guard runs, and
    where it then defers to its start trigger (its ``execute``, if any, is not what runs).
    Airflow 2: the guard goes into the ``pre_execute`` hook.
    """
    if _explicitly_guarded(task):
        return task
    if getattr(task, "start_from_trigger", False):
        # The triggerer runs no guard: the task starts in a worker, where the guard decides first, and there
        # defers to its own start trigger (_start_with_trigger), so it runs as its author wrote it.
        task.start_from_trigger = False
        _STARTS_IN_TRIGGERER.add((getattr(task, "dag_id", None), getattr(task, "task_id", None)))
        LOG.info("failback guard: task %s.%s starts in a worker, not in the triggerer, so that the guard decides; "
                 "there it defers to its start trigger", getattr(task, "dag_id", None), getattr(task, "task_id", None))
    if _guard_execution(task):
        return task
    dag_id, task_id = getattr(task, "dag_id", None), getattr(task, "task_id", None)
    partial_kwargs = getattr(task, "partial_kwargs", None)
    if isinstance(partial_kwargs, dict):  # Airflow 2 MappedOperator: the hook reaches each expanded task
        partial_kwargs["pre_execute"] = guarded_hook(partial_kwargs.get("pre_execute"), dag_id, task_id)
    else:  # Airflow 2: wrap the bound method
        original = task.pre_execute
        if not getattr(original, "_failback_guard", False):
            task.pre_execute = guarded_hook(original, dag_id, task_id)
    return task


def task_policy(task):
    """Cluster policy entry point (see airflow_local_settings.py)."""
    apply(task)


# --------------------------------------------------------------------------- CLI


def _status():
    info = {ENV_MAP: os.environ.get(ENV_MAP)}
    try:
        info["installation"] = installation_name()
        source = current_source()
        info["fenced"] = _fence_reason(source)
        pmap = source.get()
        info.update(generation=pmap.generation, updated_at=pmap.updated_at, dags=len(pmap.dags),
                    owned=pmap.dags_of(info["installation"]), default=pmap.default)
        if isinstance(source, UrlSource):
            confirmed = source.confirmed_at()
            info.update(confirmed_at=confirmed, lease=lease_seconds(_env_float(ENV_TTL, DEFAULT_TTL)),
                        lease_age=round(time.time() - confirmed, 3) if confirmed is not None else None)
        return 0, info
    except GuardError as exc:
        info["error"] = str(exc)
        return 1, info


def fence(map_spec, reason):
    """Write the fence marker for a file map; returns its path."""
    path = os.environ.get(ENV_FENCE_FILE)
    if not path:
        if not map_spec or _is_url(map_spec):
            raise GuardError("fencing needs a file map or %s" % ENV_FENCE_FILE)
        path = FileSource(os.path.abspath(map_spec)).fence_path()
    placement.atomic_write(path, placement.fence_text(reason), mode=0o644)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="failback_guard", description="Inspect or fence the failback.airflow guard.")
    parser.add_argument("--map", help="map path or URL (default: $%s)" % ENV_MAP)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="print this installation's name, map generation and fence state as JSON")
    check = sub.add_parser("check", help="print the decision for a DAG as JSON (exit 0 run, 3 skip, 1 error)")
    check.add_argument("dag_id")
    check.add_argument("--due", help="decide for the run due at this time (ISO 8601), not for the DAG's owner")
    fencing = sub.add_parser("fence", help="fence this installation: every task fails until the current map is published")
    fencing.add_argument("--reason", default="installation (re)started; waiting for the controller to publish the map")
    args = parser.parse_args(argv)
    if args.map:
        os.environ[ENV_MAP] = args.map
    if args.command == "fence":
        try:
            print(fence(os.environ.get(ENV_MAP), args.reason))
        except (GuardError, OSError) as exc:
            print("failback_guard fence: %s" % exc, file=sys.stderr)
            return 1
        return 0
    if args.command == "status":
        code, info = _status()
        print(json.dumps(info, sort_keys=True))
        return code
    try:
        decision = evaluate(args.dag_id, due=args.due)
    except GuardError as exc:
        print(json.dumps({"decision": "error", "dag_id": args.dag_id, "reason": str(exc)}, sort_keys=True))
        return 1
    print(json.dumps(decision.as_dict(), sort_keys=True))
    return 0 if decision.runs else 3


if __name__ == "__main__":
    sys.exit(main())

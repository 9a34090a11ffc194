# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement rules of failback.airflow: the one source of truth.

A *DAG placement map* says which installation owns (really executes) each DAG.
This module parses, validates, changes and serialises such maps.  It is pure
Python with no Ansible import, because it runs in three places:

* the ``failback.airflow.dag_placement`` module and the filter plugins
  (imported as ``ansible_collections.failback.airflow.plugins.module_utils.placement``);
* the guard inside Airflow, where the placement role installs this very file
  as ``failback_placement.py`` next to ``failback_guard.py``;
* the benchmark and the tests.

Map format (YAML).  The flat form from the project's seed is always valid::

    dag_1: "server-1.tld"
    dag_2: "server-2.tld"

Metadata lives under one reserved key that can never be a DAG id (``@`` is not
allowed in Airflow DAG ids), so flat-form readers keep working::

    "@failback":
      generation: 4
      updated_at: "2026-11-21T10:00:00Z"
      updated_by: "alice@controller"
      default: "server-1.tld"      # optional owner of DAGs not listed
      handovers:                   # written by failovers: who owns the runs due before a move
        dag_1:
          - {at: "2026-11-21T10:00:00Z", from: "server-2.tld"}
    dag_1: "server-1.tld"

A DAG *run* belongs to the installation that owned its DAG when the run was due (its
``run_after``, the same on every installation for a scheduled interval): a move at time T gives
the new owner the runs due at or after T, while the old owner keeps (and finishes) the runs due
before T.  ``kept`` lists runs due after T that the old owner had already started when it
received the map; they stay with it.  Without ``handovers`` every run belongs to the current
owner.  A DAG's history holds at most MAX_HANDOVERS entries: when a new handover would exceed
it, the oldest ones are folded into a *floor* (``from: null``, always first): the runs they gave
away, due before the floor's time or kept by it, belong to nobody - forgetting history never
gives a run to another installation.

Python 3.8 compatible (it also runs as Ansible module_utils on targets).
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import re
import reprlib
import stat
import tempfile
import time
import unicodedata

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows; the rules still load there
    fcntl = None

try:
    import yaml

    HAS_YAML = True
    YAML_IMPORT_ERROR = None
    try:
        _BaseLoader = yaml.CSafeLoader
    except AttributeError:  # PyYAML without libyaml
        _BaseLoader = yaml.SafeLoader
except ImportError as _exc:  # pragma: no cover - exercised only where PyYAML is missing
    yaml = None
    HAS_YAML = False
    YAML_IMPORT_ERROR = _exc
    _BaseLoader = object


META_KEY = "@failback"
META_FIELDS = ("generation", "updated_at", "updated_by", "default", "handovers", "stage")
#: ``stage: revoke`` marks the first of two maps of one generation published to a fleet that pulls its map
#: from one authority: the runs that change owner belong to nobody in it (placement_plan.revoke_map).
STAGES = ("revoke",)
HANDOVER_FIELDS = ("at", "from", "kept")
MAX_HANDOVERS = 8   # per DAG (and for the default owner), the floor included: older ones are folded into it
MAX_KEPT = 100      # runs kept by the old owner in one handover
FLOOR_MAX_KEPT = MAX_KEPT * MAX_HANDOVERS  # runs of folded handovers that belong to nobody
#: Times in a map (handovers, kept runs) lie between these; the controller also refuses future ones.
EARLIEST_TIME = "1970-01-01T00:00:00Z"
LATEST_TIME = "9999-12-31T23:59:59Z"
#: How far ahead of the controller's clock a handover may lie (clock steps), in seconds.
FUTURE_TOLERANCE = 60
FENCE_FILE_NAME = "fence"
#: Stands for "every DAG the map does not list" (the default owner) in plans and change lists.
DEFAULT_KEY = "@default"
#: The earliest due time compared (runs due before it are not told apart).
_EPOCH = datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc)
#: The largest map anything accepts or writes: the guard, the module, the playbooks. It fits a
#: Kubernetes ConfigMap (at most 1 MiB with its metadata) and is about 30,000 DAGs.
MAX_MAP_BYTES = 1000000

# Airflow: KEY_REGEX = r"^[\w.-]+$" and ID_LEN = 250 (airflow.utils.helpers / models.base).
DAG_ID_MAX_LEN = 250
_DAG_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Installation names: inventory hostnames, DNS names or short labels.
NAME_MAX_LEN = 253
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?$")

_HEADER = (
    "# DAG placement map, managed by failback.airflow.\n"
    "# Flat form: 'dag_id: installation'. Change it with failover.yml or the\n"
    "# failback.airflow.dag_placement module so the generation keeps growing.\n"
)


class PlacementError(ValueError):
    """A map, a name or a requested change is invalid.  The message names the bad value."""


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def show(value):
    """A value for an error message: bounded in length and in the work it takes (never a whole value)."""
    return _REPR.repr(value)


_BUILTINS = (bool, int, float, str, bytes, list, tuple, dict, set, type(None))


def type_name(value):
    """The builtin type name of *value* (Ansible hands over tagged subclasses such as _AnsibleTaggedInt)."""
    return next((kind.__name__ for kind in type(value).__mro__ if kind in _BUILTINS), type(value).__name__)


def check_text(value, where):
    """Return *value* if it is text a map may carry (no control characters), else raise PlacementError."""
    if value is None:
        return value
    if not isinstance(value, str):
        raise PlacementError("%s %s must be a string" % (where, show(value)))
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs"):
            raise PlacementError("%s %s contains %s U+%04X: use printable text" % (
                where, show(value), "the control character" if category == "Cc" else "the unpaired surrogate", ord(char)))
    return value


def _require_yaml():
    if not HAS_YAML:
        raise PlacementError("PyYAML is required to read placement maps: %s" % (YAML_IMPORT_ERROR,))


# --------------------------------------------------------------------------- names


def check_dag_id(dag_id, where="DAG id"):
    """Return *dag_id* if it is a valid Airflow DAG id, else raise PlacementError."""
    if isinstance(dag_id, bool) or not isinstance(dag_id, str):
        raise PlacementError(
            "%s %s is of type %s, not a string: quote it in YAML (e.g. \"%s\": ...)"
            % (where, show(dag_id), type_name(dag_id), show(dag_id))
        )
    if not dag_id:
        raise PlacementError("%s is empty" % where)
    if len(dag_id) > DAG_ID_MAX_LEN:
        raise PlacementError("%s %r is longer than %d characters" % (where, dag_id[:40] + "...", DAG_ID_MAX_LEN))
    if not _DAG_ID_RE.match(dag_id):
        raise PlacementError(
            "%s %s is not a valid Airflow DAG id: allowed are letters, digits, '_', '.' and '-'" % (where, show(dag_id))
        )
    return dag_id


def check_installation_name(name, installations=None, where="installation name"):
    """Return *name* if it is a valid installation name (and known, when *installations* is given)."""
    if isinstance(name, bool) or not isinstance(name, str):
        raise PlacementError("%s %s is of type %s, not a string" % (where, show(name), type_name(name)))
    if not name.strip():
        raise PlacementError("%s is empty" % where)
    if len(name) > NAME_MAX_LEN:
        raise PlacementError("%s %r is longer than %d characters" % (where, name[:40] + "...", NAME_MAX_LEN))
    if not _NAME_RE.match(name):
        raise PlacementError(
            "%s %s is not valid: use letters, digits, '.', '-', '_' or ':' and start and end with a letter or digit"
            % (where, show(name))
        )
    if installations is not None and name not in installations:
        raise PlacementError(
            "%s %s is not a known installation; known: %s" % (where, show(name), ", ".join(sorted(installations)) or "(none)")
        )
    return name


def check_installations(installations):
    """Validate a list of known installation names and return it as a frozenset (None stays None)."""
    if installations is None:
        return None
    if isinstance(installations, str) or not hasattr(installations, "__iter__"):
        raise PlacementError("installations must be a list of names, got %s" % show(installations))
    names = []
    for name in installations:
        names.append(check_installation_name(name, where="known installation"))
    if len(set(names)) != len(names):
        dupes = sorted(n for n in set(names) if names.count(n) > 1)
        raise PlacementError("known installations list %s more than once" % ", ".join(dupes))
    return frozenset(names)


# --------------------------------------------------------------------------- the map


class PlacementMap(object):
    """An immutable DAG placement map: owners plus generation metadata."""

    __slots__ = ("dags", "generation", "updated_at", "updated_by", "default", "handovers", "stage")

    def __init__(self, dags=None, generation=0, updated_at=None, updated_by=None, default=None, handovers=None,
                 stage=None):
        object.__setattr__(self, "dags", dict(dags or {}))
        object.__setattr__(self, "generation", generation)
        object.__setattr__(self, "updated_at", updated_at)
        object.__setattr__(self, "updated_by", updated_by)
        object.__setattr__(self, "default", default)
        # {dag_id or DEFAULT_KEY: (Handover, ...)} oldest first
        object.__setattr__(self, "handovers", dict((k, tuple(v)) for k, v in (handovers or {}).items() if v))
        object.__setattr__(self, "stage", stage)

    def __setattr__(self, key, value):
        raise AttributeError("PlacementMap is immutable")

    def __eq__(self, other):
        if not isinstance(other, PlacementMap):
            return NotImplemented
        return self.to_data() == other.to_data()

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        return "PlacementMap(generation=%r, dags=%d, default=%r)" % (self.generation, len(self.dags), self.default)

    def owner(self, dag_id):
        """The installation that owns *dag_id*, or None when nobody does."""
        return self.dags.get(dag_id, self.default)

    def history(self, dag_id):
        """The handovers that decide who owns the older runs of *dag_id*, oldest first."""
        if dag_id in self.handovers:
            return self.handovers[dag_id]
        if dag_id in self.dags or dag_id == DEFAULT_KEY:
            return ()
        return self.handovers.get(DEFAULT_KEY, ())

    def owner_at(self, dag_id, due=None):
        """The installation that owns the run of *dag_id* due at *due* (None: the current owner).

        *due* is the run's ``run_after`` (a datetime, or an ISO 8601 string).
        """
        if due is None:
            return self.owner(dag_id)
        due = parse_time(due, "due time of the run")
        for handover in self.history(dag_id):
            if due < handover.at_time or due in handover.kept_times:
                return handover.source
        return self.owner(dag_id)

    def last_handover(self, dag_id):
        """The latest handover of *dag_id* (or of the default owner for an unlisted DAG), or None."""
        history = self.history(dag_id)
        return history[-1] if history else None

    def same_placement(self, other):
        """True when both maps place every DAG and every run identically (other metadata ignored)."""
        return self.dags == other.dags and self.default == other.default and self.handovers == other.handovers

    def installations(self):
        """Every installation named by this map."""
        names = set(owner for owner in self.dags.values() if owner is not None)
        if self.default is not None:
            names.add(self.default)
        return names

    def dags_of(self, installation):
        """Sorted DAG ids listed for *installation* (the default is not expanded)."""
        return sorted(d for d, o in self.dags.items() if o == installation)

    def replace(self, **changes):
        fields = dict(
            dags=self.dags,
            generation=self.generation,
            updated_at=self.updated_at,
            updated_by=self.updated_by,
            default=self.default,
            handovers=self.handovers,
            stage=self.stage,
        )
        fields.update(changes)
        return PlacementMap(**fields)

    def meta(self):
        """The metadata block as a dict (only fields that are set)."""
        meta = {"generation": self.generation}
        if self.updated_at is not None:
            meta["updated_at"] = self.updated_at
        if self.updated_by is not None:
            meta["updated_by"] = self.updated_by
        if self.default is not None:
            meta["default"] = self.default
        if self.handovers:
            meta["handovers"] = dict((key, [h.to_data() for h in history]) for key, history in self.handovers.items())
        if self.stage is not None:
            meta["stage"] = self.stage
        return meta

    def to_data(self):
        """Plain data (what YAML would load): the metadata key plus the flat entries."""
        data = {META_KEY: self.meta()}
        data.update(self.dags)
        return data


def parse_time(value, what="time", strict=False):
    """An aware UTC datetime from a datetime (naive counts as UTC) or an ISO 8601 string.

    *strict* (times written in a map, and failover_catchup_since): the time zone is required and
    the time must lie between EARLIEST_TIME and LATEST_TIME.
    """
    match = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
    shown = value.isoformat() if isinstance(value, datetime.datetime) else show(value)
    zone = None
    if isinstance(value, datetime.datetime):
        parsed = value
        zone = value.tzinfo
    elif match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        try:
            parsed = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                       int((fraction or "0").ljust(6, "0")), tzinfo=datetime.timezone.utc)
            if zone and zone not in ("Z", "z"):
                offset = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
                parsed -= offset if zone[0] == "+" else -offset
        except (ValueError, OverflowError):
            raise PlacementError("%s %s is not a date and time" % (what, shown))
    else:
        raise PlacementError(
            "%s %s is not a date and time: give it in ISO 8601 with a time zone, e.g. 2026-12-01T02:00:00Z"
            % (what, shown))
    if strict and not zone:
        raise PlacementError("%s %s has no time zone: give one, e.g. %sZ or %s+01:00"
                             % (what, shown, shown.rstrip("Zz"), shown.rstrip("Zz")))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        parsed = parsed.astimezone(datetime.timezone.utc)
    except (ValueError, OverflowError):
        raise PlacementError("%s %s is not a date and time between %s and %s" % (what, shown, EARLIEST_TIME, LATEST_TIME))
    if strict and not _EARLIEST <= parsed <= _LATEST:
        raise PlacementError("%s %s is out of range: times in a placement map lie between %s and %s"
                             % (what, shown, EARLIEST_TIME, LATEST_TIME))
    return parsed


def format_time(value):
    """The canonical text of a time in the map: UTC, 'Z', microseconds only when there are any."""
    value = parse_time(value)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ".%06d" % value.microsecond
    return text + "Z"


_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_EARLIEST = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_LATEST = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


class Handover(object):
    """A move of a DAG (or of the default owner) at time *at* away from installation *source*.

    Runs due before *at*, and the runs due at the times in *kept*, belong to *source*.  A
    *floor* has no source (None): it stands first in a history for the handovers that were
    folded into it, and the runs it covers belong to nobody.
    """

    __slots__ = ("at", "source", "kept", "at_time", "kept_times")

    def __init__(self, at, source, kept=()):
        object.__setattr__(self, "at", format_time(at))
        object.__setattr__(self, "source", source)
        kept_times = sorted(set(parse_time(k, "kept run") for k in kept))
        object.__setattr__(self, "kept", tuple(format_time(k) for k in kept_times))
        object.__setattr__(self, "at_time", parse_time(self.at))
        object.__setattr__(self, "kept_times", frozenset(kept_times))

    def __setattr__(self, key, value):
        raise AttributeError("Handover is immutable")

    def __eq__(self, other):
        return isinstance(other, Handover) and (self.at, self.source, self.kept) == (other.at, other.source, other.kept)

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self):
        return "Handover(at=%r, source=%r, kept=%d)" % (self.at, self.source, len(self.kept))

    @property
    def floor(self):
        return self.source is None

    def to_data(self):
        data = {"at": self.at, "from": self.source}
        if self.kept:
            data["kept"] = list(self.kept)
        return data


def capped(history):
    """*history* (oldest first) cut to MAX_HANDOVERS entries without giving any run to another owner.

    The oldest entries are folded into a floor at the time of the last one folded: the runs they
    gave their sources (due before that time, or kept) belong to nobody from now on, and every
    other run keeps its owner.  So forgetting history only ever revokes.
    """
    history = tuple(history)
    if len(history) <= MAX_HANDOVERS:
        return history
    folded = history[:len(history) - MAX_HANDOVERS + 1]
    at = folded[-1].at_time
    kept = sorted(set(k for handover in folded for k in handover.kept_times if k >= at))
    return (Handover(at, None, kept),) + history[len(folded):]


def _handovers_from_data(value, known, source):
    """Validate the ``handovers`` metadata: ``{dag_id or '@default': [{at, from, kept?}, ...]}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlacementError("%s: handovers must be a mapping of DAG id to a list of handovers, got %s"
                             % (source, type_name(value)))
    result = {}
    for key, history in value.items():
        if key != DEFAULT_KEY:
            check_dag_id(key, where="%s: handovers key" % source)
        where = "%s: handovers of %s" % (source, key)
        if not isinstance(history, list) or not history:
            raise PlacementError("%s must be a non-empty list of {at, from, kept}, got %s" % (where, show(history)))
        if len(history) > MAX_HANDOVERS:
            raise PlacementError("%s: %d entries, at most %d are kept" % (where, len(history), MAX_HANDOVERS))
        entries = []
        for position, entry in enumerate(history):
            if not isinstance(entry, dict) or "at" not in entry or "from" not in entry:
                raise PlacementError("%s: entry %s must be a mapping with 'at' and 'from'" % (where, show(entry)))
            unknown = sorted(str(k)[:60] for k in entry if k not in HANDOVER_FIELDS)
            if unknown:
                raise PlacementError("%s: unknown field(s) %s; allowed: %s" % (where, ", ".join(unknown), ", ".join(HANDOVER_FIELDS)))
            at = entry["at"]
            if isinstance(at, datetime.date) and not isinstance(at, datetime.datetime):
                raise PlacementError("%s: at %s needs a time of day" % (where, show(at)))
            kept = entry.get("kept") or []
            limit = FLOOR_MAX_KEPT if entry["from"] is None else MAX_KEPT
            if not isinstance(kept, list) or len(kept) > limit:
                raise PlacementError("%s: kept must be a list of at most %d run times, got %s" % (where, limit, show(kept)))
            if entry["from"] is None:
                if position:
                    raise PlacementError("%s: only the first entry may be a floor (from: null), entry %d is one"
                                         % (where, position + 1))
            else:
                check_installation_name(entry["from"], known, where="%s: from" % where)
            entries.append(Handover(parse_time(at, "%s: at" % where, strict=True), entry["from"],
                                    [parse_time(k, "%s: kept run" % where, strict=True) for k in kept]))
        for earlier, later in zip(entries, entries[1:]):
            if later.at_time < earlier.at_time:
                raise PlacementError("%s: handovers must be in time order (%s comes after %s)" % (where, later.at, earlier.at))
        result[key] = tuple(entries)
    return result


def check_times(pmap, now=None, source="placement map"):
    """Refuse a map whose handovers or kept runs lie in the future of *now* (the controller's clock).

    The collection writes a handover at the moment of the failover (or at an earlier
    failover_catchup_since), so a later one was edited by hand: published, it would give every
    run due before it to the installation it names, whoever owns the DAG.  FUTURE_TOLERANCE
    seconds are allowed for clock steps.  Returns *pmap*.
    """
    limit = parse_time(now or utc_now()) + datetime.timedelta(seconds=FUTURE_TOLERANCE)
    for key in sorted(pmap.handovers):
        for handover in pmap.handovers[key]:
            late = [t for t in [handover.at_time] + sorted(handover.kept_times) if t > limit]
            if late:
                now_text = format_time(limit - datetime.timedelta(seconds=FUTURE_TOLERANCE))
                what = "at" if late[0] == handover.at_time else "kept run"
                raise PlacementError(
                    "%s: handovers of %s: %s %s is in the future (now %s): a handover is written when DAGs move, so "
                    "this one was edited by hand; it would give %r runs of %s that are not its own. Remove it or give "
                    "the time of the move" % (source, key, what, format_time(late[0]), now_text, handover.source, key))
    return pmap


def validate_map(pmap, installations=None):
    """Check that every name used by *pmap* is a known installation (when a list is given)."""
    known = check_installations(installations)
    if known is None:
        return pmap
    for dag_id in sorted(pmap.dags):
        if pmap.dags[dag_id] is not None or pmap.stage != "revoke":
            check_installation_name(pmap.dags[dag_id], known, where="owner of DAG %r:" % dag_id)
    if pmap.default is not None:
        check_installation_name(pmap.default, known, where="default owner")
    return pmap


def from_data(data, installations=None, source="placement map"):
    """Build a validated PlacementMap from loaded YAML data."""
    if data is None:
        raise PlacementError(
            "%s is empty: expected a mapping of 'dag_id: installation' (write '{}' for a map that owns nothing)"
            % source
        )
    if not isinstance(data, dict):
        raise PlacementError(
            "%s must be a mapping of 'dag_id: installation', got a %s" % (source, type(data).__name__)
        )
    known = check_installations(installations)
    meta = data.get(META_KEY, {})
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise PlacementError("%s: %r must be a mapping, got a %s" % (source, META_KEY, type(meta).__name__))
    unknown = sorted(str(k)[:60] for k in meta if k not in META_FIELDS)
    if unknown:
        raise PlacementError(
            "%s: unknown %r field(s) %s; allowed: %s" % (source, META_KEY, ", ".join(unknown), ", ".join(META_FIELDS))
        )
    generation = meta.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise PlacementError("%s: generation %s must be a whole number >= 0" % (source, show(generation)))
    updated_at = meta.get("updated_at")
    if isinstance(updated_at, (datetime.datetime, datetime.date)):
        updated_at = updated_at.isoformat()
    for field, value in (("updated_at", updated_at), ("updated_by", meta.get("updated_by"))):
        if value is not None and not isinstance(value, str):
            raise PlacementError("%s: %s %s must be a string" % (source, field, show(value)))
        check_text(value, "%s: %s" % (source, field))
    default = meta.get("default")
    if default is not None:
        check_installation_name(default, known, where="%s: default owner" % source)
    handovers = _handovers_from_data(meta.get("handovers"), known, source)
    stage = meta.get("stage")
    if stage is not None and stage not in STAGES:
        raise PlacementError("%s: stage %s is not one of %s (or absent)" % (source, show(stage), ", ".join(STAGES)))

    dags = {}
    for key, value in data.items():
        if key == META_KEY:
            continue
        if isinstance(key, str) and key.startswith("@"):
            raise PlacementError("%s: key %s is reserved (only %r is allowed to start with '@')" % (source, show(key), META_KEY))
        check_dag_id(key, where="%s: key" % source)
        if value is None and stage == "revoke":
            dags[key] = None  # the revoke stage: nobody owns the DAG's runs from its last handover on
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PlacementError("%s: DAG %r has an empty installation name" % (source, key))
        if isinstance(value, bool) or not isinstance(value, str):
            raise PlacementError(
                "%s: DAG %r maps to %s (of type %s); the owner must be an installation name string"
                % (source, key, show(value), type_name(value))
            )
        check_installation_name(value, known, where="%s: owner of DAG %r" % (source, key))
        dags[key] = value
    return PlacementMap(dags, generation, updated_at, meta.get("updated_by"), default, handovers, stage)


# --------------------------------------------------------------------------- YAML in


class _DuplicateCheckingLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping_no_duplicates(loader, node, deep=False):
    loader.flatten_mapping(node)
    mapping = {}
    first_line = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            raise PlacementError("line %d: a mapping key must be a plain value, not a %s" % (line, type(key).__name__))
        if key in first_line:
            raise PlacementError(
                "duplicate key %s on line %d (first on line %d): each DAG may have one owner only"
                % (show(key), line, first_line[key])
            )
        first_line[key] = line
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


if HAS_YAML:
    _DuplicateCheckingLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
    )


def _refuse_anchors(text, source):
    """Anchors and aliases let a few bytes stand for an exponentially large value: refuse them."""
    if "&" not in text and "*" not in text:  # no anchor or alias can be in there (the usual case)
        return
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise PlacementError(
                "%s: YAML anchors and aliases (&name, *name) are not allowed in a placement map (line %d)"
                % (source, event.start_mark.line + 1))


def load_yaml(text, source="placement map"):
    """Load YAML text with duplicate-key detection; raise PlacementError with the location on errors.

    Texts over MAX_MAP_BYTES, anchors and aliases, and structures nested too deeply are refused.
    """
    _require_yaml()
    if isinstance(text, bytes):
        if len(text) > MAX_MAP_BYTES:
            raise PlacementError("%s is %d bytes, more than the limit of %d" % (source, len(text), MAX_MAP_BYTES))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlacementError("%s is not UTF-8 text: %s" % (source, exc))
    if type(text) is not str:  # pylint: disable=unidiomatic-typecheck
        text = str(text)  # libyaml takes exact str only (Ansible passes tagged str subclasses)
    if len(text) > MAX_MAP_BYTES // 4 and len(text.encode("utf-8")) > MAX_MAP_BYTES:
        raise PlacementError("%s is %d bytes, more than the limit of %d"
                             % (source, len(text.encode("utf-8")), MAX_MAP_BYTES))
    try:
        _refuse_anchors(text, source)
        documents = list(yaml.load_all(text, Loader=_DuplicateCheckingLoader))
    except PlacementError as exc:
        message = str(exc)
        raise PlacementError(message if message.startswith(source) else "%s: %s" % (source, message))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlacementError("%s is not valid YAML%s: %s" % (source, where, str(problem)[:200]))
    except RecursionError:
        raise PlacementError("%s is nested too deeply to be a placement map" % source)
    if len(documents) > 1:
        raise PlacementError("%s holds %d YAML documents; expected exactly one" % (source, len(documents)))
    return documents[0] if documents else None


def as_map(value, installations=None, source="placement map"):
    """A validated PlacementMap from a map given as YAML text, loaded data or a PlacementMap."""
    if isinstance(value, PlacementMap):
        return validate_map(value, installations)
    if isinstance(value, dict):
        return from_data(dict(value), installations, source)
    if isinstance(value, (str, bytes)):
        return parse_map(value, installations, source)
    raise PlacementError("%s must be YAML text or a mapping, got %s" % (source, type(value).__name__))


def parse_map(text, installations=None, source="placement map"):
    """Parse and validate map text (YAML) into a PlacementMap."""
    return from_data(load_yaml(text, source), installations, source)


# --------------------------------------------------------------------------- YAML out

_PLAIN_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML11_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|"
    r"null|Null|NULL|~|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\v": "\\v", "\f": "\\f", "\r": "\\r", "\x1b": "\\e"}


_PLAIN_QUOTED = re.compile(r'^[ !#-\[\]-~]*$')  # printable ASCII but '"' and '\\': nothing to escape


def _quote(value):
    """A double-quoted YAML scalar in plain ASCII: every other character as an escape, so that any
    text (control characters, line separators, non-ASCII) reads back exactly."""
    if _PLAIN_QUOTED.match(value):
        return '"%s"' % value
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:
            code = ord(char)
            out.append("\\x%02x" % code if code < 0x100 else "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code)
    return '"%s"' % "".join(out)


def _key(value):
    """A DAG id as a YAML key: plain when unambiguous, double-quoted otherwise."""
    if _PLAIN_SAFE.match(value) and not _YAML11_SPECIAL.match(value):
        return value
    return _quote(value)


def dump_map(pmap):
    """Serialise deterministically: header, metadata, then DAGs sorted by id, one per line.

    The text always reads back as the same map (see _quote); a map over MAX_MAP_BYTES, or metadata
    with control characters, is refused here, before anything could be written.
    """
    check_text(pmap.updated_at, "updated_at")
    check_text(pmap.updated_by, "updated_by")
    lines = ["---", _HEADER.rstrip("\n"), _quote(META_KEY) + ":"]
    lines.append("  generation: %d" % pmap.generation)
    if pmap.updated_at is not None:
        lines.append("  updated_at: %s" % _quote(pmap.updated_at))
    if pmap.updated_by is not None:
        lines.append("  updated_by: %s" % _quote(pmap.updated_by))
    if pmap.default is not None:
        lines.append("  default: %s" % _quote(pmap.default))
    if pmap.handovers:
        lines.append("  handovers:")
        for key in sorted(pmap.handovers):
            lines.append("    %s:" % _key(key))
            for handover in pmap.handovers[key]:
                kept = ""
                if handover.kept:
                    kept = ", kept: [%s]" % ", ".join(_quote(k) for k in handover.kept)
                lines.append("      - {at: %s, from: %s%s}" % (
                    _quote(handover.at), "null" if handover.floor else _quote(handover.source), kept))
    if pmap.stage is not None:
        lines.append("  stage: %s" % _quote(pmap.stage))
    for dag_id in sorted(pmap.dags):
        lines.append("%s: %s" % (_key(dag_id), "null" if pmap.dags[dag_id] is None else _quote(pmap.dags[dag_id])))
    text = "\n".join(lines) + "\n"
    size = len(text.encode("utf-8"))
    if size > MAX_MAP_BYTES:
        raise PlacementError(
            "the placement map would be %d bytes (%d DAGs), more than the limit of %d that every installation "
            "accepts (a Kubernetes ConfigMap holds at most 1 MiB); nothing was written" % (size, len(pmap.dags), MAX_MAP_BYTES))
    return text


# --------------------------------------------------------------------------- changes


def parse_dag_list(dags, what="the list of DAGs"):
    """A list, or a comma-separated string, of DAG ids as a sorted unique list (None stays None).

    Anything else (a mapping, a number, a list holding other things) is refused with a message
    that names the value and what is allowed.
    """
    if dags is None:
        return None
    if isinstance(dags, str):
        dags = [d.strip() for d in dags.split(",")]
    elif isinstance(dags, dict) or not isinstance(dags, (list, tuple)):
        raise PlacementError(
            "%s is %s (%s): give DAG ids as a comma-separated string (dag_a,dag_b) or a YAML list"
            % (what, show(dags), "a mapping" if isinstance(dags, dict) else "a number"
               if isinstance(dags, (int, float)) and not isinstance(dags, bool) else "of type %s" % type_name(dags)))
    result = set()
    for dag_id in dags:
        if isinstance(dag_id, str):
            dag_id = dag_id.strip()
        result.add(check_dag_id(dag_id, where="listed DAG"))
    if not result:
        raise PlacementError("%s is empty" % what)
    return sorted(result)


def assign(pmap, assignments, installations=None, remove=None, default=None, clear_default=False):
    """Return a map where each DAG in *assignments* is owned by the given installation.

    *remove* drops entries; *default* sets the default owner, *clear_default* removes it.
    Metadata is left as it is: call :func:`stamp` to bump the generation.
    """
    known = check_installations(installations)
    dags = dict(pmap.dags)
    for dag_id in sorted(assignments or {}):
        check_dag_id(dag_id, where="assigned DAG")
        dags[dag_id] = check_installation_name(assignments[dag_id], known, where="owner of assigned DAG %r" % dag_id)
    for dag_id in parse_dag_list(remove, "the DAGs to remove") or []:
        dags.pop(dag_id, None)
    new_default = pmap.default
    if clear_default:
        new_default = None
    elif default is not None:
        new_default = check_installation_name(default, known, where="default owner")
    return validate_map(pmap.replace(dags=dags, default=new_default), known)


def move(pmap, to, from_=None, dags=None, installations=None):
    """Move DAGs to installation *to*.

    * ``from_`` only: every DAG owned by *from_* (and the default, if it is *from_*).
    * ``dags`` (list or comma-separated string): those DAGs; with ``from_`` too, each must be owned
      by it or already by *to* (so that the same request can be run again, or resumed).

    Returns ``(new_map, moved)`` where *moved* maps each moved DAG id to ``(old_owner, to)``;
    the key ``@default`` stands for the default owner.
    """
    known = check_installations(installations)
    check_installation_name(to, known, where="failover target")
    if from_ is not None:
        check_installation_name(from_, known, where="failover source")
        if from_ == to:
            raise PlacementError("failover source and target are both %r; nothing would move" % to)
    listed = parse_dag_list(dags, "the list of DAGs to move")
    if from_ is None and listed is None:
        raise PlacementError("say what to move: a source installation, a list of DAGs, or both")

    new_dags = dict(pmap.dags)
    moved = {}
    new_default = pmap.default
    if listed is None:
        for dag_id in pmap.dags_of(from_):
            new_dags[dag_id] = to
            moved[dag_id] = (from_, to)
        if pmap.default == from_:
            new_default = to
            moved["@default"] = (from_, to)
    else:
        for dag_id in listed:
            current = pmap.owner(dag_id)
            if current is None:
                raise PlacementError("DAG %r is not in the placement map and there is no default owner" % dag_id)
            if from_ is not None and current not in (from_, to):
                raise PlacementError("DAG %r is owned by %r, not by the failover source %r" % (dag_id, current, from_))
            if current != to or dag_id not in pmap.dags:
                new_dags[dag_id] = to
                if current != to:
                    moved[dag_id] = (current, to)
    return validate_map(pmap.replace(dags=new_dags, default=new_default), known), moved


def changes(before, after):
    """DAGs whose owner differs between two maps: ``{dag_id: (old, new)}`` (None = no owner)."""
    result = {}
    for dag_id in sorted(set(before.dags) | set(after.dags)):
        old, new = before.owner(dag_id), after.owner(dag_id)
        if old != new:
            result[dag_id] = (old, new)
    if before.default != after.default:
        result["@default"] = (before.default, after.default)
    return result


def owns_any(pmap, installation):
    """Whether *installation* owns at least one DAG in *pmap* (listed, or as its default owner)."""
    return pmap.default == installation or installation in pmap.dags.values()


def installation_changes(before, after, installation, dag_ids=()):
    """What *installation* loses and gains between map *before* and map *after*.

    Candidates are *dag_ids* (for example the DAGs the installation parses, or the DAGs of its
    running task pods) plus every DAG either map lists; owners come from the entries or, for DAGs
    a map does not list, from its default owner.  Returns a dict:

    * ``lost`` / ``gained``: sorted DAG ids it owned before and not after / after and not before;
    * ``lost_default`` / ``gained_default``: whether it stops / starts being the default owner
      (every DAG no map lists moves with it);
    * ``owns_any_after``: whether it owns anything at all after.
    """
    check_installation_name(installation, where="installation")
    lost, gained = [], []
    for dag_id in sorted(set(dag_ids) | set(before.dags) | set(after.dags)):
        old, new = before.owner(dag_id), after.owner(dag_id)
        if old == installation and new != installation:
            lost.append(dag_id)
        elif new == installation and old != installation:
            gained.append(dag_id)
    return {
        "lost": lost,
        "gained": gained,
        "lost_default": before.default == installation and after.default != installation,
        "gained_default": after.default == installation and before.default != installation,
        "owns_any_after": owns_any(after, installation),
    }


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _whose(handover):
    """Who the runs due before *handover* belong to, for people."""
    return "nobody (the floor of its history)" if handover.floor else repr(handover.source)


def _record_handovers(before, after, at):
    """*after*'s handovers plus one for every DAG (and the default) whose owner changed since *before*."""
    handovers = dict(after.handovers)
    for key, (old, _new) in changes(before, after).items():
        if old is None:
            continue  # nobody owned it: no older runs to keep
        history = handovers.get(key)
        if history is None:
            # An unlisted DAG that gets its own entry keeps the default owner's history.
            history = before.history(key) if key != DEFAULT_KEY else ()
        if history and history[-1].at_time > parse_time(at):
            raise PlacementError(
                "the handover of %s at %s would come before its previous handover (%s): runs due before that belong to %s"
                % (key, format_time(at), history[-1].at, _whose(history[-1])))
        handovers[key] = capped(tuple(history) + (Handover(at, old),))
    return handovers


def stamp(before, after, updated_by=None, now=None, cut=None):
    """Give *after* the next generation and who/when metadata if its placement differs from *before*.

    Every DAG whose owner changes gets a handover at *cut* (default: now): its runs due before it
    stay with the old owner.  When nothing moved, *before* is returned unchanged so that a re-run
    changes nothing.
    """
    now = now or utc_now()
    if cut is not None and parse_time(cut, "handover time") > parse_time(now):
        raise PlacementError("handover time %s is in the future (now %s): it must be a time that has passed"
                             % (format_time(cut), now))
    after = after.replace(handovers=_record_handovers(before, after, cut or now))
    if before.same_placement(after):
        return before
    return after.replace(
        generation=max(before.generation, after.generation) + 1,
        updated_at=now,
        updated_by=updated_by,
    )


def keep_runs(pmap, kept, source):
    """A map where the runs in *kept* (``{dag_id: [due, ...]}``) stay with *source*, their old owner.

    Each DAG's latest handover must be away from *source*; runs due before it are *source*'s
    anyway and are not added.  Call :func:`stamp` afterwards.
    """
    handovers = dict(pmap.handovers)
    for dag_id in sorted(kept):
        last = pmap.last_handover(dag_id)
        if last is None or last.source != source:
            raise PlacementError("DAG %r has no handover away from %r to keep runs for" % (dag_id, source))
        dues = [parse_time(d, "kept run of %r" % dag_id) for d in kept[dag_id]]
        add = [d for d in dues if d >= last.at_time and d not in last.kept_times]
        if not add:
            continue
        if len(last.kept_times) + len(add) > MAX_KEPT:
            raise PlacementError("DAG %r: more than %d runs to keep for %r" % (dag_id, MAX_KEPT, source))
        # The DAG's own copy of its history: kept runs are runs of this DAG only.
        handovers[dag_id] = pmap.history(dag_id)[:-1] + (Handover(last.at, source, list(last.kept_times) + add),)
    return pmap.replace(handovers=handovers)


def hold_until(pmap, dag_ids, source, until):
    """A map where the runs of *dag_ids* moved away from *source* that are due before *until* stay with it.

    For a failover whose old owner did not confirm the revoke (unreachable, partitioned): its guard
    may decide with the map before until its lease is certainly over (*until*), so the runs due
    before then are its own - it runs them if it is alive, and nobody runs them twice. Each key's
    latest handover away from *source* that lies before *until* is moved forward to it (its kept
    runs before *until* are folded in).  Call :func:`stamp` afterwards.
    """
    until_time = parse_time(until, "lease end")
    handovers = dict(pmap.handovers)
    for key in sorted(dag_ids):
        history = pmap.history(key)
        if not history or history[-1].source != source or history[-1].at_time >= until_time:
            continue
        last = history[-1]
        handovers[key] = history[:-1] + (Handover(until_time, source, [k for k in last.kept_times if k >= until_time]),)
    return pmap.replace(handovers=handovers)


def move_cut(pmap, dag_ids, source, since):
    """A map where the latest handover of each of *dag_ids* away from *source* is moved back to *since*.

    For a forced failover whose old owner is known to have run nothing since *since*: the new
    owner gets the runs due from then on.  A handover already at or before *since* is left alone;
    *since* must come after the handover before it.  Call :func:`stamp` afterwards.
    """
    since_time = parse_time(since, "failover_catchup_since")
    handovers = dict(pmap.handovers)
    for dag_id in sorted(dag_ids):
        history = pmap.history(dag_id)
        if not history or history[-1].source != source:
            continue
        last = history[-1]
        if since_time >= last.at_time:
            continue
        if len(history) > 1 and since_time <= history[-2].at_time:
            raise PlacementError(
                "failover_catchup_since %s is not after the previous handover of %s (%s): runs due before that belong "
                "to %s" % (format_time(since_time), dag_id, history[-2].at, _whose(history[-2])))
        handovers[dag_id] = history[:-1] + (Handover(since_time, source, [k for k in last.kept_times if k >= since_time]),)
    return pmap.replace(handovers=handovers)


def check_publish(current, new):
    """Refuse to let *new* replace *current* when it would go back in time.

    Returns True when a write is needed, False when the target already holds *new*.
    """
    if current is None:
        return True
    if new.generation < current.generation:
        raise PlacementError(
            "refusing to replace placement map generation %d with older generation %d"
            % (current.generation, new.generation)
        )
    if new.generation == current.generation:
        if new.same_placement(current) and new.stage == current.stage:
            return current.to_data() != new.to_data()
        if current.stage == "revoke" and new.stage is None:
            # The grant that follows the revoke stage of the same generation: only the runs the
            # revoke stage gave to nobody may change owner.
            conflict = _revoke_conflict(current, new)
            if conflict:
                raise PlacementError(
                    "refusing to grant placement map generation %d over its revoke stage: %s" % (new.generation, conflict))
            return True
        if new.stage == "revoke" and current.stage is None:
            raise PlacementError(
                "refusing to replace placement map generation %d with its revoke stage: that generation was "
                "granted already" % new.generation)
        if new.generation > 0:
            raise PlacementError(
                "placement map generation %d already exists with a different placement; "
                "maps of the same generation must be identical (was the map changed by hand?)" % new.generation
            )
    return True


def _revoke_conflict(revoke, grant):
    """The first run the revoke stage gives to an installation and the grant to another, described; or None."""
    keys = sorted(set(revoke.dags) | set(grant.dags) | set(revoke.handovers) | set(grant.handovers) - {DEFAULT_KEY})
    for key in keys + [DEFAULT_KEY]:
        times = set()
        for pmap in (revoke, grant):
            for handover in pmap.history(key):
                times.add(handover.at_time)
                times.update(handover.kept_times)
        points = [_EPOCH] + [p for t in sorted(times) for p in (t, t + datetime.timedelta(microseconds=1))]
        for point in points:
            owner = revoke.owner_at(key, point)
            if owner is not None and owner != grant.owner_at(key, point):
                return "the run of %s due %s stays with %r in the revoke stage and would go to %r" % (
                    "the DAGs no map lists" if key == DEFAULT_KEY else key, format_time(point), owner,
                    grant.owner_at(key, point))
    return None


# --------------------------------------------------------------------------- decisions


RUN = "run"
SKIP = "skip"


def decide(pmap, dag_id, installation, due=None):
    """Decide whether *installation* may execute tasks of *dag_id*: returns ``(decision, owner, reason)``.

    With *due* (the run's ``run_after``) the owner of that run decides: see PlacementMap.owner_at.
    """
    owner = pmap.owner_at(dag_id, due)
    current = pmap.owner(dag_id)
    if owner is None and current is not None:
        return SKIP, None, ("the run due %s of DAG %r is older than the handover history the placement map keeps of it "
                            "(its floor is at %s): it runs nowhere" % (format_time(due), dag_id, pmap.history(dag_id)[0].at))
    if owner is None and pmap.stage == "revoke":
        return SKIP, None, ("DAG %r changes owner in placement map generation %d: its runs wait for the new owner "
                            "(revoke stage)" % (dag_id, pmap.generation))
    if owner is None:
        return SKIP, None, "DAG %r is not in the placement map and the map has no default owner" % dag_id
    if owner != current:
        handover = pmap.last_handover(dag_id)
        run = "the run due %s" % format_time(due)
        if owner == installation:
            return RUN, owner, "%s of DAG %r belongs to %r (DAG moved to %r at %s)" % (
                run, dag_id, installation, current, handover.at)
        return SKIP, owner, "%s of DAG %r belongs to %r (DAG moved to %r at %s), this installation is %r" % (
            run, dag_id, owner, current, handover.at, installation)
    if owner == installation:
        return RUN, owner, "installation %r owns DAG %r" % (installation, dag_id)
    return SKIP, owner, "DAG %r is owned by %r, this installation is %r" % (dag_id, owner, installation)


# --------------------------------------------------------------------------- files


_KINDS = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _kind(mode):
    return next((name for test, name in _KINDS if test(mode)), "special file")


def read_text(path, what="placement map", follow_symlinks=True, limit=MAX_MAP_BYTES):
    """Return the text of *path*, or None when it does not exist.

    Anything but a regular file (a directory, a FIFO that would block the reader, a device) is
    refused at once, as is a file over *limit* bytes.  A symbolic link is followed, or refused
    when not *follow_symlinks* (files the controller writes for itself: journal, lock).
    *what* names the file in messages.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise PlacementError("cannot read %s %s: it is a symbolic link; this file is never read or written "
                                 "through a link: remove the link" % (what, path))
        raise PlacementError("cannot read %s %s: %s" % (what, path, exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PlacementError("cannot read %s %s: it is a %s, not a regular file%s" % (
                what, path, _kind(st.st_mode), " (a symbolic link to a file is followed)" if follow_symlinks else ""))
        if st.st_size > limit:
            raise PlacementError("%s %s is %d bytes, more than the limit of %d" % (what, path, st.st_size, limit))
        handle = os.fdopen(fd, "rb")
        fd = None
        with handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise PlacementError("cannot read %s %s: %s" % (what, path, exc.strerror))
    finally:
        if fd is not None:
            os.close(fd)
    if len(data) > limit:
        raise PlacementError("%s %s is more than %d bytes" % (what, path, limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlacementError("%s %s is not UTF-8 text: %s" % (what, path, exc))


def read_map_file(path, installations=None):
    """Read and validate a map file; return None when it does not exist."""
    text = read_text(path)
    if text is None:
        return None
    return parse_map(text, installations, source="placement map %s" % path)


def atomic_write(path, text, mode=None, uid=None, gid=None, prepare=None, follow_symlinks=False):
    """Write *text* to *path* atomically: temp file in the same directory, fsync, rename, fsync dir.

    Readers see either the old or the new content, never a mix.  *mode* defaults to the mode of
    the file being replaced, or 0644 for a new file.  The temporary file is created 0600 and gets
    its owner (*uid*/*gid*, ``None`` keeps the current one) and *mode* before the rename, so the
    path never shows a file with other permissions than the ones asked for.  *prepare(tmp_path)*,
    when given, runs on the temporary file before the rename (e.g. to set more attributes); if it
    fails, nothing was replaced.  A symbolic link at *path* is replaced by the file, unless
    *follow_symlinks*: then its target is replaced and the link stays (placement maps).
    """
    path = os.path.realpath(path) if follow_symlinks else os.path.abspath(path)
    directory = os.path.dirname(path)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            mode = 0o644
    data = text.encode("utf-8") if not isinstance(text, bytes) else text
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fchmod(handle.fileno(), mode)
        if prepare is not None:
            prepare(tmp)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory):
    """Flush a directory entry change (rename, unlink) to disk; best effort."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# --------------------------------------------------------------------------- publishing


def fence_text(reason, now=None):
    """Content of a fence marker: when and why the installation was fenced."""
    return "fenced at %s: %s\n" % (now or utc_now(), " ".join(str(reason).split())[:500] or "(no reason given)")


def guard_cache_name(url):
    """The file in a guard's map cache directory that holds what it last read from *url* (an http(s) or
    ``s3://`` map): a JSON object ``{"body", "checked_at", "ok_at", "etag", "last_modified"}``, epoch
    seconds of the installation's clock. The guard writes it after each request; a failover writes
    the revoke stage there on a reachable old owner (module placement_guard_cache)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".json"


def guard_cache_dir_problem(directory, uid=None):
    """Why *directory* cannot hold a guard's map cache, or None: it must be a directory (not a link) that
    nobody but its owner may write, and, with *uid*, owned by that user (the guard passes its own)."""
    try:
        st = os.lstat(directory)
    except OSError as exc:
        return "the guard's cache directory %s cannot be read (%s): run site.yml with this version of the collection" % (
            directory, exc.strerror)
    if not stat.S_ISDIR(st.st_mode):
        return "the guard's cache directory %s is not a directory (a link or a file): the guard would not use it" % directory
    if st.st_mode & 0o022:
        return "the guard's cache directory %s may be written by others (mode %04o): the guard would not use it" % (
            directory, st.st_mode & 0o7777)
    if uid is not None and st.st_uid != uid:
        return "the guard's cache directory %s belongs to uid %d, not to the guard's uid %d" % (directory, st.st_uid, uid)
    return None


def guard_cache_entry(text, now):
    """A cache entry for :func:`guard_cache_name`: *text* confirmed at the authority at *now*."""
    return {"body": text, "checked_at": now, "ok_at": now, "etag": None, "last_modified": None}


class DirectoryLock(object):
    """An exclusive lock on a directory (``flock`` on the directory itself, so nothing is created).

    Writers of a map take it around read-compare-write; readers need no lock (writes are renames).
    Waits at most *timeout* seconds, then raises PlacementError.
    """

    def __init__(self, directory, timeout=30.0):
        self.directory = directory
        self.timeout = timeout
        self._fd = None

    def __enter__(self):
        if fcntl is None:  # pragma: no cover
            raise PlacementError("locking %s needs fcntl (a POSIX system)" % self.directory)
        try:
            self._fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as exc:
            raise PlacementError("cannot open directory %s: %s" % (self.directory, exc.strerror))
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    os.close(self._fd)
                    self._fd = None
                    raise PlacementError("cannot lock directory %s within %s s: %s" % (
                        self.directory, self.timeout, "another writer holds it" if exc.errno in (errno.EAGAIN, errno.EACCES)
                        else exc.strerror))
                time.sleep(0.02)

    def __exit__(self, *exc):
        os.close(self._fd)  # closing the descriptor releases the lock
        self._fd = None


def read_fence(path):
    """The fence marker's text, or None when there is none."""
    try:
        with open(path, "r") as handle:
            return handle.read(2000).strip() or "(no reason given)"
    except FileNotFoundError:
        return None
    except OSError as exc:
        return "fence marker %s exists but cannot be read (%s)" % (path, exc.strerror)


def publish_file(path, new=None, installations=None, expect_generation=False, lift_fence=False, fence_reason=None,
                 mode=None, uid=None, gid=None, prepare=None, check_mode=False, lock_timeout=30.0):
    """Publish map *new* to the file *path* in one step: compare-and-swap under a directory lock.

    Under the lock: read what the file holds, refuse to go back in generation (check_publish),
    optionally require the file to be at *expect_generation* (``None`` = no file; used for the
    controller's own map, so a change made since it was read is never overwritten), write
    atomically if needed, then remove the fence marker next to it (*lift_fence*) or write one
    (*fence_reason*).  The directory must exist.  With *new* None nothing is written but the fence.
    *mode* None keeps the mode of the file replaced (0644 for a new one).

    A file that is not a valid map (the guard fails closed on it) counts as no map and is replaced.

    Returns a dict: ``before`` and ``after`` (PlacementMap or None), ``written``, ``fenced_before``
    and ``fenced`` (the fence text or None), ``fence_changed`` and ``invalid`` (why the file held
    no valid map, or None).
    """
    path = os.path.realpath(path)
    directory = os.path.dirname(path)
    fence_path = os.path.join(directory, FENCE_FILE_NAME)
    if not os.path.isdir(directory):
        raise PlacementError("directory %s of the placement map does not exist" % directory)
    with DirectoryLock(directory, lock_timeout):
        text = read_text(path)
        before, invalid = None, None
        if text is not None:
            try:
                before = parse_map(text, source="placement map %s" % path)
            except PlacementError as exc:  # the guard fails closed on it: it runs nothing, so replace it
                invalid = str(exc)
        if expect_generation is not False:
            held = before.generation if before is not None else None
            if held != expect_generation:
                raise PlacementError(
                    "placement map %s is at generation %s, expected %s: it changed since it was read; nothing was "
                    "written, run again" % (path, "none" if held is None else held,
                                            "none" if expect_generation is None else expect_generation))
        written = False
        after = before
        if new is not None:
            validate_map(new, installations)
            new_text = dump_map(new)
            if check_publish(before, new):
                written = True
                after = new
                if not check_mode:
                    atomic_write(path, new_text, mode=mode, uid=uid, gid=gid, prepare=prepare, follow_symlinks=True)
        fenced_before = read_fence(fence_path)
        fenced = fenced_before
        if fence_reason is not None:
            fenced = fenced_before or fence_text(fence_reason).strip()
            if fenced_before is None and not check_mode:
                atomic_write(fence_path, fence_text(fence_reason), mode=0o644, uid=uid, gid=gid)
        elif lift_fence and fenced_before is not None:
            fenced = None
            if not check_mode:
                os.unlink(fence_path)
                fsync_dir(directory)
    return dict(before=before, after=after, written=written, fenced_before=fenced_before, fenced=fenced,
                fence_changed=fenced != fenced_before, invalid=invalid)

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
    dag_1: "server-1.tld"

Python 3.8 compatible (it also runs as Ansible module_utils on targets).
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import tempfile

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
META_FIELDS = ("generation", "updated_at", "updated_by", "default")
FENCE_FILE_NAME = "fence"

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


def _require_yaml():
    if not HAS_YAML:
        raise PlacementError("PyYAML is required to read placement maps: %s" % (YAML_IMPORT_ERROR,))


# --------------------------------------------------------------------------- names


def check_dag_id(dag_id, where="DAG id"):
    """Return *dag_id* if it is a valid Airflow DAG id, else raise PlacementError."""
    if isinstance(dag_id, bool) or not isinstance(dag_id, str):
        raise PlacementError(
            "%s %r is of type %s, not a string: quote it in YAML (e.g. \"%s\": ...)"
            % (where, dag_id, type(dag_id).__name__, dag_id)
        )
    if not dag_id:
        raise PlacementError("%s is empty" % where)
    if len(dag_id) > DAG_ID_MAX_LEN:
        raise PlacementError("%s %r is longer than %d characters" % (where, dag_id[:40] + "...", DAG_ID_MAX_LEN))
    if not _DAG_ID_RE.match(dag_id):
        raise PlacementError(
            "%s %r is not a valid Airflow DAG id: allowed are letters, digits, '_', '.' and '-'" % (where, dag_id)
        )
    return dag_id


def check_installation_name(name, installations=None, where="installation name"):
    """Return *name* if it is a valid installation name (and known, when *installations* is given)."""
    if isinstance(name, bool) or not isinstance(name, str):
        raise PlacementError("%s %r is of type %s, not a string" % (where, name, type(name).__name__))
    if not name.strip():
        raise PlacementError("%s is empty" % where)
    if len(name) > NAME_MAX_LEN:
        raise PlacementError("%s %r is longer than %d characters" % (where, name[:40] + "...", NAME_MAX_LEN))
    if not _NAME_RE.match(name):
        raise PlacementError(
            "%s %r is not valid: use letters, digits, '.', '-', '_' or ':' and start and end with a letter or digit"
            % (where, name)
        )
    if installations is not None and name not in installations:
        raise PlacementError(
            "%s %r is not a known installation; known: %s" % (where, name, ", ".join(sorted(installations)) or "(none)")
        )
    return name


def check_installations(installations):
    """Validate a list of known installation names and return it as a frozenset (None stays None)."""
    if installations is None:
        return None
    if isinstance(installations, str) or not hasattr(installations, "__iter__"):
        raise PlacementError("installations must be a list of names, got %r" % (installations,))
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

    __slots__ = ("dags", "generation", "updated_at", "updated_by", "default")

    def __init__(self, dags=None, generation=0, updated_at=None, updated_by=None, default=None):
        object.__setattr__(self, "dags", dict(dags or {}))
        object.__setattr__(self, "generation", generation)
        object.__setattr__(self, "updated_at", updated_at)
        object.__setattr__(self, "updated_by", updated_by)
        object.__setattr__(self, "default", default)

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

    def same_placement(self, other):
        """True when both maps place every DAG identically (metadata ignored)."""
        return self.dags == other.dags and self.default == other.default

    def installations(self):
        """Every installation named by this map."""
        names = set(self.dags.values())
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
        return meta

    def to_data(self):
        """Plain data (what YAML would load): the metadata key plus the flat entries."""
        data = {META_KEY: self.meta()}
        data.update(self.dags)
        return data


def validate_map(pmap, installations=None):
    """Check that every name used by *pmap* is a known installation (when a list is given)."""
    known = check_installations(installations)
    if known is None:
        return pmap
    for dag_id in sorted(pmap.dags):
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
    unknown = sorted(str(k) for k in meta if k not in META_FIELDS)
    if unknown:
        raise PlacementError(
            "%s: unknown %r field(s) %s; allowed: %s" % (source, META_KEY, ", ".join(unknown), ", ".join(META_FIELDS))
        )
    generation = meta.get("generation", 0)
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise PlacementError("%s: generation %r must be a whole number >= 0" % (source, generation))
    updated_at = meta.get("updated_at")
    if isinstance(updated_at, (datetime.datetime, datetime.date)):
        updated_at = updated_at.isoformat()
    for field, value in (("updated_at", updated_at), ("updated_by", meta.get("updated_by"))):
        if value is not None and not isinstance(value, str):
            raise PlacementError("%s: %s %r must be a string" % (source, field, value))
    default = meta.get("default")
    if default is not None:
        check_installation_name(default, known, where="%s: default owner" % source)

    dags = {}
    for key, value in data.items():
        if key == META_KEY:
            continue
        if isinstance(key, str) and key.startswith("@"):
            raise PlacementError("%s: key %r is reserved (only %r is allowed to start with '@')" % (source, key, META_KEY))
        check_dag_id(key, where="%s: key" % source)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PlacementError("%s: DAG %r has an empty installation name" % (source, key))
        if isinstance(value, bool) or not isinstance(value, str):
            raise PlacementError(
                "%s: DAG %r maps to %r (of type %s); the owner must be an installation name string"
                % (source, key, value, type(value).__name__)
            )
        check_installation_name(value, known, where="%s: owner of DAG %r" % (source, key))
        dags[key] = value
    return PlacementMap(dags, generation, updated_at, meta.get("updated_by"), default)


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
                "duplicate key %r on line %d (first on line %d): each DAG may have one owner only"
                % (key, line, first_line[key])
            )
        first_line[key] = line
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


if HAS_YAML:
    _DuplicateCheckingLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
    )


def load_yaml(text, source="placement map"):
    """Load YAML text with duplicate-key detection; raise PlacementError with the location on errors."""
    _require_yaml()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlacementError("%s is not UTF-8 text: %s" % (source, exc))
    if type(text) is not str:  # pylint: disable=unidiomatic-typecheck
        text = str(text)  # libyaml takes exact str only (Ansible passes tagged str subclasses)
    try:
        documents = list(yaml.load_all(text, Loader=_DuplicateCheckingLoader))
    except PlacementError as exc:
        raise PlacementError("%s: %s" % (source, exc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PlacementError("%s is not valid YAML%s: %s" % (source, where, problem))
    if len(documents) > 1:
        raise PlacementError("%s holds %d YAML documents; expected exactly one" % (source, len(documents)))
    return documents[0] if documents else None


def parse_map(text, installations=None, source="placement map"):
    """Parse and validate map text (YAML) into a PlacementMap."""
    return from_data(load_yaml(text, source), installations, source)


# --------------------------------------------------------------------------- YAML out

_PLAIN_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML11_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|"
    r"null|Null|NULL|~|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$"
)


def _quote(value):
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def _key(value):
    """A DAG id as a YAML key: plain when unambiguous, double-quoted otherwise."""
    if _PLAIN_SAFE.match(value) and not _YAML11_SPECIAL.match(value):
        return value
    return _quote(value)


def dump_map(pmap):
    """Serialise deterministically: header, metadata, then DAGs sorted by id, one per line."""
    lines = [_HEADER.rstrip("\n"), _quote(META_KEY) + ":"]
    lines.append("  generation: %d" % pmap.generation)
    if pmap.updated_at is not None:
        lines.append("  updated_at: %s" % _quote(pmap.updated_at))
    if pmap.updated_by is not None:
        lines.append("  updated_by: %s" % _quote(pmap.updated_by))
    if pmap.default is not None:
        lines.append("  default: %s" % _quote(pmap.default))
    for dag_id in sorted(pmap.dags):
        lines.append("%s: %s" % (_key(dag_id), _quote(pmap.dags[dag_id])))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- changes


def _split_dags(dags):
    """Accept a list or a comma-separated string of DAG ids; return a sorted unique list."""
    if dags is None:
        return None
    if isinstance(dags, str):
        dags = [d.strip() for d in dags.split(",")]
    result = set()
    for dag_id in dags:
        if isinstance(dag_id, str):
            dag_id = dag_id.strip()
        result.add(check_dag_id(dag_id, where="listed DAG"))
    if not result:
        raise PlacementError("the list of DAGs is empty")
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
    for dag_id in _split_dags(remove) or []:
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
    * ``dags`` (list or comma-separated string): those DAGs; with ``from_`` too, each must be owned by it.

    Returns ``(new_map, moved)`` where *moved* maps each moved DAG id to ``(old_owner, to)``;
    the key ``@default`` stands for the default owner.
    """
    known = check_installations(installations)
    check_installation_name(to, known, where="failover target")
    if from_ is not None:
        check_installation_name(from_, known, where="failover source")
        if from_ == to:
            raise PlacementError("failover source and target are both %r; nothing would move" % to)
    listed = _split_dags(dags)
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
            if from_ is not None and current != from_:
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


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(before, after, updated_by=None, now=None):
    """Give *after* the next generation and who/when metadata if its placement differs from *before*.

    When nothing moved, *before* is returned unchanged so that a re-run changes nothing.
    """
    if before.same_placement(after):
        return before
    return after.replace(
        generation=max(before.generation, after.generation) + 1,
        updated_at=now or utc_now(),
        updated_by=updated_by,
    )


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
        if new.same_placement(current):
            return current.to_data() != new.to_data()
        if new.generation > 0:
            raise PlacementError(
                "placement map generation %d already exists with a different placement; "
                "maps of the same generation must be identical (was the map changed by hand?)" % new.generation
            )
    return True


# --------------------------------------------------------------------------- decisions


RUN = "run"
SKIP = "skip"


def decide(pmap, dag_id, installation):
    """Decide whether *installation* may execute tasks of *dag_id*: returns ``(decision, owner, reason)``."""
    owner = pmap.owner(dag_id)
    if owner is None:
        return SKIP, None, "DAG %r is not in the placement map and the map has no default owner" % dag_id
    if owner == installation:
        return RUN, owner, "installation %r owns DAG %r" % (installation, dag_id)
    return SKIP, owner, "DAG %r is owned by %r, this installation is %r" % (dag_id, owner, installation)


# --------------------------------------------------------------------------- files


def read_text(path):
    """Return the text of *path*, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise PlacementError("cannot read placement map %s: %s" % (path, exc.strerror))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlacementError("placement map %s is not UTF-8 text: %s" % (path, exc))


def read_map_file(path, installations=None):
    """Read and validate a map file; return None when it does not exist."""
    text = read_text(path)
    if text is None:
        return None
    return parse_map(text, installations, source="placement map %s" % path)


def atomic_write(path, text, mode=None, uid=None, gid=None):
    """Write *text* to *path* atomically: temp file in the same directory, fsync, rename, fsync dir.

    Readers see either the old or the new content, never a mix.  *mode* defaults to the mode of
    the file being replaced, or 0644 for a new file.  The temporary file is created 0600 and gets
    its owner (*uid*/*gid*, ``None`` keeps the current one) and *mode* before the rename, so the
    path never shows a file with other permissions than the ones asked for.
    """
    directory = os.path.dirname(os.path.abspath(path))
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

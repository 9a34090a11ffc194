# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DAG bundle rules of failback.airflow: the fleet's ``airflow_dag_bundles`` setting.

Pure Python, no Ansible import, so every rule is unit-tested directly.  Used by the
``dag_bundle_config`` filter, which the airflow_server and airflow_kubernetes roles turn into
Airflow's ``[dag_processor] dag_bundle_config_list``.

One entry per bundle, the same list for every installation of the fleet::

    - name: dags                       # Airflow's bundle name (runs record it with the version)
      repo_url: https://git.example.com/data/dags.git
      tracking_ref: main               # branch, tag or commit (default main)
      subdir: dags                     # optional: the DAGs' folder inside the repository
      refresh_interval: 60             # optional: seconds between fetches (Airflow's default: 300)
      conn_id: git_dags                # optional: a `git` connection with the token or SSH key
    - name: dags-folder
      type: local                      # the plain DAG folder (/opt/airflow/dags), not versioned

Credentials never go into this setting: a URL with a user name and password or token in it is
refused, the token or key belongs in the connection named by ``conn_id`` (a credential file).
The error messages name the bad entry and what is allowed.
"""

from __future__ import annotations

import posixpath
import re

from urllib.parse import urlsplit

GIT_CLASS = "airflow.providers.git.bundles.git.GitDagBundle"
LOCAL_CLASS = "airflow.dag_processing.bundles.local.LocalDagBundle"
TYPES = ("git", "local")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
CONN_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
# A branch, tag or commit: git's check-ref-format rules that matter here (no spaces, no '..',
# no control characters, no ':?*[\\~^').
REF_RE = re.compile(r"^(?!.*\.\.)(?!/)(?!.*//)(?!.*/$)(?!.*\.lock$)[^\s~^:?*\[\\\x00-\x1f\x7f]{1,250}$")
URL_SCHEMES = ("https", "http", "ssh", "git", "file")
SCP_RE = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9_.-]+:(?!//).+$")
KEYS = {
    "git": ("name", "type", "repo_url", "tracking_ref", "subdir", "refresh_interval", "conn_id", "submodules"),
    "local": ("name", "type", "path", "refresh_interval"),
}
DEFAULT_REF = "main"


class BundleError(ValueError):
    """Invalid ``airflow_dag_bundles`` entry; the message names the entry and what is allowed."""


def _where(index, entry):
    name = entry.get("name") if isinstance(entry, dict) else None
    return "airflow_dag_bundles[%d]%s" % (index, " (%s)" % name if isinstance(name, str) and name else "")


def local_repo_path(repo_url):
    """The path of a repository on the machine itself (``file://`` URL or absolute path), or None."""
    if not isinstance(repo_url, str):
        return None
    if repo_url.startswith("/"):
        return posixpath.normpath(repo_url)
    if repo_url.startswith("file://"):
        path = repo_url[len("file://"):]
        return posixpath.normpath(path) if path.startswith("/") else None
    return None


def _check_url(where, url):
    """Refuse a URL git or the Git provider cannot use, or one that carries a credential."""
    if not isinstance(url, str) or not url.strip() or url != url.strip() or any(c.isspace() for c in url):
        raise BundleError("%s: repo_url must be a non-empty URL without spaces, got %r" % (where, _redacted(url)))
    if url.startswith("file://") or url.startswith("/"):
        if local_repo_path(url) is None or ".." in url.split("/"):
            raise BundleError("%s: repo_url %r: a local repository needs an absolute path without '..' "
                              "(file:///srv/git/dags.git)" % (where, url))
        return
    if SCP_RE.match(url):
        return  # git@host:org/repo.git - the SSH key is in the connection
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        raise BundleError("%s: repo_url %r is not a Git URL: use %s://host/path, user@host:path or "
                          "file:///path" % (where, _redacted(url), "|".join(URL_SCHEMES)))
    if parts.password is not None or (parts.username and parts.scheme in ("https", "http")):
        raise BundleError("%s: repo_url %s carries a credential; put the token or key in the git connection "
                          "named by conn_id (airflow_credentials_connections), never in the URL" % (where, _redacted(url)))


def _redacted(url):
    """*url* without anything between ``://`` and ``@`` (a user name and token)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", url) if isinstance(url, str) else url


def _check_relative(where, key, value):
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value \
            or any(part in ("..", "") for part in value.rstrip("/").split("/")) or any(c.isspace() for c in value):
        raise BundleError("%s: %s must be a relative path inside the repository without '..', got %r"
                          % (where, key, value))


def _interval(where, value):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        else:
            raise BundleError("%s: refresh_interval must be a whole number of seconds, got %r" % (where, value))
    if value < 0 or value > 86400:
        raise BundleError("%s: refresh_interval must be between 0 and 86400 seconds, got %d" % (where, value))
    return value


def _bool(where, key, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise BundleError("%s: %s must be true or false, got %r" % (where, key, value))


def _one(index, entry, dags_folder, connections):
    where = _where(index, entry)
    if not isinstance(entry, dict):
        raise BundleError("%s must be a mapping with at least 'name', got %r" % (where, type(entry).__name__))
    kind = entry.get("type", "git")
    if kind not in TYPES:
        raise BundleError("%s: type must be one of %s, got %r" % (where, ", ".join(TYPES), kind))
    unknown = sorted(str(k) for k in entry if k not in KEYS[kind])
    if unknown:
        raise BundleError("%s: unknown key(s) %s for a %s bundle; allowed: %s"
                          % (where, ", ".join(unknown), kind, ", ".join(KEYS[kind])))
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BundleError("%s: name must be 1-200 letters, digits, '_', '.' or '-' (not first), got %r" % (where, name))
    kwargs = {}
    if entry.get("refresh_interval") is not None:
        kwargs["refresh_interval"] = _interval(where, entry["refresh_interval"])
    if kind == "local":
        path = entry.get("path", dags_folder)
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise BundleError("%s: path must be an absolute path inside the containers without '..', got %r"
                              % (where, path))
        kwargs["path"] = posixpath.normpath(path)
        return {"name": name, "classpath": LOCAL_CLASS, "kwargs": kwargs}
    conn_id, url = entry.get("conn_id"), entry.get("repo_url")
    if conn_id is not None:
        if not isinstance(conn_id, str) or not CONN_ID_RE.match(conn_id):
            raise BundleError("%s: conn_id must be a connection id (letters, digits, '_', '.', '-'), got %r"
                              % (where, conn_id))
        if connections is not None and conn_id not in connections:
            raise BundleError("%s: conn_id %r is not in airflow_credentials_connections (known: %s); add a "
                              "connection of conn_type git with the token or SSH key"
                              % (where, conn_id, ", ".join(sorted(connections)) or "none"))
        kwargs["git_conn_id"] = conn_id
    if url is None and conn_id is None:
        raise BundleError("%s: a git bundle needs repo_url, or conn_id naming a git connection whose host is "
                          "the repository URL" % where)
    if url is not None:
        _check_url(where, url)
        kwargs["repo_url"] = url
    ref = entry.get("tracking_ref", DEFAULT_REF)
    if not isinstance(ref, str) or not REF_RE.match(ref):
        raise BundleError("%s: tracking_ref must be a branch, tag or commit name, got %r" % (where, ref))
    kwargs["tracking_ref"] = ref
    if entry.get("subdir") is not None:
        _check_relative(where, "subdir", entry["subdir"])
        kwargs["subdir"] = entry["subdir"].rstrip("/")
    if entry.get("submodules") is not None:
        kwargs["submodules"] = _bool(where, "submodules", entry["submodules"])
    return {"name": name, "classpath": GIT_CLASS, "kwargs": kwargs}


def config_list(bundles, dags_folder="/opt/airflow/dags", connections=None, secrets_backend="local"):
    """Airflow's ``dag_bundle_config_list`` (a list of ``{name, classpath, kwargs}``) for *bundles*.

    *bundles* empty or None gives ``[]``: Airflow's own default, the DAG folder as one bundle.
    *connections*: the connection ids a ``conn_id`` may name (None: not checked). They are checked
    only with the ``local`` *secrets_backend*: another backend holds the connections itself.
    """
    if secrets_backend != "local":
        connections = None
    if bundles is None or bundles == "":
        return []
    if not isinstance(bundles, list):
        raise BundleError("airflow_dag_bundles must be a list of bundles, got %s" % type(bundles).__name__)
    result, seen = [], {}
    for index, entry in enumerate(bundles):
        bundle = _one(index, entry, dags_folder, connections)
        key = bundle["name"].lower()
        if key in seen:
            raise BundleError("%s: the name %r is already used by airflow_dag_bundles[%d]; bundle names must be unique"
                              % (_where(index, entry), bundle["name"], seen[key]))
        seen[key] = index
        result.append(bundle)
    return result


def local_repos(bundles):
    """Sorted paths of the repositories on the machine itself (``file://`` or absolute repo_url).

    The airflow_server role mounts each read-only at the same path and trusts it in git's
    ``safe.directory`` (the containers' user does not own it).
    """
    found = set()
    for bundle in config_list(bundles):
        path = local_repo_path(bundle["kwargs"].get("repo_url"))
        if path:
            found.add(path)
    return sorted(found)

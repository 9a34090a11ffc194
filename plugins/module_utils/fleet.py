# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet status: who owns what, and every way the fleet has drifted from the controller's map.

Two halves, both plain data:

* :func:`read_installation` asks one installation's Airflow through its REST API (health, version,
  the DAGs it parses and whether they are paused, import errors, the latest run of each DAG, and
  the task instances that executed recently with the guard's records);
* :func:`assess` takes the controller's map and what every installation holds and answers (the
  map's generation and fence from the placement role, the Airflow data above) and returns the
  report: one row per installation, one per DAG, and the **findings**, each a named drift with a
  severity (:data:`FINDINGS`).  :func:`render_text` and :func:`render_html` print it.

No Ansible import: the modules ``airflow_status_info`` and ``fleet_status`` call this, and
``benchmarks/status_bench.py`` measures it.
"""

from __future__ import annotations

import datetime
import html
import json

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, catchup, placement

#: Severity order, most severe first.
SEVERITIES = ("critical", "error", "warning")

#: Every finding: its severity and what it means (docs/status.md's table is this one).
FINDINGS = {
    "leak": ("critical", "a task of a run this installation does not own executed here"),
    "unreachable": ("critical", "the installation's placement map cannot be read"),
    "ahead": ("critical", "the installation holds a newer map generation than the controller (an old copy of the map?)"),
    "fenced": ("error", "the installation is fenced: every guarded task fails until the map is published"),
    "behind": ("error", "the installation holds an older map generation than the controller"),
    "unhealthy": ("error", "an Airflow component is not healthy"),
    "api_unreadable": ("error", "the installation's Airflow REST API does not answer"),
    "unmapped_dag": ("error", "a deployed DAG is in no map entry and there is no default owner: it runs nowhere"),
    "paused_on_owner": ("error", "the DAG is paused on its owner: it runs nowhere"),
    "owner_does_not_parse": ("error", "the owner does not parse the DAG: it runs nowhere"),
    "version_differs": ("error", "a failover's new owner parses a moved DAG at another bundle version than its old owner"),
    "dag_file_broken": ("error", "a failover's new owner fails to import a moved DAG's file: it would run an old version"),
    "unknown_dag": ("warning", "a map entry names a DAG that no installation parses (a typo?)"),
    "dag_sets_differ": ("warning", "the installations do not parse the same DAGs"),
    "import_errors": ("warning", "DAG files fail to import"),
    "files_differ": ("warning", "credential or guard files differ from what site.yml would write"),
    "authority_unreadable": ("critical", "the map's authority (airflow_placement_source) cannot be read: a guard that "
                                         "cannot read it either fails closed once its lease is over"),
    "authority_ahead": ("critical", "the authority holds a newer map generation than the controller"),
    "authority_behind": ("error", "the authority holds an older map generation than the controller: every guard "
                                  "decides with it"),
    "watcher_stale": ("warning", "the automatic failover is armed but its watcher has not read the fleet for more than "
                                 "three of its intervals (is its service running?)"),
    "authority_revoke_stage": ("error", "the authority holds a revoke stage: a publish or failover stopped between "
                                        "revoke and grant, and the runs that change owner run nowhere until it is "
                                        "run again"),
}

#: How far back the executed task instances are read for leaks (seconds).
DEFAULT_WINDOW = 86400


def _sort(findings):
    """Most severe first, then by code and subject (the order of every report)."""
    order = dict((s, i) for i, s in enumerate(SEVERITIES))
    findings.sort(key=lambda f: (order[f["severity"]], f["code"], f["subject"]))


def _finding(code, subject, detail):
    severity, meaning = FINDINGS[code]
    return {"code": code, "severity": severity, "subject": subject, "detail": detail, "meaning": meaning}


# ------------------------------------------------------------------ one installation's Airflow

class StatusClient(catchup.RunsClient):
    """The REST calls of the status: what one installation's Airflow knows."""

    def version(self):
        return self._call("GET", "/api/v2/version").get("version")

    def import_errors(self, limit):
        found, _more = self._pages("/api/v2/importErrors", "import_errors", {}, limit)
        return [{"filename": e.get("filename"), "bundle": e.get("bundle_name"),
                 "error": (e.get("stack_trace") or "").strip().splitlines()[-1:]} for e in found]

    def latest_runs(self, limit):
        """``{dag_id: run}``: the latest run of each DAG among the *limit* newest runs of the installation."""
        found, _more = self._pages("/api/v2/dags/~/dagRuns", "dag_runs", {"order_by": "-run_after"}, limit)
        latest = {}
        for run in found:
            latest.setdefault(run["dag_id"], run)
        return latest

    def executed_since(self, since, limit):
        """Task instances in an executed state of runs due since *since*, across every DAG."""
        found, _more = self._pages("/api/v2/dags/~/dagRuns/~/taskInstances", "task_instances",
                                   {"run_after_gte": placement.format_time(since),
                                    "state": sorted(catchup.EXECUTED_STATES)}, limit)
        return found

    def run_records(self, since):
        """``{ti_key: set(keys)}`` of the guard's records since *since*, across every DAG."""
        return self.guard_records("~", since)


def read_installation(client, components, now=None, window=DEFAULT_WINDOW, limit=1000):
    """What one installation's Airflow answers, as plain data (see the module airflow_status_info)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    since = now - datetime.timedelta(seconds=int(window))
    health = client.health()
    problems = airflow_api.health_problems(health, components)
    dags = client.dag_entries()
    latest = client.latest_runs(limit)
    runs = {}
    for dag_id, run in sorted(latest.items()):
        runs[dag_id] = {"run_id": run.get("dag_run_id"), "run_after": placement.format_time(run["run_after"]),
                        "state": run.get("state")}
    executed = client.executed_since(since, limit)
    records = client.run_records(since) if executed else {}
    tis = []
    for ti in executed:
        keys = sorted(records.get(catchup.ti_key(ti), set()))
        tis.append({"dag_id": ti.get("dag_id"), "run_id": ti.get("dag_run_id") or ti.get("run_id"),
                    "task_id": ti.get("task_id"), "map_index": ti.get("map_index"),
                    "run_after": placement.format_time(ti["run_after"]) if ti.get("run_after") else None,
                    "state": ti.get("state"), "operator": ti.get("operator"), "guard": keys})
    return {
        "version": client.version(),
        "health": dict((name, (health.get(name) or {}).get("status")) for name in sorted(health)
                       if isinstance(health.get(name), dict)),
        "problems": problems,
        # bundle and version: the DAG bundle it was parsed from and that bundle's version (a Git
        # commit for a GitDagBundle; None for a local folder); file: its path in the bundle.
        "dags": dict((dag_id, {"paused": bool(dag.get("is_paused")), "bundle": dag.get("bundle_name"),
                               "version": dag.get("bundle_version"), "file": dag.get("relative_fileloc")})
                     for dag_id, dag in sorted(dags.items())),
        "import_errors": client.import_errors(limit),
        "runs": runs,
        "executed": tis,
        "window_start": placement.format_time(since),
    }


# ------------------------------------------------------------------ the fleet

def _leaks(name, airflow, pmap):
    """Executed task instances of runs this installation does not own (per the controller's map)."""
    leaks = []
    for ti in airflow.get("executed") or []:
        if ti.get("operator") in catchup.NO_EXECUTION_OPERATORS or not ti.get("run_after"):
            continue
        if catchup.SKIP_KEY in ti["guard"] or catchup.ERROR_KEY in ti["guard"]:
            continue
        if not ti["guard"] and ti.get("state") != "success":
            continue  # failed or up for retry without a decision: killed before the guard ran (nothing ran)
        history = pmap.history(ti["dag_id"])
        if len(history) >= placement.MAX_HANDOVERS and placement.parse_time(ti["run_after"]) < history[0].at_time:
            continue  # due before the oldest handover the map remembers: who owned it then is not known
        owner = pmap.owner_at(ti["dag_id"], ti["run_after"])
        if owner == name or (owner is None and history and history[0].floor):
            continue  # its own, or a run of the history folded into the floor (its owner is not known any more)
        why = ("its guard let it run (it held another map)" if catchup.RUN_KEY in ti["guard"]
               else "no guard record (is the guard installed?)")
        leaks.append(dict(ti, owner=owner, why=why))
    return leaks


def _authority_findings(pmap, authority):
    """Findings about the authority the guards read (airflow_placement_source s3), from *authority*:
    ``{"url", "lease", "refresh", "generation", "stage", "error"}`` as status.yml read it."""
    url = authority.get("url") or "the authority"
    if authority.get("error"):
        return [_finding("authority_unreadable", url, authority["error"])]
    generation = authority.get("generation")
    if generation is None:
        return [_finding("authority_behind", url, "holds no placement map (never published; the guards fail closed)")]
    if generation > pmap.generation:
        return [_finding("authority_ahead", url, "holds generation %s, the controller's map is %s"
                         % (generation, pmap.generation))]
    found = []
    if generation < pmap.generation:
        found.append(_finding("authority_behind", url, "holds generation %s, the controller's map is %s"
                              % (generation, pmap.generation)))
    if authority.get("stage") == "revoke":
        found.append(_finding("authority_revoke_stage", url, "generation %s is a revoke stage; run publish.yml or "
                              "the failover again to grant" % generation))
    return found


def _watch_summary(watch, now):
    """What status shows of the automatic failover's watcher, from its state file's data *watch*."""
    decisions = watch.get("decisions") or []
    last = decisions[-1] if decisions else None
    updated = watch.get("updated_at")
    age = None if not isinstance(updated, (int, float)) else max(0.0, now - updated)
    return {"armed": list(watch.get("armed") or []), "age": age, "interval": watch.get("interval"),
            "last_decision": None if last is None else dict((k, v) for k, v in last.items() if k != "at_epoch"),
            "last_readings": watch.get("last_readings") or {}}


def assess(pmap, installations, files_differ=None, authority=None, watch=None, now=None):
    """The fleet report for the controller's map *pmap* (a PlacementMap) and *installations*.

    *installations*: ``{name: {"role": str, "held": {"reachable", "map" (its data or YAML text) or "generation", "fenced"
    (the reason, or a bool), "error"}, "airflow": read_installation() data, or None when not read, or
    {"error": msg}, "drift": the files a check-mode site.yml would change there, or None when not checked}}``
    - "held" is the placement role's fact airflow_placement_held.
    *files_differ*: ``{name: [file, ...]}`` found some other way (added to each "drift"); a name that
    is not an installation, or files that are not a list of paths, are refused (never dropped).
    *authority*: what the fleet's authority holds, when the guards read the map from one
    (:func:`_authority_findings`), or None. *watch*: the automatic failover watcher's state file
    (extensions/eda/plugins/event_source/fleet_watch.py), or None when there is none; *now* (epoch
    seconds) to judge its age.
    """
    for name, files in sorted((files_differ or {}).items(), key=lambda item: str(item[0])):
        if name not in installations:
            raise placement.PlacementError("files_differ names %s, which is not an installation; installations: %s"
                                           % (placement.show(name), ", ".join(sorted(installations)) or "(none)"))
        if isinstance(files, str) or not isinstance(files, (list, tuple)) or not all(isinstance(f, str) for f in files):
            raise placement.PlacementError("files_differ of %s must be a list of file paths, got %s"
                                           % (name, placement.show(files)))
    findings, rows = [], []
    parsed_by = {}
    read = {}
    for name in sorted(installations):
        info = installations[name] or {}
        held = dict(info.get("held") or {})
        if held.get("map") is not None and held.get("generation") is None:
            try:
                source = "the map %s holds" % name
                held["generation"] = (placement.parse_map(held["map"], source=source) if isinstance(held["map"], str)
                                      else placement.from_data(held["map"], source=source)).generation
            except placement.PlacementError as exc:
                held.update(reachable=False, error=str(exc))
        if held.get("fenced") and not held.get("fence_reason") and not isinstance(held["fenced"], bool):
            held["fence_reason"] = str(held["fenced"])
        airflow = info.get("airflow")
        row = {"installation": name, "role": info.get("role") or "", "reachable": bool(held.get("reachable")),
               "generation": held.get("generation"), "controller_generation": pmap.generation,
               "fenced": bool(held.get("fenced")), "fence_reason": held.get("fence_reason"),
               "owns": len(pmap.dags_of(name)), "default_owner": pmap.default == name,
               "health": {}, "parses": None, "import_errors": None, "version": None, "api": "not read"}
        if not held.get("reachable"):
            findings.append(_finding("unreachable", name, held.get("error") or "its map cannot be read"))
        else:
            generation = held.get("generation")
            if generation is None:
                findings.append(_finding("behind", name, "holds no placement map (never published)"))
            elif generation < pmap.generation:
                findings.append(_finding("behind", name, "holds generation %s, the controller's map is %s"
                                         % (generation, pmap.generation)))
            elif generation > pmap.generation:
                findings.append(_finding("ahead", name, "holds generation %s, the controller's map is %s"
                                         % (generation, pmap.generation)))
            if held.get("fenced"):
                findings.append(_finding("fenced", name, held.get("fence_reason") or "fenced"))
        if isinstance(airflow, dict) and airflow.get("error"):
            row["api"] = "error"
            findings.append(_finding("api_unreadable", name, airflow["error"]))
        elif isinstance(airflow, dict):
            row.update(api="ok", health=airflow.get("health") or {}, parses=len(airflow.get("dags") or {}),
                       import_errors=len(airflow.get("import_errors") or []), version=airflow.get("version"))
            read[name] = airflow
            for component, reason in sorted((airflow.get("problems") or {}).items()):
                findings.append(_finding("unhealthy", name, "%s: %s" % (component, reason)))
            if airflow.get("import_errors"):
                files = sorted(set(e.get("filename") or "?" for e in airflow["import_errors"]))
                findings.append(_finding("import_errors", name, "%d file(s): %s" % (len(files), ", ".join(files))))
            for dag_id in airflow.get("dags") or {}:
                parsed_by.setdefault(dag_id, []).append(name)
            for leak in _leaks(name, airflow, pmap):
                findings.append(_finding("leak", "%s on %s" % (leak["dag_id"], name),
                                         "%s %s (due %s, owner %s) %s: %s" % (
                                             leak["run_id"], leak["task_id"], leak["run_after"], leak["owner"],
                                             leak["state"], leak["why"])))
        for changed in sorted(set((files_differ or {}).get(name) or []) | set(info.get("drift") or [])):
            findings.append(_finding("files_differ", name, changed))
        rows.append(row)

    dag_rows = []
    for dag_id in sorted(set(parsed_by) | set(pmap.dags)):
        owner = pmap.owner(dag_id)
        row = {"dag_id": dag_id, "owner": owner, "listed": dag_id in pmap.dags,
               "parsed_by": sorted(parsed_by.get(dag_id, [])), "paused": {}, "last_run": {}}
        for name, airflow in sorted(read.items()):
            dag = (airflow.get("dags") or {}).get(dag_id)
            if dag is not None:
                row["paused"][name] = dag["paused"]
            run = (airflow.get("runs") or {}).get(dag_id)
            if run is not None:
                row["last_run"][name] = run
        if owner is None:
            findings.append(_finding("unmapped_dag", dag_id, "parsed by %s; add it to the map or set a default owner"
                                     % ", ".join(row["parsed_by"])))
        elif not row["parsed_by"] and read:
            findings.append(_finding("unknown_dag", dag_id, "the map gives it to %s; no installation that was read parses it"
                                     % owner))
        elif owner in read and dag_id not in (read[owner].get("dags") or {}):
            findings.append(_finding("owner_does_not_parse", dag_id, "%s owns it and does not parse it (parsed by %s)"
                                     % (owner, ", ".join(row["parsed_by"]) or "none")))
        elif row["paused"].get(owner):
            findings.append(_finding("paused_on_owner", dag_id, "paused on %s, its owner" % owner))
        dag_rows.append(row)

    if len(read) > 1:
        union = set(parsed_by)
        for name, airflow in sorted(read.items()):
            missing = sorted(union - set(airflow.get("dags") or {}))
            if missing:
                findings.append(_finding("dag_sets_differ", name, "does not parse %d DAG(s) others do: %s"
                                         % (len(missing), ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))))

    if authority is not None:
        findings.extend(_authority_findings(pmap, authority))
    watched = None
    if watch:
        watched = _watch_summary(watch, now if now is not None else datetime.datetime.now(datetime.timezone.utc).timestamp())
        interval = watched["interval"] if isinstance(watched["interval"], (int, float)) else 10
        if watched["armed"] and (watched["age"] is None or watched["age"] > 3 * interval):
            findings.append(_finding("watcher_stale", ", ".join(watched["armed"]), "last read %s" % (
                "never" if watched["age"] is None else "%d s ago" % watched["age"])))
    _sort(findings)
    counts = dict((s, sum(1 for f in findings if f["severity"] == s)) for s in SEVERITIES)
    return {"generation": pmap.generation, "updated_at": pmap.updated_at, "updated_by": pmap.updated_by,
            "default": pmap.default, "installations": rows, "dags": dag_rows, "findings": findings,
            "counts": counts, "healthy": not findings, "authority": authority, "watch": watched}


#: Findings that stop a failover before anything changes (unless the health check is skipped): a
#: moved DAG that its new owner does not parse would run nowhere after the move, one whose file
#: fails to import there or that it parses at another bundle version than its old owner would run
#: other code than before, and a new owner whose REST API does not answer cannot be asked.
PREFLIGHT_STOP = ("owner_does_not_parse", "api_unreadable", "version_differs", "dag_file_broken")


def _gained(moved, target):
    """The keys of *moved* that go to *target*: a list of DAG ids (and ``@default``), or the
    placement_failover plan's ``{key: {"from": old, "to": new}}`` (a resumed failover can also
    hold moves to other installations)."""
    if isinstance(moved, dict):
        return set(k for k, v in moved.items() if not isinstance(v, dict) or v.get("to") in (None, target))
    return set(moved or [])


def _old_owners(moved, gained):
    """``{dag_id: old owner or None}`` of the *gained* DAG ids (:func:`_gained` without ``@default``;
    None when the plan does not say, as with a plain list of DAG ids)."""
    if isinstance(moved, dict):
        return dict((k, v.get("from") if isinstance(v, dict) else None) for k, v in moved.items() if k in gained)
    return dict((k, None) for k in gained)


def _parsed(answer, dag_id):
    """The DAG's entry in what an installation answered, or None (not read, no answer, not parsed)."""
    dag = ((answer or {}).get("dags") or {}).get(dag_id) if isinstance(answer, dict) else None
    return dag if isinstance(dag, dict) else None


def _version_text(dag):
    return "bundle %s at version %s" % (dag.get("bundle") or "?", dag.get("version") or "none (not versioned)")


def _broken_file(target, airflow, dag_id, sources):
    """``dag_file_broken`` for *dag_id* when the new owner fails to import its file, or None.

    Listed there, it would run its last good version; not listed (Airflow 3.3 marks the DAGs of a
    file that fails to import stale), its file is known from an old owner in *sources* that parses it.
    """
    dag, what = _parsed(airflow, dag_id), "its file %s (bundle %s)"
    if dag is None:
        known = [(name, _parsed(answer, dag_id)) for name, answer in sorted((sources or {}).items()) if name != target]
        known = [(name, entry) for name, entry in known if entry is not None]
        if not known:
            return None  # owner_does_not_parse says so
        what = "%%s, its file on %s (bundle %%s), and so does not list it" % known[0][0]
        dag = known[0][1]
    for error in airflow.get("import_errors") or []:
        if dag.get("file") and error.get("filename") == dag["file"] and error.get("bundle") in (None, dag.get("bundle")):
            return _finding("dag_file_broken", dag_id, "%s fails to import %s: %s" % (
                target, what % (dag["file"], dag.get("bundle") or "?"), " ".join(error.get("error") or []) or "import error"))
    return None


def _code_findings(target, airflow, old_owners, sources):
    """The moved DAGs' code on the new owner: ``(findings, notes)``.

    A moved DAG whose file the new owner fails to import is ``dag_file_broken`` (:func:`_broken_file`).
    One the new owner parses at another bundle or bundle version than its old owner (read into
    *sources*, ``{name: read_installation() data, {"error": msg} or None}``) is ``version_differs``.
    An old owner that was not read or did not answer is a note: the versions are compared only where
    both answered.  *sources* None: no comparison, no note.
    """
    findings, notes = [], []
    for dag_id, old in sorted(old_owners.items()):
        broken = _broken_file(target, airflow, dag_id, sources)
        if broken:
            findings.append(broken)
        dag = _parsed(airflow, dag_id)
        if sources is None or dag is None:
            continue
        for name in [old] if old else sorted(sources):
            if name == target:
                continue
            source, theirs = sources.get(name), _parsed(sources.get(name), dag_id)
            if source is None:
                notes.append("%s was not read: bundle versions not compared with it" % name)
            elif source.get("error"):
                notes.append("%s did not answer (%s): bundle versions not compared with it" % (name, source["error"]))
            elif theirs is None:
                notes.append("%s does not parse %s: its bundle version not compared" % (name, dag_id))
            elif (theirs.get("bundle"), theirs.get("version")) != (dag.get("bundle"), dag.get("version")):
                findings.append(_finding("version_differs", dag_id, "%s parses it from %s, %s (its old owner) from %s"
                                         % (target, _version_text(dag), name, _version_text(theirs))))
    return findings, sorted(set(notes))


def preflight(after, target, moved, airflow, role="", sources=None):
    """Drift on the new owner of a failover, before anything changes (``failover.yml``).

    *after*: the planned map (a PlacementMap, its data or YAML text); *target*: the new owner;
    *moved*: what moves (see :func:`_gained`; ``@default`` is the default owner role); *airflow*:
    what its Airflow answers (:func:`read_installation`, or ``{"error": msg}``, or None when not
    read, e.g. a cluster); *sources*: the same for the old owners of what moves, ``{name: answer}``
    (None: not compared).  The same rules as :func:`assess`, asked of the target alone against the
    planned map, keeping what concerns the target and the DAGs it will own: the DAGs it parses,
    paused DAGs it keeps owning, import errors, recent leaks, unhealthy components.  Left out:
    what the failover itself changes (its generation and fence, the gained DAGs' pause state,
    which the grant sets) and what needs the other installations.  DAGs that come with the default
    owner role are not checked for parsing (only the installations' own DAG lists name them).
    The moved DAGs' code is checked too (:func:`_code_findings`): their files import on the new
    owner, at the same bundle version as on their old owner when it answered.
    Returns ``{"findings", "stop", "lines", "message", "note"}``: *stop* holds the findings of
    :data:`PREFLIGHT_STOP` that concern what moves, *message* says why the failover stops (or is
    None), *note* says when nothing was read.
    """
    if isinstance(after, (str, bytes)):
        after = placement.parse_map(after, source="the planned map")
    elif not isinstance(after, placement.PlacementMap):
        after = placement.from_data(dict(after or {}), source="the planned map")
    gained = _gained(moved, target)
    gains_default = placement.DEFAULT_KEY in gained
    gained.discard(placement.DEFAULT_KEY)
    if airflow is None:
        return {"findings": [], "stop": [], "lines": [], "message": None,
                "note": "%s: its Airflow was not read (its REST API is not known: airflow_installation_api)" % target}
    report = assess(after, {target: {"role": role, "airflow": airflow,
                                     "held": {"reachable": True, "generation": after.generation}}})
    parsed = set((airflow.get("dags") or {}) if not airflow.get("error") else ())
    by_default = set(d for d in parsed if d not in after.dags) if after.default == target else set()
    owned = set(after.dags_of(target)) | gained | by_default
    keep = []
    for finding in report["findings"]:
        if finding["code"] in ("unknown_dag", "behind", "ahead", "fenced", "dag_sets_differ", "unmapped_dag"):
            continue
        if finding["code"] == "paused_on_owner" and (finding["subject"] in gained
                                                     or (gains_default and finding["subject"] in by_default)):
            continue  # the grant unpauses it
        if finding["subject"] != target and finding["subject"] not in owned and " on %s" % target not in finding["subject"]:
            continue
        keep.append(finding)
    notes = []
    if not airflow.get("error"):
        # assess() calls a DAG that no installation it was given parses unknown_dag; here only the
        # new owner was read, and a gained DAG it does not parse would run nowhere.
        shown = set(f["subject"] for f in keep if f["code"] == "owner_does_not_parse")
        for dag_id in sorted(gained - parsed - shown):
            keep.append(_finding("owner_does_not_parse", dag_id, "%s would own it and does not parse it" % target))
        code, notes = _code_findings(target, airflow, _old_owners(moved, gained), sources)
        broken = set(f["subject"] for f in code if f["code"] == "dag_file_broken")
        # a DAG not listed because its file fails to import: the import error says why
        keep = [f for f in keep if not (f["code"] == "owner_does_not_parse" and f["subject"] in broken)] + code
    _sort(keep)
    stop = []
    if gained or gains_default:
        # owner_does_not_parse only for a DAG that moves to it (not one it already owned)
        stop = [f for f in keep if f["code"] in PREFLIGHT_STOP
                and (f["code"] != "owner_does_not_parse" or f["subject"] in gained)]
    message = None
    if stop:
        reasons = []
        missing = [f["subject"] for f in stop if f["code"] == "owner_does_not_parse"]
        if missing:
            reasons.append("%s does not parse %s: moved there, it would run nowhere" % (target, ", ".join(missing)))
        for f in stop:
            if f["code"] == "api_unreadable":
                reasons.append("%s's REST API does not answer (%s), so whether it parses the moved DAGs cannot be "
                               "checked" % (target, f["detail"]))
            elif f["code"] in ("version_differs", "dag_file_broken"):
                reasons.append("%s: %s" % (f["subject"], f["detail"]))
        message = "; ".join(reasons) + ". Nothing was changed."
    lines = ["%s %s %s: %s" % (f["severity"].upper(), f["code"], f["subject"], f["detail"]) for f in keep]
    return {"findings": keep, "stop": stop, "lines": lines, "message": message,
            "note": "; ".join(notes) if notes else None}


def failing(report, fail_on="warning"):
    """The findings at or above the severity *fail_on* (one of SEVERITIES)."""
    if fail_on not in SEVERITIES:
        raise placement.PlacementError("fail_on %s is not one of %s" % (placement.show(fail_on), ", ".join(SEVERITIES)))
    limit = SEVERITIES.index(fail_on)
    return [f for f in report["findings"] if SEVERITIES.index(f["severity"]) <= limit]


# ------------------------------------------------------------------ rendering

def _health_word(row):
    if row["api"] != "ok":
        return row["api"]
    bad = sorted(name for name, status in row["health"].items() if status != "healthy")
    return "healthy" if not bad else "unhealthy: " + ", ".join(bad)


def _table(headers, rows):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows)
    return [line.rstrip() for line in lines]


def _installation_cells(row):
    return [row["installation"], "yes" if row["reachable"] else "NO", _health_word(row),
            "%s/%s" % ("-" if row["generation"] is None else row["generation"], row["controller_generation"]),
            ("FENCED" if row["fenced"] else "no"), row["owns"], "-" if row["parses"] is None else row["parses"],
            "-" if row["import_errors"] is None else row["import_errors"], row["version"] or "-"]


INSTALLATION_HEADERS = ["installation", "reachable", "airflow", "generation", "fenced", "owns", "parses",
                        "import errors", "version"]
DAG_HEADERS = ["dag", "owner", "paused on owner", "paused elsewhere", "last run on owner"]


def _dag_cells(row):
    owner = row["owner"]
    paused_owner = row["paused"].get(owner)
    elsewhere = sorted(n for n, p in row["paused"].items() if n != owner and not p)
    run = row["last_run"].get(owner)
    return [row["dag_id"], owner or "NONE",
            "-" if paused_owner is None else ("PAUSED" if paused_owner else "no"),
            "-" if not [n for n in row["paused"] if n != owner] else
            ("not paused on " + ", ".join(elsewhere)) if elsewhere else "yes",
            "%s %s" % (run["run_after"], run["state"]) if run else "-"]


def summary_line(report):
    counts = report["counts"]
    if report["healthy"]:
        return "fleet healthy: generation %s, %d installation(s), %d DAG(s), no finding" % (
            report["generation"], len(report["installations"]), len(report["dags"]))
    return "fleet drifted: %s" % ", ".join("%d %s" % (counts[s], s) for s in SEVERITIES if counts[s])


def render_text(report, max_dags=200):
    lines = ["controller map generation %s (updated %s by %s)"
             % (report["generation"], report["updated_at"] or "-", report["updated_by"] or "-")]
    authority = report.get("authority")
    if authority:
        lines.append("guards read the map from %s (lease %s s, refresh %s s): %s" % (
            authority.get("url"), authority.get("lease"), authority.get("refresh"),
            "cannot be read" if authority.get("error") else "generation %s%s" % (
                authority.get("generation"), ", revoke stage" if authority.get("stage") == "revoke" else "")))
    watched = report.get("watch")
    if watched:
        last = watched["last_decision"]
        lines.append("automatic failover %s; last decision: %s" % (
            "armed: " + ", ".join(watched["armed"]) if watched["armed"] else "not armed",
            "none" if last is None else "%s %s -> %s at %s (%s)%s" % (
                last.get("action"), last.get("from"), last.get("to"), last.get("at"), ", ".join(last.get("reasons") or []),
                ": " + last["why"] if last.get("why") else "")))
    lines.append("")
    lines += _table(INSTALLATION_HEADERS, [_installation_cells(r) for r in report["installations"]])
    lines.append("")
    dag_rows = report["dags"][:max_dags]
    lines += _table(DAG_HEADERS, [_dag_cells(r) for r in dag_rows])
    if len(report["dags"]) > max_dags:
        lines.append("... %d more DAG(s) in the JSON report" % (len(report["dags"]) - max_dags))
    lines.append("")
    for f in report["findings"]:
        lines.append("%-8s %-22s %s: %s" % (f["severity"].upper(), f["code"], f["subject"], f["detail"]))
    lines.append(summary_line(report))
    return lines


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:0.25em 0.6em;text-align:left;font-size:0.9em}
th{background:#eee}
.critical{background:#f8c9c9}.error{background:#fde2c4}.warning{background:#fff5c0}
.ok{color:#276b2e;font-weight:bold}.bad{color:#a31515;font-weight:bold}
"""


def render_html(report, generated_at=None, max_dags=2000):
    """A self-contained page (inline style, no script, no external asset) of the same tables."""
    def esc(value):
        return html.escape("" if value is None else str(value))

    def table(headers, rows, classes=None):
        out = ["<table><tr>%s</tr>" % "".join("<th>%s</th>" % esc(h) for h in headers)]
        for i, row in enumerate(rows):
            css = (' class="%s"' % classes[i]) if classes and classes[i] else ""
            out.append("<tr%s>%s</tr>" % (css, "".join("<td>%s</td>" % esc(c) for c in row)))
        out.append("</table>")
        return "".join(out)

    state = '<span class="ok">healthy</span>' if report["healthy"] else '<span class="bad">%s</span>' % esc(
        summary_line(report))
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>failback fleet status</title><style>%s</style></head><body>" % _CSS,
             "<h1>Fleet status</h1><p>%s - controller map generation %s, updated %s by %s; report of %s</p>" % (
                 state, esc(report["generation"]), esc(report["updated_at"] or "-"), esc(report["updated_by"] or "-"),
                 esc(generated_at or placement.utc_now())),
             "<h2>Findings</h2>"]
    if report["findings"]:
        parts.append(table(["severity", "finding", "subject", "detail"],
                           [[f["severity"], f["code"], f["subject"], f["detail"]] for f in report["findings"]],
                           [f["severity"] for f in report["findings"]]))
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Installations</h2>")
    parts.append(table(INSTALLATION_HEADERS, [_installation_cells(r) for r in report["installations"]]))
    parts.append("<h2>DAGs</h2>")
    parts.append(table(DAG_HEADERS, [_dag_cells(r) for r in report["dags"][:max_dags]]))
    if len(report["dags"]) > max_dags:
        parts.append("<p>%d more DAG(s) in the JSON report.</p>" % (len(report["dags"]) - max_dags))
    parts.append("</body></html>\n")
    return "".join(parts)


def render_json(report, generated_at=None):
    data = dict(report, generated_at=generated_at or placement.utc_now())
    return json.dumps(data, indent=1, sort_keys=True) + "\n"

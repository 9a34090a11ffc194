# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs of moved DAGs on one installation: which ran here, which the guard stopped, which still go.

A failover hands a DAG over at a time (placement.Handover): runs due before it stay with the old
owner, runs due from then on are the new owner's.  Around that moment three things must be known
for every run, and this module works them out from what Airflow's REST API reports (the runs,
their task instances and the guard's records, XComs ``failback_guard_run|skip|error``):

* **late runs** (old owner): runs due after the handover that it had already started when the map
  reached it.  They stay with it (``kept`` in the map), so the new owner does not run them again.
* **drain** (old owner): its own runs that are still queued or running; a planned switchover waits
  for them before the DAG is paused there.
* **catch-up** (new owner): runs due from the handover on that its guard stopped (the DAG was not
  its own yet) and that nobody executed; they are re-run by clearing them through the API.

Pure functions over plain data, plus the REST calls (:class:`RunsClient`); no Ansible import.
"""

from __future__ import annotations

import datetime
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote  # type: ignore[attr-defined,no-redef]

from ansible_collections.failback.airflow.plugins.module_utils import airflow_api, placement, placement_plan

RUN_KEY = "failback_guard_run"
SKIP_KEY = "failback_guard_skip"
ERROR_KEY = "failback_guard_error"
GUARD_KEYS = (RUN_KEY, SKIP_KEY, ERROR_KEY)

#: Task instance states that mean the task's code started (here or in a worker of this installation).
EXECUTED_STATES = frozenset(["success", "failed", "running", "deferred", "up_for_retry", "up_for_reschedule",
                             "restarting"])
#: Run states of a run that is not over.
UNFINISHED_RUN_STATES = frozenset(["queued", "running"])
#: Operators that never execute (Airflow marks them done without running anything).
NO_EXECUTION_OPERATORS = frozenset(["EmptyOperator", "DummyOperator"])
#: A task instance running without any guard record for longer than this has passed the guard.
DECISION_GRACE = 30

# Run status
EXECUTED = "executed"    # some task ran here, none was stopped by the guard
STOPPED = "stopped"      # the guard stopped it here, nothing of it ran here
SPLIT = "split"          # some tasks ran here, the guard stopped others
UNDECIDED = "undecided"  # a task runs here and the guard has not decided yet
IDLE = "idle"            # nothing of it ran and the guard has not been asked (not started, empty)


def ti_key(ti):
    map_index = ti.get("map_index")
    return (ti.get("run_id") or ti.get("dag_run_id"), ti.get("task_id"), -1 if map_index is None else int(map_index))


def run_status(run_tis, records, now=None):
    """The status of one run from its task instances and ``{ti_key: set(guard keys)}``."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ran = stopped = undecided = False
    for ti in run_tis:
        keys = records.get(ti_key(ti), set())
        if RUN_KEY in keys:
            ran = True
        if SKIP_KEY in keys or ERROR_KEY in keys:
            stopped = True
        if keys:
            continue
        state = ti.get("state")
        if state not in EXECUTED_STATES or ti.get("operator") in NO_EXECUTION_OPERATORS:
            continue
        started = ti.get("start_date")
        if state == "running" and started and (now - placement.parse_time(started)).total_seconds() < DECISION_GRACE:
            undecided = True  # the guard decides within moments of the start; wait for it
        else:
            ran = True  # executed without a record (older guard, record lost): count it as run
    if undecided:
        return UNDECIDED
    if ran and stopped:
        return SPLIT
    if ran:
        return EXECUTED
    if stopped:
        return STOPPED
    return IDLE


def run_key(run):
    """What identifies a scheduled interval on every installation: its logical date, else its run id."""
    if run.get("logical_date"):
        return placement.format_time(run["logical_date"])
    return run.get("dag_run_id") or run.get("run_id")


def describe_run(run, status, owner=None):
    described = {
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "run_after": placement.format_time(run["run_after"]),
        "logical_date": placement.format_time(run["logical_date"]) if run.get("logical_date") else None,
        "key": run_key(run),
        "state": run.get("state"),
        "status": status,
    }
    if owner is not None:
        described["owner"] = owner
    return described


def classify_runs(runs, tis, records, pmap=None, now=None):
    """Describe every run (see describe_run) with its status and, with *pmap*, the owner of the run."""
    by_run = {}
    for ti in tis:
        by_run.setdefault(ti.get("run_id") or ti.get("dag_run_id"), []).append(ti)
    described = []
    for run in sorted(runs, key=lambda r: (placement.parse_time(r["run_after"]), r.get("dag_run_id") or "")):
        run_id = run.get("dag_run_id") or run.get("run_id")
        owner = pmap.owner_at(run["dag_id"], run["run_after"]) if pmap is not None else None
        described.append(describe_run(run, run_status(by_run.get(run_id, []), records, now), owner))
    return described


def window_start(pmap, dag_id, installation, lookback):
    """From when runs of *dag_id* matter around its latest handover (minus *lookback* seconds)."""
    handover = pmap.last_handover(dag_id)
    if handover is None:
        return None
    return handover.at_time - datetime.timedelta(seconds=int(lookback or 0))


def not_created(dags, pmap, installation):
    """Runs this installation owns that its scheduler has not created yet: for each DAG it did not pause whose
    latest handover is away from it, ``{"dag_id", "run_id": None, "run_after", "state": "not created yet"}`` when
    the DAG's next run (Airflow's ``next_dagrun_run_after``) is due before that handover.

    A scheduler that lags (a busy or just restarted installation) creates those runs later, and they are
    this installation's: pausing the DAG before then would lose them, so the drain waits for them too.
    *dags* is ``{dag_id: the DAG as GET /api/v2/dags/{dag_id} answers}``.
    """
    found = []
    for dag_id in sorted(dags):
        dag = dags[dag_id] or {}
        handover = pmap.last_handover(dag_id)
        due = dag.get("next_dagrun_run_after")
        if handover is None or handover.source != installation or dag.get("is_paused") or not due:
            continue
        if placement.parse_time(due) < handover.at_time:
            found.append({"dag_id": dag_id, "run_id": None, "run_after": placement.format_time(due),
                          "state": "not created yet", "status": IDLE, "owner": installation})
    return found


def old_owner_view(described, pmap, installation, dags=None):
    """The old owner's side: late runs (due after a handover away from here, executed here), runs it
    owns that are not over or not created yet (drain, see :func:`not_created`), and runs still undecided."""
    late, draining, undecided = [], not_created(dags or {}, pmap, installation), []
    for run in described:
        handover = pmap.last_handover(run["dag_id"])
        after_handover = handover is not None and placement.parse_time(run["run_after"]) >= handover.at_time
        if run["status"] == UNDECIDED:
            undecided.append(run)
        if after_handover and handover.source == installation and run["status"] in (EXECUTED, SPLIT, UNDECIDED) \
                and run["owner"] != installation:
            late.append(run)
        if run.get("owner") == installation and run["state"] in UNFINISHED_RUN_STATES:
            draining.append(run)
    return {"late": late, "draining": draining, "undecided": undecided}


def catchup_plan(described, pmap, installation, executed_elsewhere=(), old_owner_asked=False):
    """The new owner's side: which of its runs to re-run, and which to leave (with why).

    * re-run: runs this installation owns now (per *pmap*), that its guard stopped and that nobody
      else is known to have executed (*executed_elsewhere*: run keys the old owner reported);
    * left: runs split between installations, runs the old owner executed, runs still going, and
      the runs stopped here that belong to the old owner (due before the handover) - unless
      *old_owner_asked*: a reachable old owner runs those itself, they are not listed.
    """
    elsewhere = set(executed_elsewhere)
    rerun, left = [], []
    for run in described:
        if run["status"] not in (STOPPED, SPLIT):
            continue
        entry = dict(run)
        if run["status"] == SPLIT:
            entry["reason"] = "split: some of its tasks ran here, the guard stopped others; clear it by hand if needed"
            left.append(entry)
        elif run.get("owner") is None:
            entry["reason"] = "it runs nowhere: due before the floor of the handover history the map keeps of its DAG"
            left.append(entry)
        elif run.get("owner") != installation:
            if old_owner_asked:
                continue
            entry["reason"] = ("due before the handover, it belongs to %s, which could not be asked whether it ran it; "
                               "if it did not, re-run failover.yml with failover_force=true and "
                               "failover_catchup_since=TIME (when it stopped running)" % run.get("owner"))
            left.append(entry)
        elif run["key"] in elsewhere:
            entry["reason"] = "the old owner executed it"
            left.append(entry)
        elif run["state"] in UNFINISHED_RUN_STATES:
            entry["reason"] = "still %s here; run the catch-up again when it is over" % run["state"]
            left.append(entry)
        else:
            rerun.append(entry)
    return rerun, left


def read_settled(read, installation, timeout, sleep=time.sleep, clock=time.monotonic):
    """``read()`` -> ``(described, truncated)`` (see read_runs), read again every 3 s for at most *timeout* s while a
    run that *installation* owns now is not over and its guard stopped it or has not decided yet.

    A task of the new owner that started before the grant reached it is stopped under the map before and its run
    ends, skipped, moments later: the catch-up must re-run it then, not leave it as "still running" (nobody would run
    it). Returns ``(described, truncated, seconds waited, the runs still not over)``.
    """
    began = clock()
    while True:
        described, truncated = read()
        waiting = [run for run in described if run.get("owner") == installation
                   and run["state"] in UNFINISHED_RUN_STATES and run["status"] in (STOPPED, SPLIT, UNDECIDED)]
        waited = clock() - began
        if not waiting or waited >= timeout:
            return described, truncated, waited, waiting
        sleep(min(3.0, max(0.0, timeout - waited)))


#: Options of the modules that read runs around a handover (documented in the failback.airflow.runs doc fragment).
SELECTION_ARGUMENT_SPEC = dict(
    map_after=dict(type="raw", required=True),
    installation=dict(type="str", required=True),
    dag_ids=dict(type="list", elements="str"),
    moved=dict(type="str", choices=["away", "here"]),
    map_before=dict(type="raw"),
    lookback=dict(type="int", default=0),
    limit=dict(type="int", default=1000),
)


def module_kwargs(**extra_options):
    """The AnsibleModule keywords of the modules that read runs around a handover and log in."""
    return airflow_api.module_kwargs(dict(extra_options, **SELECTION_ARGUMENT_SPEC),
                                     mutually_exclusive=[("dag_ids", "moved")], required_one_of=[("dag_ids", "moved")],
                                     required_by={"moved": ("map_before",)})


def select(client, params):
    """``(map, selected DAGs the installation knows, selected DAGs it does not know)`` for the module's options.

    With ``moved`` the DAGs are those some of whose *runs* the installation lost (``away``) or gained
    (``here``) - also when the DAG itself kept its owner (a handover moved back by
    failover_catchup_since): placement_plan.installation_run_changes.
    """
    pmap = airflow_api._as_map(params["map_after"], "map_after")
    known = client.dags()
    if params["moved"]:
        before = airflow_api._as_map(params["map_before"], "placement map before the failover")
        changes = placement_plan.installation_run_changes(before, pmap, params["installation"], known)
        selected = changes["lost" if params["moved"] == "away" else "gained"]
    else:
        selected = sorted(set(params["dag_ids"]))
    return pmap, [d for d in selected if d in known], [d for d in selected if d not in known]


class RunsClient(airflow_api.Client):
    """The REST calls of the catch-up: runs, task instances and guard records of a DAG since a time."""

    def _pages(self, path, field, query, limit):
        found, offset = [], 0
        while True:
            page_query = dict(query, limit=airflow_api.PAGE_SIZE, offset=offset)
            page = self._call("GET", path, query=page_query)
            entries = page.get(field) or []
            found.extend(entries)
            offset += len(entries)
            if not entries or offset >= int(page.get("total_entries") or 0):
                return found, False
            if limit and len(found) >= limit:
                return found[:limit], True

    def dag_runs(self, dag_id, since=None, limit=None, states=None):
        query = {"order_by": "run_after"}
        if since is not None:
            query["run_after_gte"] = placement.format_time(since)
        if states:
            query["state"] = list(states)
        return self._pages("/api/v2/dags/%s/dagRuns" % quote(dag_id, safe=""), "dag_runs", query, limit)

    def task_instances(self, dag_id, since=None):
        query = {}
        if since is not None:
            query["run_after_gte"] = placement.format_time(since)
        found, _more = self._pages("/api/v2/dags/%s/dagRuns/~/taskInstances" % quote(dag_id, safe=""),
                                   "task_instances", query, None)
        return found

    def guard_records(self, dag_id, since=None):
        """``{ti_key: set(keys)}`` of the guard's records written since *since* (newest first, then stop)."""
        records = {}
        since_time = placement.parse_time(since) if since is not None else None
        for key in GUARD_KEYS:
            offset = 0
            while True:
                page = self._call("GET", "/api/v2/dags/%s/dagRuns/~/taskInstances/~/xcomEntries" % quote(dag_id, safe=""),
                                  query={"xcom_key": key, "order_by": "-timestamp", "limit": airflow_api.PAGE_SIZE,
                                         "offset": offset})
                entries = page.get("xcom_entries") or []
                old = False
                for entry in entries:
                    if since_time is not None and placement.parse_time(entry["timestamp"]) < since_time:
                        old = True
                        break
                    records.setdefault(ti_key(entry), set()).add(key)
                offset += len(entries)
                if old or not entries or offset >= int(page.get("total_entries") or 0):
                    break
        return records

    def dag(self, dag_id):
        """The DAG as the API answers it (``is_paused``, ``next_dagrun_run_after``...)."""
        return self._call("GET", "/api/v2/dags/%s" % quote(dag_id, safe=""))

    def clear_run(self, dag_id, run_id):
        return self._call("POST", "/api/v2/dags/%s/dagRuns/%s/clear" % (quote(dag_id, safe=""), quote(run_id, safe="")),
                          {"dry_run": False, "only_failed": False})

    def note_run(self, dag_id, run_id, note):
        return self._call("PATCH", "/api/v2/dags/%s/dagRuns/%s" % (quote(dag_id, safe=""), quote(run_id, safe="")),
                          {"note": note}, query={"update_mask": "note"})


def read_runs(client, dag_ids, pmap, lookback=0, limit=1000, now=None, since=None, dags=None):
    """Runs of *dag_ids* around their latest handover in *pmap*, classified (see classify_runs).

    Returns ``(described, truncated)``; *truncated* lists the DAGs with more than *limit* runs in
    the window (only the first *limit* are described).  A DAG without a handover is read from
    *since* (or from its first run when None).  *dags*, a dict, receives each DAG as the API
    answers it (its pause state and next run, for :func:`not_created`).
    """
    described, truncated = [], []
    for dag_id in sorted(dag_ids):
        if dags is not None:
            dags[dag_id] = client.dag(dag_id)
        start = window_start(pmap, dag_id, None, lookback)
        if start is None:
            start = placement.parse_time(since) if since is not None else None
        runs, more = client.dag_runs(dag_id, start, limit)
        if more:
            truncated.append(dag_id)
        # Runs that are not over, however old (a long run due before the window still drains).
        seen = set(r.get("dag_run_id") for r in runs)
        unfinished, _more = client.dag_runs(dag_id, None, limit, states=sorted(UNFINISHED_RUN_STATES))
        runs.extend(r for r in unfinished if r.get("dag_run_id") not in seen)
        if not runs:
            continue
        tis = client.task_instances(dag_id, start)
        records = client.guard_records(dag_id, start)
        described.extend(classify_runs(runs, tis, records, pmap, now))
    return described, truncated

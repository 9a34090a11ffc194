# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of failback.airflow.placement_failover (documented in plugins/modules/placement_failover.py).

Runs on the controller: it reads and writes the controller's map and the failover journal next to
it.  The rules are in module_utils/placement.py and module_utils/failover.py.
"""

from __future__ import annotations

import getpass
import socket

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.failback.airflow.plugins.module_utils import failover, placement, placement_plan

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    installations=dict(type="list", elements="str", required=True),
    step=dict(type="str", choices=["plan", "commit", "keep", "finish"], default="plan"),
    to=dict(type="raw", required=True),
    source=dict(type="raw", aliases=["from"]),
    dags=dict(type="raw"),
    publish_plan=dict(type="dict", default={}),
    planned=dict(type="dict"),
    before=dict(type="dict"),  # step keep: the map the failover started from
    since=dict(type="raw"),
    kept=dict(type="dict", default={}),  # {old_owner: {dag_id: [run_after]} or [run, ...]}
    held=dict(type="dict", default={}),  # {old_owner: time its lease is certainly over}
    catchup=dict(type="dict", default={}),
    updated_by=dict(type="str"),
)


def _map_data(pmap):
    return pmap.to_data() if pmap is not None else None


def _held_map(value, name):
    """The map an installation holds: data (a files target reads and parses it) or YAML text (a cluster's ConfigMap)."""
    source = "map held by %s" % name
    return placement.parse_map(value, source=source) if isinstance(value, str) else placement.from_data(dict(value), source=source)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = args["path"]
        journal_file = failover.journal_path(path)
        actor = args["updated_by"] or "%s@%s" % (getpass.getuser(), socket.gethostname())
        now = placement.utc_now()
        check = self._task.check_mode
        result.update(changed=False, path=path, journal=journal_file)
        try:
            if args["source"] in ("", None):
                args["source"] = None
            if args["dags"] in ("", None):
                args["dags"] = None
            if args["to"] in ("", None) or (args["source"] is None and args["dags"] is None):
                raise placement.PlacementError(
                    "Say where to and what: -e failover_to=NAME plus -e failover_from=NAME (all its DAGs) and/or "
                    "-e failover_dags=dag_a,dag_b. Installations: %s" % ", ".join(args["installations"]))
            req = failover.request(args["to"], args["source"], args["dags"], args["since"])
            current = placement.read_map_file(path, args["installations"])
            if current is None:
                raise placement.PlacementError("the controller's map %s does not exist" % path)
            placement.check_times(current, now, source="the controller's map %s" % path)
            journal = failover.read_journal(journal_file)
            if args["step"] == "keep":
                return self._keep(result, path, journal_file, current, journal, args, actor, now, check, task_vars)
            shown = None
            if args["planned"]:
                shown = placement.from_data(dict(args["planned"]), args["installations"], source="planned map")
            # The plan step's time stamp is the handover time: the commit writes exactly that map.
            plan_now = shown.updated_at if shown is not None and shown.updated_at else now
            planned = failover.plan(current, journal, req, args["installations"], actor, now=plan_now)
            if shown is not None and planned["commit"]:
                # Write exactly the map the plan step showed and published (its time stamp too).
                if not (shown.same_placement(planned["after"]) and shown.generation == planned["after"].generation):
                    raise placement.PlacementError(
                        "the controller's map %s changed since the failover was planned (generation %d)"
                        % (path, current.generation))
                planned["after"] = shown
            result.update(
                before=_map_data(planned["before"]), after=_map_data(planned["after"]), current=_map_data(current),
                generation=planned["after"].generation, commit=planned["commit"], moved=planned["moved"],
                runs_moved=planned["runs_moved"], runs_moved_lines=placement_plan.describe_run_changes(planned["runs_moved"]),
                resumed=planned["resumed"] is not None, stale_journal=planned["stale_journal"],
                old_owners=planned["old_owners"],
            )
            if planned["stale_journal"] is not None and args["step"] == "plan":
                stale = planned["stale_journal"]
                result["warnings"] = [
                    "the failover journal %s records an unfinished failover (generation %s, started %s by %s) that does "
                    "not match the controller's map (generation %d): the map was changed some other way since, so it is "
                    "not resumed. Its requests: %s. Check that the DAGs it moved are paused where they left and "
                    "unpaused where they went; this failover replaces the journal."
                    % (journal_file, stale.get("generation"), stale.get("started_at"), stale.get("by"), current.generation,
                       "; ".join(placement.show(r) for r in stale.get("requests", [])) or "none")]
            if args["step"] == "commit":
                result["changed"] = planned["commit"]
                if planned["commit"] and self._task.diff:
                    result["diff"] = dict(before=placement.dump_map(current), after=placement.dump_map(planned["after"]),
                                          before_header="%s (generation %d)" % (path, current.generation),
                                          after_header="%s (generation %d)" % (path, planned["after"].generation))
                if not check and planned["commit"]:
                    # The journal first: a run killed between the two leaves a journal of a change that did
                    # not happen (ignored: its generation is not the map's), never a change without journal.
                    failover.write_journal(journal_file, failover.journal_for(planned, req, actor, now))
                    placement.publish_file(path, planned["after"], args["installations"],
                                           expect_generation=current.generation)
            elif args["step"] == "finish":
                held, fenced = self._held_generations(task_vars, args["installations"], args["publish_plan"])
                summary, behind = failover.summarize(planned["moved"], planned["after"].generation, req["to"],
                                                     args["publish_plan"], held, fenced, check_mode=check,
                                                     catchup=args["catchup"], runs_moved=planned["runs_moved"])
                result.update(msg=summary, held=held)
                if behind or args["publish_plan"].get("blocked"):
                    raise AnsibleActionFail(summary, result=result)
                journal = failover.read_journal(journal_file)
                if journal is not None and journal["state"] == failover.COMMITTED:
                    result["changed"] = True
                    if not check:
                        failover.write_journal(journal_file, failover.finish(journal, summary, now))
        except placement.PlacementError as exc:
            raise AnsibleActionFail("%s; nothing was changed" % exc if args["step"] != "finish" else str(exc),
                                    result=result)
        return result

    def _keep(self, result, path, journal_file, current, journal, args, actor, now, check, task_vars):
        """Step keep: the old owners keep the runs they started after the handover (a new generation)."""
        kept = {}
        for source, runs in args["kept"].items():
            # {dag_id: [run_after]} or the runs of airflow_runs_info (dicts with dag_id and run_after)
            if isinstance(runs, dict):
                runs = [{"dag_id": dag, "run_after": due} for dag, dues in runs.items() for due in dues or []]
            for run in runs or []:
                if not isinstance(run, dict) or "dag_id" not in run or "run_after" not in run:
                    raise placement.PlacementError("kept runs of %s: %s is not a run with dag_id and run_after"
                                                   % (source, placement.show(run)))
                kept.setdefault(source, {}).setdefault(run["dag_id"], []).append(run["run_after"])
        planned = placement.from_data(dict(args["planned"]), source="planned map") if args["planned"] else current
        before = placement.from_data(dict(args["before"]), source="map before the failover") if args["before"] else None
        # In check mode the commit was not written: keep on top of the map the plan showed.
        base = planned if check and planned.generation > current.generation else current
        running = self._running_maps(task_vars, args["installations"], args["publish_plan"], base)
        after, new_journal, refused = failover.keep(base, journal, kept, actor, now, before=before, running=running,
                                                    held=args["held"])
        changed = after is not base
        result.update(changed=changed, after=_map_data(after), generation=after.generation, refused=refused,
                      kept=dict((s, dict((d, list(placement.format_time(t) for t in ts)) for d, ts in dags.items()))
                                for s, dags in kept.items()))
        if refused:
            result["warnings"] = ["not kept with %s (stays with its current owner): %s" % (source, ", ".join(
                "%s %s (%s)" % (run["dag_id"], run["run_after"], run["reason"]) for run in runs[:10]))
                for source, runs in sorted(refused.items())]
        if changed and self._task.diff:
            result["diff"] = dict(before=placement.dump_map(base), after=placement.dump_map(after),
                                  before_header="%s (generation %d)" % (path, base.generation),
                                  after_header="%s (generation %d)" % (path, after.generation))
        if changed and not check:
            if new_journal is not None:
                failover.write_journal(journal_file, new_journal)
            placement.publish_file(path, after, args["installations"], expect_generation=current.generation)
        return result

    @staticmethod
    def _running_maps(task_vars, installations, publish_plan, published):
        """The map each installation runs by now: *published* for the revoke group once it took it, else what
        the plan read (None: fenced, revoke failed, or no map); unreachable installations are left out."""
        hostvars = task_vars.get("hostvars", {})
        revoke = set(publish_plan.get("revoke", []))
        running = {}
        for name in installations:
            facts = hostvars.get(name, {})
            held = facts.get("airflow_placement_held") or {}
            done = facts.get("airflow_placement_published") or {}
            if not held.get("reachable"):
                continue
            if done.get("revoke_failed"):
                running[name] = None
            elif name in revoke and done.get("generation") not in (None, ""):
                running[name] = published
            elif held.get("fenced") or not held.get("map"):
                running[name] = None
            else:
                running[name] = _held_map(held["map"], name)
        return running

    @staticmethod
    def _held_generations(task_vars, installations, publish_plan):
        """Generation each installation the run reached holds: published now, or already current."""
        hostvars = task_vars.get("hostvars", {})
        unreachable = set(publish_plan.get("unreachable", [])) | set(publish_plan.get("blocked", {}))
        held, fenced = {}, []
        for name in installations:
            if name in unreachable:
                continue
            facts = hostvars.get(name, {})
            published = facts.get("airflow_placement_published") or {}
            current = (facts.get("airflow_placement_held") or {}).get("map")
            if published.get("revoke_failed"):
                fenced.append(name)
            elif published.get("generation") not in (None, ""):
                held[name] = int(published["generation"])
            elif current:
                held[name] = _held_map(current, name).generation
            else:
                held[name] = None
        return held, fenced

"""Triggers for the guard's tests (copied next to the guard, on Airflow's sys.path).

SideEffectTrigger leaves a file in $FAILBACK_TEST_OUT and fires at once; with ``flip_to`` it first
moves the DAG to another installation in the map on disk (a failover during a deferral), with the
handover at ``cut`` (ISO time; None: now).
"""

from __future__ import annotations

import os

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SideEffectTrigger(BaseTrigger):
    def __init__(self, name, flip_to=None, dag_id=None, cut=None):
        super().__init__()
        self.name = name
        self.flip_to = flip_to
        self.dag_id = dag_id
        self.cut = cut

    def serialize(self):
        return ("failback_test_triggers.SideEffectTrigger",
                {"name": self.name, "flip_to": self.flip_to, "dag_id": self.dag_id, "cut": self.cut})

    async def run(self):
        with open(os.path.join(os.environ["FAILBACK_TEST_OUT"], self.name), "w") as handle:
            handle.write(os.environ.get("FAILBACK_INSTALLATION", "?"))
        if self.flip_to:
            import failback_placement

            path = os.environ["FAILBACK_PLACEMENT_MAP"]
            current = failback_placement.read_map_file(path)
            moved = failback_placement.stamp(current, failback_placement.assign(current, {self.dag_id: self.flip_to}),
                                             cut=self.cut)
            failback_placement.atomic_write(path, failback_placement.dump_map(moved))
        yield TriggerEvent({"name": self.name})

"""fab_users.py (the airflow_auth role's users script) tries again when FAB's permission sync collides.

Building FAB's application inserts its permission rows; an api-server starting at the same moment
(the cluster's users Job runs beside the Deployment) inserts the same rows, and one of the two lost
on ab_permission_view_role's unique constraint in the drills. The script runs without Airflow here:
open_builder only needs a context-manager factory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "airflow_auth", "files", "fab_users.py")


def _load():
    spec = importlib.util.spec_from_file_location("fab_users", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Collision(Exception):
    """Stands in for sqlalchemy's IntegrityError (sqlalchemy is not in the unit-test environment)."""


class Builder(object):
    """A factory whose first *failures* builds raise; every build that got in is closed exactly once."""

    def __init__(self, failures, error=Collision):
        self.failures, self.error = failures, error
        self.built, self.closed = 0, 0

    @contextlib.contextmanager
    def __call__(self):
        self.built += 1
        if self.built <= self.failures:
            raise self.error("UNIQUE constraint failed: ab_permission_view_role")
        try:
            yield "appbuilder-%d" % self.built
        finally:
            self.closed += 1


def test_a_collision_is_tried_again_and_the_builder_of_the_success_is_used():
    fab_users, builder, log = _load(), Builder(failures=2), io.StringIO()
    stack, appbuilder = fab_users.open_builder(builder, (Collision,), attempts=5, pause=0, log=log)
    assert appbuilder == "appbuilder-3" and builder.closed == 0
    with stack:
        pass
    assert builder.closed == 1
    assert log.getvalue().count("collided with another process (Collision)") == 2
    assert "(1 of 4)" in log.getvalue() and "(2 of 4)" in log.getvalue()


def test_the_last_collision_is_raised_after_the_attempts():
    fab_users, builder = _load(), Builder(failures=9)
    with pytest.raises(Collision):
        fab_users.open_builder(builder, (Collision,), attempts=3, pause=0, log=io.StringIO())
    assert builder.built == 3


def test_other_errors_are_not_tried_again():
    fab_users, builder = _load(), Builder(failures=1, error=KeyError)
    with pytest.raises(KeyError):
        fab_users.open_builder(builder, (Collision,), attempts=5, pause=0, log=io.StringIO())
    assert builder.built == 1

"""Fixtures shared by the unit tests: the guard (failback_guard.py) in its delivered layout, without Airflow."""

from __future__ import annotations

import importlib
import os

import pytest

import failback_testlib as lab


@pytest.fixture(scope="session")
def guard_dir(tmp_path_factory):
    return lab.build_guard_dir(str(tmp_path_factory.mktemp("guard")))


@pytest.fixture
def guard(guard_dir, monkeypatch, tmp_path):
    """The guard module, with no FAILBACK_* setting but its map cache in this test's tmp_path/cache (not created)."""
    monkeypatch.syspath_prepend(guard_dir)
    module = importlib.import_module("failback_guard")
    for name in list(os.environ):
        if name.startswith("FAILBACK_") or name == "HOST_HOSTNAME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAILBACK_PLACEMENT_CACHE_DIR", str(tmp_path / "cache"))
    module._SOURCES.clear()
    yield module
    module._SOURCES.clear()

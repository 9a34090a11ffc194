"""Fixtures for tests that run the collection's playbooks (see tests/failback_ansible.py)."""

from __future__ import annotations

import pytest

from failback_ansible import run_playbook


@pytest.fixture
def playbook():
    return run_playbook

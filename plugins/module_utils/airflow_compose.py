# -*- coding: utf-8 -*-
# Copyright (c) failback.airflow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan the ordered start of a compose project under Podman (used by airflow_podman_compose).

podman-compose 1.x on Podman < 4.6 ignores ``depends_on`` conditions and ``--wait``, and
``depends_on`` breaks starting services once a one-shot container has exited. So the project
is started service by service, in order, with ``up -d --no-deps``; a one-shot service (the
Airflow init) is run to completion before the services after it.

Each service carries the label :data:`CONFIG_HASH_LABEL` (a hash of its definition, written by
the role's template); a container whose label differs is recreated, one that is stopped is
started, everything else is left alone - so only what changed is restarted. These functions are
pure: they take parsed data and return decisions.
"""

from __future__ import annotations

import json

CONFIG_HASH_LABEL = "org.failback.config-hash"
SERVICE_LABELS = ("com.docker.compose.service", "io.podman.compose.service")
PROJECT_LABEL = "io.podman.compose.project"

CREATE = "create"
RECREATE = "recreate"
START = "start"
RUN = "run"


class ComposeError(ValueError):
    """Bad input or a state the plan cannot handle; the message names it."""


def _labels(value):
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict((str(k), "" if v is None else str(v)) for k, v in value.items())
    if isinstance(value, list):
        labels = {}
        for item in value:
            key, _sep, val = str(item).partition("=")
            labels[key] = val
        return labels
    raise ComposeError("labels must be a mapping or a list of KEY=VALUE, got %s" % type(value).__name__)


def desired_hashes(compose):
    """``{service: config hash}`` from a loaded compose file (services without the label map to None)."""
    if not isinstance(compose, dict) or not isinstance(compose.get("services"), dict):
        raise ComposeError("the compose file has no 'services' mapping")
    return dict((name, _labels((spec or {}).get("labels")).get(CONFIG_HASH_LABEL))
                for name, spec in compose["services"].items())


class Container(object):
    __slots__ = ("name", "service", "state", "exit_code", "config_hash", "created")

    def __init__(self, name, service, state, exit_code, config_hash, created):
        self.name = name
        self.service = service
        self.state = state
        self.exit_code = exit_code
        self.config_hash = config_hash
        self.created = created

    @property
    def running(self):
        return self.state == "running"

    def as_dict(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


def parse_ps(text):
    """``{service: Container}`` from ``podman ps -a --format json`` (newest container per service)."""
    try:
        entries = json.loads(text or "[]")
    except ValueError as exc:
        raise ComposeError("podman ps did not print JSON: %s" % exc)
    if entries is None:
        entries = []
    found = {}
    for entry in entries:
        labels = _labels(entry.get("Labels"))
        service = next((labels[key] for key in SERVICE_LABELS if labels.get(key)), None)
        if service is None:
            continue
        names = entry.get("Names") or [entry.get("Id", "?")[:12]]
        container = Container(
            name=names[0] if isinstance(names, list) else str(names),
            service=service,
            state=str(entry.get("State", "")).lower(),
            exit_code=entry.get("ExitCode"),
            config_hash=labels.get(CONFIG_HASH_LABEL),
            created=entry.get("Created", 0),
        )
        previous = found.get(service)
        if previous is None or (container.created or 0) >= (previous.created or 0):
            found[service] = container
    return found


def plan(order, desired, containers, one_shot=()):
    """Ordered ``[(service, action)]`` that brings *containers* to *desired*.

    Long-running services: missing -> create, other hash -> recreate, not running -> start.
    One-shot services run when missing, changed or last failed, and whenever a long-running
    service has to be created (first install).
    """
    unknown = [name for name in order if name not in desired]
    if unknown:
        raise ComposeError("service(s) %s are not in the compose file (it has: %s)" % (
            ", ".join(unknown), ", ".join(sorted(desired))))
    bad = [name for name in one_shot if name not in order]
    if bad:
        raise ComposeError("one-shot service(s) %s are not in the start order" % ", ".join(bad))
    first_install = any(containers.get(name) is None for name in order if name not in one_shot)
    actions = []
    for name in order:
        current = containers.get(name)
        if name in one_shot:
            if (first_install or current is None or current.config_hash != desired[name]
                    or current.running or current.exit_code not in (0, None) or current.state not in ("exited", "stopped")):
                actions.append((name, RUN))
        elif current is None:
            actions.append((name, CREATE))
        elif current.config_hash != desired[name]:
            actions.append((name, RECREATE))
        elif not current.running:
            actions.append((name, START))
    return actions


def up_args(service, action):
    """podman-compose arguments (after the global -p/-f) for one planned action."""
    args = ["up", "-d", "--no-deps"]
    if action in (RECREATE, RUN):
        args.append("--force-recreate")
    return args + [service]

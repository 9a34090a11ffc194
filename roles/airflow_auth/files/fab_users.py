"""Bring the FAB auth manager's users in line with the inventory (failback.airflow).

Runs inside an Airflow container of the installation (it needs Airflow, the FAB provider and
the installation's configuration). The request comes on standard input as JSON, or from the file
given with ``--request-file PATH`` (a Kubernetes Job reads it from its mounted Secret), never in argv:

    {"users": [{"username": "...", "role": "Admin", "password": "...", "email": "...",
                "first_name": "...", "last_name": "...", "update_password": "always"}],
     "disable": ["a user the inventory managed before and no longer lists"],
     "check": false}

and the answer goes to standard output as one JSON line that never holds a password:

    {"changed": true, "created": [...], "updated": {"name": ["role", "password", ...]},
     "disabled": [...], "roles": [...]}

`update_password: always` makes the inventory's password win (a password changed in the UI
is set back); `on_create` sets it only when the user is created. Users the request does not
name (people who signed in through OAuth or LDAP, say) are never touched. Exit status 0 on
success, 2 on a request that cannot be carried out (with {"error": "..."}), nothing changed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

FIELDS = ("email", "first_name", "last_name")


class RequestError(Exception):
    """The request names something that does not exist or is not allowed."""


def _plan_user(sm, wanted: dict, check_password_hash) -> tuple[str, list[str]]:
    """('create'|'update'|'keep', the fields that differ) for one wanted user."""
    user = sm.find_user(username=wanted["username"])
    if user is None:
        return "create", []
    differ = [field for field in FIELDS if (getattr(user, field) or "") != wanted[field]]
    if sorted(role.name for role in user.roles) != [wanted["role"]]:
        differ.append("role")
    if not user.active:
        differ.append("active")
    if wanted.get("update_password", "always") == "always" and not (
        user.password and check_password_hash(user.password, wanted["password"])
    ):
        differ.append("password")
    return ("update" if differ else "keep"), differ


def sync(sm, request: dict, check_password_hash) -> dict:
    """Create, update and disable users through FAB's security manager `sm`."""
    users = request.get("users", [])
    roles = {role.name: role for role in sm.get_all_roles()}
    unknown = sorted({user["role"] for user in users} - set(roles))
    if unknown:
        raise RequestError(
            "unknown role(s) %s; roles of this installation: %s" % (", ".join(unknown), ", ".join(sorted(roles)))
        )
    emails: dict[str, str] = {}
    for user in users:
        other = emails.setdefault(user["email"].lower(), user["username"])
        if other != user["username"]:
            raise RequestError("users %s and %s have the same email %s" % (other, user["username"], user["email"]))
        owner = sm.find_user(email=user["email"])
        if owner is not None and owner.username.lower() != user["username"].lower():
            raise RequestError(
                "the email %s of user %s belongs to the existing user %s" % (user["email"], user["username"], owner.username)
            )

    result: dict = {"changed": False, "created": [], "updated": {}, "disabled": [], "roles": sorted(roles)}
    check = bool(request.get("check"))
    for wanted in users:
        action, differ = _plan_user(sm, wanted, check_password_hash)
        if action == "keep":
            continue
        result["changed"] = True
        if action == "create":
            result["created"].append(wanted["username"])
            if not check and not sm.add_user(
                wanted["username"], wanted["first_name"], wanted["last_name"], wanted["email"],
                roles[wanted["role"]], wanted["password"],
            ):
                raise RuntimeError("FAB could not create user %s (see the api-server's log)" % wanted["username"])
            continue
        result["updated"][wanted["username"]] = differ
        if check:
            continue
        user = sm.find_user(username=wanted["username"])
        for field in FIELDS:
            setattr(user, field, wanted[field])
        user.roles = [roles[wanted["role"]]]
        user.active = True
        sm.update_user(user)
        if "password" in differ:
            sm.reset_password(user.id, wanted["password"])

    # FAB finds users without regard to case: a name listed in another case is the same user.
    named = {user["username"].lower() for user in users}
    for username in sorted(name for name in set(request.get("disable", [])) if name.lower() not in named):
        user = sm.find_user(username=username)
        if user is None or not user.active:
            continue
        result["changed"] = True
        result["disabled"].append(username)
        if not check:
            user.active = False
            sm.update_user(user)
    return result


def read_request(path: str | None) -> dict:
    """The request from the file *path*, or from standard input without one."""
    if path is None:
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def open_builder(factory, retry_on: tuple, attempts: int = 5, pause: float = 2.0, log=sys.stderr):
    """(ExitStack, appbuilder) from the context manager *factory* returns, tried up to *attempts* times.

    Building FAB's application syncs its permissions into the database; an api-server starting at
    the same moment (a Kubernetes Job runs beside the Deployment) inserts the same rows and one of
    the two loses on a unique constraint. The sync is idempotent, so the loser tries again and then
    finds the rows there.
    """
    for attempt in range(1, attempts + 1):
        stack = contextlib.ExitStack()
        try:
            return stack, stack.enter_context(factory())
        except retry_on as exc:
            stack.close()
            if attempt == attempts:
                raise
            print("FAB's permission sync collided with another process (%s); trying again in %.0f s (%d of %d)"
                  % (type(exc).__name__, pause, attempt, attempts - 1), file=log)
            time.sleep(pause)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bring the FAB users in line with a request (JSON).")
    parser.add_argument("--request-file", metavar="PATH", help="read the request from this file, not standard input")
    args = parser.parse_args(argv)
    # Airflow and FAB log to standard output: keep it for the answer alone.
    answer, sys.stdout = sys.stdout, sys.stderr
    source = "file %s" % args.request_file if args.request_file else "standard input"
    try:
        request = read_request(args.request_file)
    except (OSError, ValueError) as exc:
        print(json.dumps({"error": "the request on %s is not JSON: %s" % (source, exc)}), file=answer)
        return 2
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
    from sqlalchemy.exc import IntegrityError, OperationalError
    from werkzeug.security import check_password_hash

    stack, appbuilder = open_builder(get_application_builder, (IntegrityError, OperationalError))
    with stack:
        try:
            result = sync(appbuilder.sm, request, check_password_hash)
        except RequestError as exc:
            appbuilder.sm.session.rollback()
            print(json.dumps({"error": str(exc)}), file=answer)
            return 2
    print(json.dumps(result, sort_keys=True), file=answer)
    return 0


if __name__ == "__main__":
    sys.exit(main())

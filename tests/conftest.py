"""Make the collection importable as ansible_collections.failback.airflow (see Makefile: .collections)."""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".collections")

TESTS = os.path.dirname(os.path.abspath(__file__))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)  # failback_testlib

if not os.path.isdir(os.path.join(COLLECTIONS, "ansible_collections", "failback", "airflow")):
    raise RuntimeError("run `make setup` first: it links the repository into .collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

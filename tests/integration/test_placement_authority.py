"""failback.airflow.placement_authority against moto's S3 on 127.0.0.1 (the real-Airflow venv's moto_server).

The module is run in-process through main() for its results, and as ``ansible localhost -m`` by
several processes at once: of controllers that publish different maps of the same generation at the
same moment exactly one wins. Processes that read after the winner wrote are stopped by the
generation check; the conditional PUT itself (a write between this module's read and its write) is
forced deterministically by test_a_writer_between_the_read_and_the_write_wins... below. moto
checks signatures in tests/airflow/test_placement_s3.py; here it checks the conditions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest

import failback_testlib as lab
from failback_ansible import BIN, REPO, run_module

from ansible_collections.failback.airflow.plugins.module_utils import s3_object
from ansible_collections.failback.airflow.plugins.modules import placement_authority

MOTO = os.path.join(REPO, ".venv-airflow", "bin", "moto_server")
KNOWN = ["server-1", "server-2", "server-3", "server-4", "server-5", "server-6"]
CREDENTIALS = {"access_key_id": "AKIAFAILBACKCONTROL1", "secret_access_key": "c0ntroller-s3cret/key+value"}
GEN1 = '"@failback": {generation: 1}\ndag_a: server-1\n'
GEN2 = '"@failback": {generation: 2}\ndag_a: server-2\n'


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    if not os.path.exists(MOTO):
        pytest.fail("%s is missing: make test-airflow's environment (.venv-airflow) provides moto_server" % MOTO)
    port = lab.free_port()
    log = open(str(tmp_path_factory.mktemp("moto") / "moto.log"), "w")
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        lab.wait_port(port, proc, "moto_server", timeout=60)
    except RuntimeError as exc:
        proc.kill()
        pytest.fail(str(exc))
    yield "http://127.0.0.1:%d" % port
    lab.stop_process(proc, timeout=15)
    log.close()


@pytest.fixture
def bucket(endpoint):
    """A new bucket per test (moto accepts an unsigned CreateBucket)."""
    name = "maps-%s" % uuid.uuid4().hex[:16]
    urllib.request.urlopen(urllib.request.Request("%s/%s" % (endpoint, name), method="PUT"), timeout=10).close()
    return name


def run(capsys, endpoint, bucket, check_mode=False, diff=False, **args):
    args.setdefault("url", "s3://%s/failback/placement.yml" % bucket)
    args.setdefault("credentials", dict(CREDENTIALS))
    if args["credentials"] is None:
        del args["credentials"]
    return run_module(capsys, placement_authority, check_mode, diff, endpoint=endpoint, region="eu-west-1", **args)


def test_publish_is_idempotent_check_mode_writes_nothing_and_no_key_is_shown(capsys, endpoint, bucket):
    first = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN)
    assert first["changed"] and first["written"] and first["generation"] == 1 and first["previous_generation"] is None
    again = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN)
    assert not again["changed"] and again["etag"] == first["etag"]
    check = run(capsys, endpoint, bucket, check_mode=True, diff=True, content=GEN2, installations=KNOWN)
    assert check["changed"] and check["generation"] == 2 and 'dag_a: "server-2"' in check["diff"]["after"]
    held = run(capsys, endpoint, bucket, state="read")
    assert (held["generation"], held["etag"], held["changed"]) == (1, first["etag"], False)
    assert CREDENTIALS["secret_access_key"] not in json.dumps([first, again, check, held])


def test_an_older_map_or_another_map_of_the_same_generation_is_refused(capsys, endpoint, bucket):
    assert run(capsys, endpoint, bucket, content=GEN2, installations=KNOWN)["rc"] == 0
    older = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN)
    assert older["rc"] == 1 and "refusing to replace placement map generation 2 with older generation 1" in older["msg"]
    other = run(capsys, endpoint, bucket, content='"@failback": {generation: 2}\ndag_a: server-3\n', installations=KNOWN)
    assert other["rc"] == 1 and "generation 2 already exists with a different placement" in other["msg"]
    assert run(capsys, endpoint, bucket, state="read")["map"]["dag_a"] == "server-2"


def test_expect_etag_publishes_only_over_the_version_that_was_read(capsys, endpoint, bucket):
    absent = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN, expect_etag="absent")
    assert absent["rc"] == 0 and absent["written"]
    again = run(capsys, endpoint, bucket, content=GEN2, installations=KNOWN, expect_etag="absent")
    assert again["rc"] == 1 and "changed since it was read" in again["msg"] and "nothing was changed" in again["msg"]
    moved = run(capsys, endpoint, bucket, content=GEN2, installations=KNOWN, expect_etag=absent["etag"])
    assert moved["rc"] == 0 and moved["generation"] == 2
    stale = run(capsys, endpoint, bucket, content='"@failback": {generation: 3}\ndag_a: server-1\n', installations=KNOWN,
                expect_etag=absent["etag"])
    assert stale["rc"] == 1 and run(capsys, endpoint, bucket, state="read")["generation"] == 2


def test_an_invalid_object_is_reported_and_replaced(capsys, endpoint, bucket):
    s3_object.Bucket(bucket, region="eu-west-1", endpoint=endpoint, credentials=CREDENTIALS).put(
        "failback/placement.yml", b"dag_a: [")
    held = run(capsys, endpoint, bucket, state="read")
    assert held["exists"] is False and "not valid YAML" in held["invalid"]
    fixed = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN)
    assert fixed["written"] and "held no valid map" in json.dumps(fixed.get("warnings"))


@pytest.mark.parametrize("args, message", [
    ({"url": "s3://Bad_Bucket/x.yml"}, "is not a valid bucket name"),
    ({"url": "s3://maps/a/../b.yml"}, "no empty, '.' or '..' parts"),
    ({"url": "https://maps/placement.yml"}, "is not an s3://BUCKET/KEY URL"),
    ({"region": "Europe West"}, "region 'Europe West' is not an AWS region name"),
    ({"endpoint": "ftp://127.0.0.1:1"}, "is not an http(s)://HOST[:PORT][/PATH] URL"),
    ({"timeout": 0}, "timeout=0"),
])
def test_bad_settings_are_named(capsys, endpoint, bucket, args, message):
    base = {"endpoint": endpoint, "region": "eu-west-1"}
    base.update(args)
    result = run_module(capsys, placement_authority, False, False, content=GEN1, installations=KNOWN,
                        credentials=dict(CREDENTIALS), url=base.pop("url", "s3://%s/p.yml" % bucket), **base)
    assert result["rc"] == 1 and message in result["msg"], result


def test_a_credentials_file_that_is_a_fifo_or_not_json_is_refused(capsys, endpoint, bucket, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(str(fifo))
    broken = tmp_path / "broken.json"
    broken.write_text('{"access_key_id": "A", "secret": "x"}')
    expected = ((fifo, "is not a regular file"), (broken, "unknown keys secret; missing or empty secret_access_key"))
    for path, message in expected:
        result = run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN, credentials=None,
                     credentials_file=str(path))
        assert result["rc"] == 1 and message in result["msg"], result


def test_of_controllers_publishing_at_once_exactly_one_wins(endpoint, bucket, tmp_path):
    url = "s3://%s/failback/placement.yml" % bucket
    credentials = tmp_path / "controller.json"
    credentials.write_text(json.dumps(CREDENTIALS))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    procs = []
    for index in range(1, 7):
        args = json.dumps({"url": url, "endpoint": endpoint, "region": "eu-west-1",
                           "credentials_file": str(credentials), "installations": KNOWN,
                           "content": '"@failback": {generation: 1}\ndag_a: server-%d\n' % index})
        procs.append((index, subprocess.Popen(
            [os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-e",
             "ansible_python_interpreter=%s" % sys.executable, "-m", "failback.airflow.placement_authority",
             "-a", args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    outcomes = {}
    for index, proc in procs:
        out, err = proc.communicate(timeout=300)
        outcomes[index] = (proc.returncode, out[-1500:] + err[-500:])
    winners = [index for index, (rc, _text) in outcomes.items() if rc == 0]
    assert len(winners) == 1, outcomes
    for index, (rc, text) in outcomes.items():
        if index != winners[0]:
            assert "nothing was changed" in text, text
            assert ("another writer published" in text or "already exists with a different placement" in text), text
    _status, body, _etag = s3_object.Bucket(bucket, region="eu-west-1", endpoint=endpoint,
                                            credentials=CREDENTIALS).get("failback/placement.yml")
    assert 'dag_a: "server-%d"' % winners[0] in body.decode("utf-8")


def test_a_writer_between_the_read_and_the_write_wins_and_this_one_changes_nothing(capsys, endpoint, bucket,
                                                                                   monkeypatch):
    """The other controller publishes right after this module read the object: the conditional PUT
    fails with 412 and the other's map stays (a plain PUT would have replaced it)."""
    other = s3_object.Bucket(bucket, region="eu-west-1", endpoint=endpoint, credentials=CREDENTIALS)
    assert run(capsys, endpoint, bucket, content=GEN1, installations=KNOWN)["rc"] == 0
    real_get = s3_object.Bucket.get

    def get_then_the_other_writes(self, key, etag=None, limit=1 << 20):
        found = real_get(self, key, etag=etag, limit=limit)
        other.put(key, GEN2.replace("server-2", "server-3").encode("utf-8"), if_match=found[2])
        return found

    monkeypatch.setattr(s3_object.Bucket, "get", get_then_the_other_writes)
    lost = run(capsys, endpoint, bucket, content=GEN2, installations=KNOWN)
    monkeypatch.setattr(s3_object.Bucket, "get", real_get)
    assert lost["rc"] == 1 and "HTTP 412" in lost["msg"] and "another writer published" in lost["msg"], lost
    assert run(capsys, endpoint, bucket, state="read")["map"]["dag_a"] == "server-3"


def test_an_object_this_collection_cannot_read_is_not_overwritten_by_an_older_generation(capsys, endpoint, bucket):
    """A newer collection's map (a field this one does not know) claims generation 10: generation 3 is refused."""
    s3_object.Bucket(bucket, region="eu-west-1", endpoint=endpoint, credentials=CREDENTIALS).put(
        "failback/placement.yml", b'"@failback": {generation: 10, lease_hint: 5}\ndag_a: server-1\n')
    result = run(capsys, endpoint, bucket, content='"@failback": {generation: 3}\ndag_a: server-2\n', installations=KNOWN)
    assert result["rc"] == 1 and "holds generation 10, which this collection cannot read" in result["msg"], result
    newer = run(capsys, endpoint, bucket, content='"@failback": {generation: 11}\ndag_a: server-2\n', installations=KNOWN)
    assert newer["rc"] == 0 and newer["written"] and "held no valid map" in json.dumps(newer.get("warnings"))

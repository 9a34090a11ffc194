"""The placement map in an S3 bucket, the lease's authority: moto's S3 on 127.0.0.1 with its IAM checks on.

moto verifies every request's AWS Signature Version 4 and the user's policy here (its
INITIAL_NO_AUTH_ACTION_COUNT lets only the set-up through unsigned), so a request the collection's
signer (plugins/module_utils/s3_object.py, the guard's failback_s3.py) gets wrong is refused as
it would be by AWS. The guard runs as a task process does: a fresh Python process per decision,
sharing the on-disk cache. Run with .venv-airflow (moto and boto3; Airflow itself is not needed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import failback_testlib as lab

MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")
REGION = "eu-west-1"
BUCKET = "fleet-maps"
KEY = "failback/placement.yml"
MAP_1 = '"@failback": {generation: 1}\ndag_a: server-1\n'
MAP_2 = '"@failback": {generation: 2}\ndag_a: server-2\n'
# boto3 calls that set up the authority before moto starts checking signatures and policies.
SETUP_CALLS = 5


def _start_moto(log_path, port=None):
    port = port or lab.free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_CALLS))
    log = open(log_path, "a")
    proc = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    lab.wait_port(port, proc, "moto_server", timeout=60)
    return proc, port


def _set_up(endpoint, directory):
    """An IAM user that may read and write the map's key, its key pair in a credentials file, and the bucket."""
    import boto3

    plain = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="AKIAFAILBACKSETUP001",
                 aws_secret_access_key="setup-secret")
    iam = boto3.client("iam", **plain)
    iam.create_user(UserName="fleet")
    iam.put_user_policy(UserName="fleet", PolicyName="map", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                       "Resource": "arn:aws:s3:::%s/%s" % (BUCKET, KEY)}]}))
    key = iam.create_access_key(UserName="fleet")["AccessKey"]
    boto3.client("s3", **plain).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    credentials = os.path.join(directory, "s3-credentials.json")
    fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}, handle)
    return credentials


class Authority(object):
    def __init__(self, directory):
        if not os.path.exists(MOTO):
            pytest.fail("moto[server] is not installed in this interpreter's environment: run with .venv-airflow")
        self.directory = str(directory)
        self.log = os.path.join(self.directory, "moto.log")
        self.guard_dir = lab.build_guard_dir(os.path.join(self.directory, "guard"))
        self.cache = os.path.join(self.directory, "cache")
        self.proc, self.port = _start_moto(self.log)
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.credentials_file = _set_up(self.endpoint, self.directory)
        with open(self.credentials_file) as handle:
            self.credentials = json.load(handle)

    def bucket(self, credentials=None):
        sys.path.insert(0, self.guard_dir)
        try:
            import failback_s3
        finally:
            sys.path.remove(self.guard_dir)
        return failback_s3, failback_s3.Bucket(BUCKET, region=REGION, endpoint=self.endpoint,
                                               credentials=credentials or self.credentials)

    def guard(self, dag_id="dag_a", installation="server-1", credentials_file=None, **env):
        """failback_guard.py check DAG in a new process, as a task would; (exit code, JSON answer)."""
        environ = dict((k, v) for k, v in os.environ.items() if not k.startswith(("FAILBACK_", "AWS_")))
        environ.update(FAILBACK_INSTALLATION=installation, FAILBACK_PLACEMENT_MAP="s3://%s/%s" % (BUCKET, KEY),
                       FAILBACK_PLACEMENT_S3_ENDPOINT=self.endpoint, FAILBACK_PLACEMENT_S3_REGION=REGION,
                       FAILBACK_PLACEMENT_S3_CREDENTIALS_FILE=credentials_file or self.credentials_file,
                       FAILBACK_PLACEMENT_CACHE_DIR=self.cache, FAILBACK_PLACEMENT_TIMEOUT="2")
        environ.update(env)
        proc = subprocess.run([sys.executable, os.path.join(self.guard_dir, "failback_guard.py"), "check", dag_id],
                              env=environ, capture_output=True, text=True, timeout=60, check=False)
        return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr

    def stop(self):
        lab.stop_process(self.proc, timeout=15)

    def restart(self):
        """moto keeps nothing across a restart: the same port, the set-up and the map again."""
        self.proc, _port = _start_moto(self.log, self.port)
        self.credentials_file = _set_up(self.endpoint, self.directory)
        with open(self.credentials_file) as handle:
            self.credentials = json.load(handle)


@pytest.fixture
def authority(tmp_path):
    found = Authority(tmp_path)
    yield found
    found.stop()


def test_the_guard_reads_the_signed_map_and_a_wrong_key_fails_closed(authority, tmp_path):
    s3, bucket = authority.bucket()
    bucket.put(KEY, MAP_1.encode("utf-8"))
    code, answer, _err = authority.guard()
    assert (code, answer["decision"], answer["generation"]) == (0, "run", 1), answer
    code, answer, _err = authority.guard(installation="server-2")
    assert (code, answer["decision"]) == (3, "skip"), answer

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(dict(authority.credentials, secret_access_key="not-the-key")))
    code, answer, _err = authority.guard(credentials_file=str(wrong), FAILBACK_PLACEMENT_CACHE_DIR=str(tmp_path / "c2"))
    assert code == 1 and "HTTP 403" in answer["reason"] and "SignatureDoesNotMatch" in answer["reason"], answer
    assert "not-the-key" not in json.dumps(answer)
    with pytest.raises(s3.S3Error, match="HTTP 403"):
        authority.bucket(dict(authority.credentials, secret_access_key="not-the-key"))[1].get(KEY)


def test_writes_are_compare_and_swap(authority):
    s3, bucket = authority.bucket()
    first = bucket.put(KEY, MAP_1.encode("utf-8"))
    with pytest.raises(s3.PreconditionFailed, match="HTTP 412"):
        bucket.put(KEY, MAP_2.encode("utf-8"))  # "only if it does not exist"
    second = bucket.put(KEY, MAP_2.encode("utf-8"), if_match=first)
    with pytest.raises(s3.PreconditionFailed):
        bucket.put(KEY, b"# a controller that read generation 1\n", if_match=first)  # it lost the race
    status, body, etag = bucket.get(KEY)
    assert (status, body.decode("utf-8"), etag) == (200, MAP_2, second)
    assert bucket.get(KEY, etag=second)[0] == 304
    with pytest.raises(s3.S3Error, match="HTTP 403, AccessDenied"):
        bucket.get("failback/other.yml")  # outside the user's policy: moto checks it as AWS would


def test_an_outage_within_the_lease_changes_nothing_and_past_it_every_task_fails_until_the_map_is_back(authority):
    _s3, bucket = authority.bucket()
    bucket.put(KEY, MAP_1.encode("utf-8"))
    lease = {"FAILBACK_PLACEMENT_TTL": "1", "FAILBACK_PLACEMENT_LEASE": "6"}
    code, answer, _err = authority.guard(**lease)
    confirmed = time.time()
    assert code == 0, answer
    authority.stop()  # the authority is gone; the installation keeps running
    time.sleep(1.5)
    code, answer, err = authority.guard(**lease)
    assert (code, answer["decision"]) == (0, "run"), answer
    assert "within its lease of 6 s" in err
    deadline = confirmed + 6 + 1
    time.sleep(max(0.0, deadline - time.time()))
    code, answer, _err = authority.guard(**lease)
    assert code == 1 and "past its lease of 6 s" in answer["reason"], answer
    code, answer, _err = authority.guard(installation="server-2", **lease)
    assert code == 1, answer  # a non-owner fails too: nobody decides without the authority
    authority.restart()
    authority.bucket()[1].put(KEY, MAP_2.encode("utf-8"))
    code, answer, _err = authority.guard(**lease)
    assert (code, answer["decision"], answer["generation"]) == (3, "skip", 2), answer
    code, answer, _err = authority.guard(installation="server-2", **lease)
    assert (code, answer["decision"]) == (0, "run"), answer

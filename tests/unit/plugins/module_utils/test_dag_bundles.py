"""The DAG bundle rules (module_utils/dag_bundles.py): Airflow's dag_bundle_config_list and refusals."""

from __future__ import annotations

import json

import pytest

from ansible_collections.failback.airflow.plugins.module_utils import dag_bundles as b


def test_empty_setting_keeps_airflows_default():
    assert b.config_list([]) == []
    assert b.config_list(None) == []


def test_git_and_local_bundles_become_airflows_list():
    got = b.config_list([
        {"name": "dags", "repo_url": "https://git.example.com/data/dags.git", "tracking_ref": "release/2026",
         "subdir": "dags/", "refresh_interval": "60", "conn_id": "git_dags", "submodules": "false"},
        {"name": "dags-folder", "type": "local"},
    ], connections={"git_dags": {}})
    assert got == [
        {"name": "dags", "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
         "kwargs": {"repo_url": "https://git.example.com/data/dags.git", "tracking_ref": "release/2026",
                    "subdir": "dags", "refresh_interval": 60, "git_conn_id": "git_dags", "submodules": False}},
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": "/opt/airflow/dags"}},
    ]
    json.dumps(got)  # what the roles put into AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST


def test_defaults_and_connection_only_bundle():
    got = b.config_list([{"name": "x", "conn_id": "git_x"}])
    assert got[0]["kwargs"] == {"git_conn_id": "git_x", "tracking_ref": "main"}


@pytest.mark.parametrize("url", [
    "https://git.example.com/a.git", "http://127.0.0.1:8000/a.git", "ssh://git@git.example.com:2222/a.git",
    "git@github.com:acme/dags.git", "git://127.0.0.1:9418/dags.git", "file:///srv/git/dags.git", "/srv/git/dags.git",
])
def test_accepted_urls(url):
    assert b.config_list([{"name": "d", "repo_url": url}])[0]["kwargs"]["repo_url"] == url


@pytest.mark.parametrize("url, words", [
    ("https://alice:ghp_SECRETTOKEN@github.com/acme/dags.git", "carries a credential"),
    ("https://ghp_SECRETTOKEN@github.com/acme/dags.git", "carries a credential"),
    ("ssh://git:SECRETTOKEN@host/a.git", "carries a credential"),
    ("ftp://host/a.git", "is not a Git URL"),
    ("github.com/acme/dags", "is not a Git URL"),
    ("file://relative/path", "absolute path"),
    ("file:///srv/../etc/dags.git", "absolute path"),
    ("https://host/a b.git", "without spaces"),
    ("https://bot:SECRETTOKEN@host/a b.git", "without spaces"),
    ("", "non-empty"),
])
def test_refused_urls_never_echo_the_token(url, words):
    with pytest.raises(b.BundleError) as err:
        b.config_list([{"name": "dags", "repo_url": url}])
    assert words in str(err.value)
    assert "airflow_dag_bundles[0] (dags)" in str(err.value)
    assert "SECRETTOKEN" not in str(err.value)


@pytest.mark.parametrize("entry, words", [
    ({"name": "a b", "repo_url": "/r.git"}, "name must be"),
    ({"name": "-a", "repo_url": "/r.git"}, "name must be"),
    ({"repo_url": "/r.git"}, "name must be"),
    ({"name": "a"}, "needs repo_url, or conn_id"),
    ({"name": "a", "type": "svn"}, "type must be one of git, local, got 'svn'"),
    ({"name": "a", "repo_url": "/r.git", "branch": "main"}, "unknown key(s) branch for a git bundle"),
    ({"name": "a", "type": "local", "repo_url": "/r.git"}, "unknown key(s) repo_url for a local bundle"),
    ({"name": "a", "repo_url": "/r.git", "tracking_ref": "a..b"}, "tracking_ref must be"),
    ({"name": "a", "repo_url": "/r.git", "tracking_ref": "main branch"}, "tracking_ref must be"),
    ({"name": "a", "repo_url": "/r.git", "subdir": "../etc"}, "subdir must be a relative path"),
    ({"name": "a", "repo_url": "/r.git", "subdir": "/dags"}, "subdir must be a relative path"),
    ({"name": "a", "repo_url": "/r.git", "refresh_interval": "soon"}, "whole number of seconds, got 'soon'"),
    ({"name": "a", "repo_url": "/r.git", "refresh_interval": -1}, "between 0 and 86400"),
    ({"name": "a", "repo_url": "/r.git", "refresh_interval": True}, "whole number of seconds"),
    ({"name": "a", "repo_url": "/r.git", "submodules": "maybe"}, "submodules must be true or false"),
    ({"name": "a", "repo_url": "/r.git", "conn_id": "bad id"}, "conn_id must be a connection id"),
    ({"name": "a", "type": "local", "path": "dags"}, "path must be an absolute path"),
    ("dags", "must be a mapping"),
])
def test_bad_entries_are_named(entry, words):
    with pytest.raises(b.BundleError) as err:
        b.config_list([entry])
    assert words in str(err.value)
    assert "airflow_dag_bundles[0]" in str(err.value)


def test_not_a_list():
    with pytest.raises(b.BundleError, match="must be a list of bundles, got dict"):
        b.config_list({"name": "dags"})


def test_duplicate_names_ignoring_case():
    with pytest.raises(b.BundleError, match=r"airflow_dag_bundles\[1\] \(Dags\): the name 'Dags' is already used by "
                                            r"airflow_dag_bundles\[0\]"):
        b.config_list([{"name": "dags", "repo_url": "/a.git"}, {"name": "Dags", "type": "local"}])


def test_unknown_connection_is_named_with_the_known_ones():
    with pytest.raises(b.BundleError, match=r"conn_id 'git_dags' is not in airflow_credentials_connections "
                                            r"\(known: pg, s3\)"):
        b.config_list([{"name": "dags", "conn_id": "git_dags"}], connections={"s3": {}, "pg": {}})
    assert b.config_list([{"name": "dags", "conn_id": "git_dags"}], connections=None)
    assert b.config_list([{"name": "dags", "conn_id": "git_dags"}], connections={"s3": {}},
                         secrets_backend="aws_secrets_manager")


def test_local_repos_are_the_file_and_path_urls():
    bundles = [{"name": "a", "repo_url": "file:///srv/git/a.git"}, {"name": "b", "repo_url": "/srv/git/b.git/"},
               {"name": "c", "repo_url": "https://h/c.git"}, {"name": "d", "type": "local"},
               {"name": "e", "repo_url": "file:///srv/git/a.git"}]
    assert b.local_repos(bundles) == ["/srv/git/a.git", "/srv/git/b.git"]
    assert b.local_repos([]) == []

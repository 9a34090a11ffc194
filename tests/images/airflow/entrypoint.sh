#!/bin/sh
# Entrypoint of the local Airflow test image. Like the official image's: a bare Airflow
# subcommand (`scheduler`, `api-server`, ...) runs as `airflow SUBCOMMAND`; anything that is
# an executable (airflow, bash, python, a path) runs as given.
set -e
if [ "$#" -eq 0 ]; then
    exec airflow --help
fi
case "$1" in
    */*) exec "$@" ;;
esac
if command -v "$1" >/dev/null 2>&1; then
    exec "$@"
fi
exec airflow "$@"

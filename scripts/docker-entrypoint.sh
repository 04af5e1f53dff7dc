#!/bin/sh
# Entrypoint of the sales-etl image: `sales-etl` unless the command is another program.
#   docker run sales-etl:0.1.0                  -> sales-etl run
#   docker run sales-etl:0.1.0 demo             -> sales-etl demo
#   docker run sales-etl:0.1.0 prefect worker start --pool sales-etl-process
# A Prefect docker worker starts its containers with `prefect flow-run execute`, which must run
# as given; any command found on PATH (prefect, python, bash...) runs as is.
set -e
if [ "$#" -eq 0 ]; then
  exec sales-etl run
fi
case "$1" in
  -*) exec sales-etl "$@" ;;
esac
if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec sales-etl "$@"

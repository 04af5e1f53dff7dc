#!/usr/bin/env bash
# Create (or update) the docker work pool of prefect.yaml's `nightly-docker` deployment so that
# its flow-run containers get the secrets without them being stored in prefect.yaml, in the
# deployment or in the pool: the pool's base job template only *references* Prefect Secret
# blocks, which the docker worker resolves when it starts each container.
#
#   export PREFECT_API_URL=http://127.0.0.1:4200/api
#   export SALES_ETL_DATABASE_URL='mysql+pymysql://sales_etl:...@mariadb:3306/sales_etl'
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...
#   scripts/setup-docker-pool.sh [POOL]        # POOL defaults to sales-etl-docker
#
# Each of the three variables that is set is saved as a Secret block (sales-etl-database-url,
# sales-etl-aws-access-key-id, sales-etl-aws-secret-access-key); blocks saved earlier are kept.
# Needs only Prefect (not prefect-docker): the docker pool type ships with Prefect.
set -euo pipefail
POOL="${1:-sales-etl-docker}"
PY="${PYTHON:-python}"
if [[ -x "$(dirname "$0")/../.venv/bin/python" && -z "${PYTHON:-}" ]]; then
  PY="$(dirname "$0")/../.venv/bin/python"
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$PY" -m prefect work-pool get-default-base-job-template --type docker --file "$tmp/template.json" >/dev/null
"$PY" - "$tmp/template.json" <<'PY'
import json
import os
import sys

from prefect.blocks.system import Secret

SECRETS = {  # environment variable in the container -> Secret block
    "SALES_ETL_DATABASE_URL": "sales-etl-database-url",
    "AWS_ACCESS_KEY_ID": "sales-etl-aws-access-key-id",
    "AWS_SECRET_ACCESS_KEY": "sales-etl-aws-secret-access-key",
}
path = sys.argv[1]
for variable, block in SECRETS.items():
    value = os.environ.get(variable)
    if value:
        Secret(value=value).save(block, overwrite=True)
        print(f"setup-docker-pool: saved {variable} as Secret block {block!r}")
    else:
        try:
            Secret.load(block)
        except ValueError:
            sys.exit(f"setup-docker-pool: {variable} is not set and no Secret block {block!r} exists")
template = json.load(open(path))
template["variables"]["properties"]["env"]["default"] = {
    variable: "{{ prefect.blocks.secret." + block + " }}" for variable, block in SECRETS.items()
}
json.dump(template, open(path, "w"), indent=2)
PY
"$PY" -m prefect work-pool create "$POOL" --type docker --base-job-template "$tmp/template.json" --overwrite >/dev/null
echo "setup-docker-pool: work pool '$POOL' ready (secrets referenced from Secret blocks)"

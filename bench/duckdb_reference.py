"""The reference: the pipeline's transform + mart work done by DuckDB over the same files.

Same row rules as ``sales_etl/rules/transform.py`` (trim, empty -> missing, a value that does not parse
is invalid, the same reason codes in the same order), written the way a DuckDB user would:
``TRY_CAST`` and plain comparisons, no regular expressions (issue 16: gating every cast behind
a regex slowed DuckDB down and flattered the ratio). On values the generator never writes the
two can differ (DuckDB rounds ``1.005`` to a cent and reads ``1e3`` as a number, where the
pipeline quarantines both); ``bench/run.py`` compares every count and total, so a difference
would show. The same left joins to the three dimensions, the same two
marts (customer by ``sales_month``; sales team by ``sales_month``/``store_id``) plus the
quarantine, all Parquet/snappy, then the reporting aggregates of the months touched, read back
from the written marts. It does not validate files, move them or load a database: the reference
is the data work alone, so the ratio charges the pipeline for everything else it does.

Run on its own: ``python bench/duckdb_reference.py OUT_DIR DIMENSIONS_DIR FILE.csv...``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from sales_etl.validators.model import MANDATORY_COLUMNS

# The column names are the contract (DESIGN.md); the rules below are written out again on purpose.
MANDATORY = MANDATORY_COLUMNS


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + i.replace("'", "''") + "'" for i in items) + "]"


def _non_negative_id(column: str) -> str:
    """An id: a BIGINT, not negative (the pipeline's ``[0-9]{1,18}``)."""
    return f"CASE WHEN TRY_CAST(c_{column} AS BIGINT) >= 0 THEN TRY_CAST(c_{column} AS BIGINT) END"


def classify_sql(files: list[str]) -> str:
    """One statement: read, parse, enrich and judge every row (the pipeline's classify step)."""
    cleaned = ",\n".join(f"nullif(trim({c}), '') AS c_{c}" for c in MANDATORY)
    reasons = [
        *(f"CASE WHEN c_{c} IS NULL THEN 'missing_{c}' END" for c in MANDATORY),
        *(
            f"CASE WHEN c_{c} IS NOT NULL AND p_{c} IS NULL THEN 'invalid_{c}' END"
            for c in MANDATORY
        ),
        "CASE WHEN p_quantity <= 0 THEN 'non_positive_quantity' END",
        "CASE WHEN p_price < 0 THEN 'negative_price' END",
        "CASE WHEN abs(p_total_cost - p_price * p_quantity) > 0.01 THEN 'total_cost_mismatch' END",
        "CASE WHEN p_customer_id IS NOT NULL AND cu.customer_id IS NULL THEN 'unknown_customer_id' END",
        "CASE WHEN p_store_id IS NOT NULL AND st.id IS NULL THEN 'unknown_store_id' END",
        "CASE WHEN p_sales_person_id IS NOT NULL AND tm.id IS NULL THEN 'unknown_sales_person_id' END",
    ]
    return f"""
    CREATE TABLE classified AS
    WITH raw AS (
        SELECT * FROM read_csv({_sql_list(files)}, header = true, all_varchar = true,
                               quote = '"', escape = '"', delim = ',', filename = true)
    ), cleaned AS (
        SELECT raw.*, {cleaned} FROM raw
    ), parsed AS (
        SELECT cleaned.*,
          {_non_negative_id("customer_id")} AS p_customer_id,
          {_non_negative_id("store_id")} AS p_store_id,
          c_product_name AS p_product_name,
          TRY_CAST(c_sales_date AS DATE) AS p_sales_date,
          {_non_negative_id("sales_person_id")} AS p_sales_person_id,
          TRY_CAST(c_price AS DECIMAL(18, 2)) AS p_price,
          TRY_CAST(c_quantity AS INTEGER) AS p_quantity,
          TRY_CAST(c_total_cost AS DECIMAL(18, 2)) AS p_total_cost
        FROM cleaned
    )
    SELECT parsed.*,
        nullif(concat_ws(',', {", ".join(reasons)}), '') AS reason,
        strftime(p_sales_date, '%Y-%m') AS sales_month,
        cu.first_name AS c_first_name, cu.last_name AS c_last_name, cu.address AS c_address,
        cu.pincode AS c_pincode, cu.phone_number AS c_phone_number,
        st.address AS store_address, st.store_manager_name,
        tm.first_name AS s_first_name, tm.last_name AS s_last_name, tm.manager_id AS s_manager_id,
        tm.is_manager AS s_is_manager, tm.address AS s_address, tm.pincode AS s_pincode
    FROM parsed
    LEFT JOIN customer cu ON p_customer_id = cu.customer_id
    LEFT JOIN store st ON p_store_id = st.id
    LEFT JOIN sales_team tm ON p_sales_person_id = tm.id
    """


_SALE_COLUMNS = """p_customer_id AS customer_id, p_store_id AS store_id,
    p_product_name AS product_name, p_sales_date AS sales_date,
    p_sales_person_id AS sales_person_id, p_price AS price, p_quantity AS quantity,
    p_total_cost AS total_cost"""


def load_dimensions(con: duckdb.DuckDBPyConnection, dims_dir: Path) -> None:
    """The dimension CSVs written by ``sales-etl generate`` (the pipeline reads the same rows
    from its database), typed as in the schema."""
    con.execute(
        "CREATE TABLE customer AS SELECT customer_id::BIGINT AS customer_id, first_name, "
        "last_name, address, pincode::VARCHAR AS pincode, phone_number::VARCHAR AS phone_number "
        f"FROM read_csv('{dims_dir / 'customer.csv'}', header = true, all_varchar = true)"
    )
    con.execute(
        "CREATE TABLE store AS SELECT id::BIGINT AS id, address, store_manager_name "
        f"FROM read_csv('{dims_dir / 'store.csv'}', header = true, all_varchar = true)"
    )
    con.execute(
        "CREATE TABLE sales_team AS SELECT id::BIGINT AS id, first_name, last_name, "
        "manager_id::BIGINT AS manager_id, is_manager, address, pincode "
        f"FROM read_csv('{dims_dir / 'sales_team.csv'}', header = true, all_varchar = true)"
    )


def run_reference(
    out_dir: Path, dims_dir: Path, files: list[str], threads: int | None = None
) -> dict[str, Any]:
    """Do the work; return stage seconds and the counts/totals to check against the pipeline."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # In memory (spilling to temp_directory when it does not fit): no database file to
    # checkpoint, which is how DuckDB is fastest for a one-off transform.
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET temp_directory = '{out_dir / 'duckdb_tmp'}'")
    stages: dict[str, float] = {}

    def timed(name: str, sql: str) -> None:
        start = time.perf_counter()
        con.execute(sql)
        stages[name] = round(time.perf_counter() - start, 3)

    start = time.perf_counter()
    load_dimensions(con, dims_dir)
    stages["dimensions"] = round(time.perf_counter() - start, 3)
    timed("classify (csv scan, parse, joins)", classify_sql(files))
    marts = out_dir / "marts"
    marts.mkdir(exist_ok=True)
    timed(
        "customer mart",
        f"""COPY (SELECT {_SALE_COLUMNS}, c_first_name AS first_name, c_last_name AS last_name,
            c_address AS address, c_pincode AS pincode, c_phone_number AS phone_number,
            NULL::VARCHAR AS additional_column, filename AS source_file,
            'reference' AS batch_id, sales_month
            FROM classified WHERE reason IS NULL)
        TO '{marts / "customer_data_mart"}'
        (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (sales_month), OVERWRITE_OR_IGNORE)""",
    )
    timed(
        "sales team mart",
        f"""COPY (SELECT {_SALE_COLUMNS}, s_first_name AS first_name, s_last_name AS last_name,
            s_address AS address, s_pincode AS pincode, s_manager_id AS manager_id,
            s_is_manager AS is_manager, store_address, store_manager_name,
            NULL::VARCHAR AS additional_column, filename AS source_file,
            'reference' AS batch_id, sales_month, p_store_id AS store_partition
            FROM classified WHERE reason IS NULL)
        TO '{marts / "sales_team_data_mart"}'
        (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (sales_month, store_partition),
         OVERWRITE_OR_IGNORE)""",
    )
    timed(
        "quarantine",
        f"""COPY (SELECT {", ".join(MANDATORY)}, reason, filename AS source_file
            FROM classified WHERE reason IS NOT NULL)
        TO '{marts / "quarantine.parquet"}' (FORMAT parquet, COMPRESSION snappy)""",
    )
    start = time.perf_counter()
    months = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT sales_month FROM classified WHERE reason IS NULL ORDER BY 1"
        ).fetchall()
    ]
    month_list = _sql_list(months)
    customer_month = con.execute(
        f"""SELECT count(*), sum(monthly_total) FROM (
            SELECT t.sales_month, t.customer_id, t.monthly_total, c.first_name, c.last_name
            FROM (SELECT sales_month, customer_id, sum(total_cost) AS monthly_total
                  FROM read_parquet('{marts / "customer_data_mart"}/*/*.parquet',
                                    hive_partitioning = true)
                  WHERE sales_month IN (SELECT unnest({month_list}))
                  GROUP BY ALL) t
            LEFT JOIN customer c USING (customer_id))"""
    ).fetchone()
    person_month = con.execute(
        f"""SELECT sales_month, sales_person_id, sum(total_cost) AS total_sales
            FROM read_parquet('{marts / "sales_team_data_mart"}/*/*/*.parquet',
                              hive_partitioning = true)
            WHERE sales_month IN (SELECT unnest({month_list}))
            GROUP BY ALL ORDER BY sales_month, total_sales DESC"""
    ).fetchall()
    stages["reporting aggregates"] = round(time.perf_counter() - start, 3)
    top: dict[str, tuple[int, str]] = {}
    for month, person, total in person_month:
        top.setdefault(month, (person, str(total)))
    counts = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE reason IS NULL) FROM classified"
    ).fetchone()
    con.close()
    return {
        "stages": stages,
        "rows_total": counts[0],
        "rows_loaded": counts[1],
        "rows_quarantined": counts[0] - counts[1],
        "months": months,
        "customer_month_rows": customer_month[0],
        "customer_month_total": str(customer_month[1]),
        "top_sellers": {m: {"sales_person_id": p, "total_sales": t} for m, (p, t) in top.items()},
    }


def main(argv: list[str]) -> int:
    """CLI used by bench/run.py so the reference runs (and is measured) in its own process."""
    out_dir, dims_dir, *files = argv
    result = run_reference(Path(out_dir), Path(dims_dir), files)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

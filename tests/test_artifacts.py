"""The run report (sales_etl/artifacts.py) and the terminal report (sales_etl/summary.py), both
rendered from real :func:`~sales_etl.summary.build_summary` output, no Prefect.

The summary is built the way the flow builds it: validation's file fates, the Spark stage's
batch figures from per-file row outcomes (:func:`~sales_etl.tasks.marts.summarise_outcomes`,
which decides the holds), the fates settled by
:func:`~sales_etl.tasks.files.apply_spark_outcome`. The expected figures below are counted
by hand from the row outcomes, not taken from the code.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from sales_etl.artifacts import (
    ARTIFACT_KEYS,
    failure_markdown,
    files_table,
    months_table,
    rows_table,
    summary_markdown,
    top_performers_table,
)
from sales_etl.file_fate import FileFate
from sales_etl.secrets import scrub
from sales_etl.settings import Settings
from sales_etl.summary import RunSummary, build_summary, format_summary
from sales_etl.tasks.files import apply_spark_outcome
from sales_etl.tasks.marts import summarise_outcomes
from sales_etl.tasks.reporting import MonthsRecomputed
from sales_etl.validators.model import MANDATORY_COLUMNS

README = Path(__file__).resolve().parent.parent / "README.md"
PASSWORD = "s3cr3t-Pa55"
SETTINGS = Settings(
    landing="s3://sales/landing",
    marts="s3://sales/marts",
    database_url=f"mysql+pymysql://etl:{PASSWORD}@db.internal:3306/sales",
)
A, BC, HELD, X = "to_process/a.csv", "to_process/b|c.csv", "to_process/h.csv", "to_process/x.csv"
MISSING = "missing mandatory column 'total_cost'"
#: (key, reason, sales month, rows), as Spark's row counts give them.
ROW_OUTCOMES = [
    (A, None, "2024-03", 2),
    (A, None, "2024-04", 1),
    (A, "invalid_price", None, 1),  # a: 4 rows, 3 loaded, 1 quarantined
    (BC, None, "2024-04", 2),  # b|c: 2 rows, 2 loaded
    (HELD, "unknown_customer_id", None, 3),
    (HELD, None, "2024-05", 1),  # h: 3 of 4 bad > 0.5 -> held whole
]
TOP_PERFORMERS = [
    {"sales_person_id": 7, "first_name": "Tanvi", "last_name": "Rao", "year": 2024,
     "month": 4, "total_sales": Decimal("100.50"), "incentive": Decimal("1.01")},
    {"sales_person_id": 5, "first_name": "Ann", "last_name": "Lee", "year": 2024,
     "month": 3, "total_sales": Decimal("90.00"), "incentive": Decimal("0.90")},
    {"sales_person_id": 6, "first_name": "Bo", "last_name": "Ek", "year": 2024,
     "month": 3, "total_sales": Decimal("90.00"), "incentive": Decimal("0.90")},
]  # fmt: skip


def _accepted(key: str) -> FileFate:
    return FileFate(
        key=key,
        accepted=True,
        category=None,
        reason=None,
        plugin=None,
        header=list(MANDATORY_COLUMNS),
    )


def validated() -> list[FileFate]:
    """Validation's fates, in claim order: three accepted, one rejected by a validator."""
    rejected = FileFate(
        key=X,
        accepted=False,
        category="bad_schema",
        reason=MISSING,
        plugin="builtin.header_schema",
        header=[c for c in MANDATORY_COLUMNS if c != "total_cost"],
    )
    return [_accepted(A), _accepted(BC), _accepted(HELD), rejected]


def run_summary() -> RunSummary:
    stats = summarise_outcomes(ROW_OUTCOMES, [A, BC, HELD], max_bad_row_fraction=0.5)
    stats.split_by_line = [BC]  # as build_batch_marts reports a file Spark read split by line
    return build_summary(
        run_id="r1",
        batch_id="20240401_020000",
        files=apply_spark_outcome(validated(), stats),
        stats=stats,
        reporting=MonthsRecomputed(
            months=stats.months,
            customer_month_rows=9,
            incentive_rows=3,
            top_performers=TOP_PERFORMERS,
        ),
        recovered=[],
    )


SUMMARY = run_summary()


def test_keys_are_accepted_by_prefect_and_documented() -> None:
    """Prefect accepts every key; the artifact table of docs/operating.md (the one operators'
    reference) lists exactly the keys a run publishes, and no other document keeps a copy of
    it (the replay's report is documented in the README)."""
    from pathlib import Path

    from prefect.client.schemas.actions import ArtifactCreate

    from sales_etl.artifacts import REPLAY_KEY

    for key in (*ARTIFACT_KEYS, REPLAY_KEY):
        assert ArtifactCreate(key=key, type="markdown", data="x").key == key  # Prefect's own rule
    repo = Path(__file__).resolve().parents[1]
    row = re.compile(r"^\| `(sales-etl-[a-z0-9-]+)` \|", flags=re.MULTILINE)
    tables = {
        str(doc.relative_to(repo)): row.findall(doc.read_text(encoding="utf-8"))
        for doc in (repo / "README.md", *sorted((repo / "docs").glob("*.md")))
    }
    assert {doc: keys for doc, keys in tables.items() if keys} == {
        "docs/operating.md": list(ARTIFACT_KEYS)  # exactly the keys, in the same order
    }
    assert f"`{REPLAY_KEY}`" in (repo / "README.md").read_text(encoding="utf-8")


def test_the_summary_json_has_the_counts_of_the_row_outcomes() -> None:
    data = SUMMARY.to_json()
    assert list(data) == [
        "run_id", "batch_id", "files_total", "files_accepted", "files_rejected",
        "files_by_outcome", "files", "files_left_waiting", "rows_total", "rows_loaded",
        "rows_quarantined", "quarantine_reasons", "rows_held", "months_recomputed",
        "top_performers", "recovered_runs", "replayable_rows", "replayable_watermark",
        "stage_seconds", "stage_details",
    ]  # fmt: skip
    assert (data["files_total"], data["files_accepted"], data["files_rejected"]) == (4, 2, 2)
    assert data["files_by_outcome"] == {"accepted": 2, "bad_schema": 1, "too_many_bad_rows": 1}
    assert (data["rows_total"], data["rows_loaded"], data["rows_quarantined"]) == (6, 5, 1)
    assert data["rows_held"] == 4
    assert data["months_recomputed"] == ["2024-03", "2024-04"]  # May had rows of h only
    assert data["quarantine_reasons"] == {"invalid_price": 1}
    files = data["files"]
    assert files[0] == {
        "file": A, "outcome": "accepted", "reason": None, "plugin": None, "extra_columns": [],
        "spark_read": "multiLine", "rows_total": 4, "rows_loaded": 3, "rows_quarantined": 1,
    }  # fmt: skip
    assert files[1]["spark_read"] == "split by line"
    assert (files[2]["outcome"], files[2]["rows_total"], files[2]["rows_bad"]) == (
        "too_many_bad_rows",
        4,
        3,
    )
    assert (files[2]["rows_loaded"], files[2]["rows_quarantined"]) == (0, 0)
    assert files[2]["top_reasons"] == {"unknown_customer_id": 3}
    assert "spark_read" not in files[2]  # held: not in the batch
    assert files[3] == {
        "file": X, "outcome": "bad_schema", "reason": MISSING,
        "plugin": "builtin.header_schema", "extra_columns": [],
    }  # fmt: skip
    # The JSON form describes the same run: the terminal report of either is the same.
    assert RunSummary.from_json(data).to_json() == data
    assert format_summary(data) == format_summary(SUMMARY)


def test_the_terminal_report() -> None:
    assert format_summary(SUMMARY).splitlines() == [
        "Batch 20240401_020000 (UTC)",
        "Files: 4 seen, 2 accepted, 2 rejected",
        f"  - {HELD}: too_many_bad_rows (3 of 4 rows (75%) are bad, more than "
        "SALES_ETL_MAX_BAD_ROW_FRACTION=0.5 allows; top reasons: unknown_customer_id 3. "
        "Nothing of it was loaded or quarantined: fix the file and send it again)",
        f"  - {X}: bad_schema ({MISSING})",
        "Rows: 6 read, 5 loaded, 1 quarantined; 4 in held files",
        "  - invalid_price: 1",
        "Months recomputed: 2024-03, 2024-04",
        "Top performer 2024-04: #7 Tanvi Rao, sales 100.50, incentive 1.01",
        "Top performer 2024-03: #5 Ann Lee, sales 90.00, incentive 0.90",
        "Top performer 2024-03: #6 Bo Ek, sales 90.00, incentive 0.90",
    ]


def test_tables() -> None:
    files = files_table(SUMMARY.files)
    assert [(f["file"], f["outcome"], f["rows_loaded"]) for f in files] == [
        (A, "accepted", 3),
        (BC, "accepted", 2),
        (HELD, "too_many_bad_rows", 0),
        (X, "bad_schema", ""),
    ]
    assert rows_table(SUMMARY) == [
        {"outcome": "loaded", "reason": "", "rows": 5},
        {"outcome": "quarantined", "reason": "invalid_price", "rows": 1},
    ]
    assert months_table(SUMMARY) == [
        {
            "month": "2024-03",
            "top_performers": "#5 Ann Lee, #6 Bo Ek",
            "top_sales": "90.00",
            "incentives_paid": "1.80",
        },
        {
            "month": "2024-04",
            "top_performers": "#7 Tanvi Rao",
            "top_sales": "100.50",
            "incentives_paid": "1.01",
        },
    ]
    assert [
        (t["month"], t["sales_person_id"], t["incentive"])
        for t in top_performers_table(SUMMARY.top_performers)
    ] == [
        ("2024-03", 5, "0.90"),
        ("2024-03", 6, "0.90"),
        ("2024-04", 7, "1.01"),
    ]


def test_summary_markdown_reports_the_run_without_the_password() -> None:
    text = summary_markdown(SUMMARY, SETTINGS)
    assert text.startswith("# Sales ETL run: Completed")
    assert "4 seen: 2 accepted, 2 rejected (bad\\_schema 1, too\\_many\\_bad\\_rows 1)" in text
    assert "6 read: 5 loaded, 1 quarantined; 4 in held files" in text
    assert "`20240401_020000`" in text
    assert "b\\|c.csv" not in text  # accepted files are in the table, not the rejects list
    assert "missing mandatory column 'total\\_cost'" in text
    assert "| to\\_process/h.csv | 4 | 3 | unknown\\_customer\\_id 3 |" in text
    assert "| 2024-04 | #7 Tanvi Rao | 100.50 | 1.01 |" in text
    assert PASSWORD not in text
    assert "mysql+pymysql://etl:\\*\\*\\*@db.internal:3306/sales" in text
    # Every table row has the same number of cells as its header (no cell broke the table).
    for block in re.findall(r"(?:^\|.*\|$\n?)+", text, flags=re.M):
        rows = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, block


def test_nothing_to_do() -> None:
    empty = build_summary(
        run_id="r2", batch_id=None, files=[], stats=None, reporting=None, recovered=[]
    )
    text = summary_markdown(empty, SETTINGS)
    assert "nothing to do" in text
    assert months_table(empty) == [] and top_performers_table(empty.top_performers) == []
    assert format_summary(empty) == "No files waiting in to_process/: nothing to do."
    assert empty.to_json()["files_total"] == 0 and empty.to_json()["rows_held"] == 0


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(f"cannot connect to mysql+pymysql://etl:{PASSWORD}@db.internal/sales"),
        RuntimeError(f"password was {PASSWORD}"),
    ],
)
def test_failure_markdown_scrubs_credentials(error: Exception) -> None:
    text = failure_markdown(SETTINGS, error, batch_id="20240401_020000", files=validated())
    assert text.startswith("# Sales ETL run: Failed")
    assert "RuntimeError" in text and PASSWORD not in text
    assert "4 file(s) seen, 3 accepted" in text
    assert "prefect flow-run retry" in text


def test_a_failed_runs_files_table_loads_nothing() -> None:
    # After the Spark stage the fates have row counts, but nothing of a failed run committed.
    table = files_table(SUMMARY.files, run_failed=True)
    assert [(f["file"], f["outcome"], f["rows_loaded"]) for f in table] == [
        (A, "accepted, not loaded (run failed)", ""),
        (BC, "accepted, not loaded (run failed)", ""),
        (HELD, "too_many_bad_rows", ""),
        (X, "bad_schema", ""),
    ]


def test_scrub_masks_aws_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abcdEFGH1234/secret")
    assert scrub("signature for abcdEFGH1234/secret failed") == "signature for *** failed"
    assert scrub("https://user:pw@host/x") == "https://user:***@host/x"
    assert scrub("s3://bucket/prefix") == "s3://bucket/prefix"

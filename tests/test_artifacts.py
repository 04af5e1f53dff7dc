"""The run report (sales_etl/artifacts.py): pure builders over a run summary, no Prefect."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from sales_etl.artifacts import (
    ARTIFACT_KEYS,
    failure_markdown,
    files_table,
    months_table,
    rows_table,
    scrub,
    summary_markdown,
    top_performers_table,
)
from sales_etl.settings import Settings

PASSWORD = "s3cr3t-Pa55"
SETTINGS = Settings(
    landing="s3://sales/landing",
    marts="s3://sales/marts",
    database_url=f"mysql+pymysql://etl:{PASSWORD}@db.internal:3306/sales",
)
SUMMARY = {
    "run_id": "r1",
    "batch_id": "20240401_020000",
    "files_total": 3,
    "files_accepted": 2,
    "files_rejected": 1,
    "files_by_outcome": {"accepted": 2, "bad_schema": 1},
    "files": [
        {"file": "to_process/a.csv", "outcome": "accepted", "reason": None, "plugin": None,
         "rows_total": 4, "rows_loaded": 3, "rows_quarantined": 1},
        {"file": "to_process/b|c.csv", "outcome": "accepted", "reason": None, "plugin": None,
         "rows_total": 2, "rows_loaded": 2, "rows_quarantined": 0},
        {"file": "to_process/x.csv", "outcome": "bad_schema",
         "reason": "missing mandatory column 'total_cost'", "plugin": "builtin.header"},
    ],
    "rows_total": 6,
    "rows_loaded": 5,
    "rows_quarantined": 1,
    "quarantine_reasons": {"invalid_price": 1},
    "months_recomputed": ["2024-03", "2024-04"],
    "top_performers": [
        {"sales_person_id": 7, "first_name": "Tanvi", "last_name": "Rao", "year": 2024,
         "month": 4, "total_sales": Decimal("100.50"), "incentive": Decimal("1.01")},
        {"sales_person_id": 5, "first_name": "Ann", "last_name": "Lee", "year": 2024,
         "month": 3, "total_sales": Decimal("90.00"), "incentive": Decimal("0.90")},
        {"sales_person_id": 6, "first_name": "Bo", "last_name": "Ek", "year": 2024,
         "month": 3, "total_sales": Decimal("90.00"), "incentive": Decimal("0.90")},
    ],
    "recovered_runs": [],
}  # fmt: skip


def test_keys_are_stable_lowercase_dashes() -> None:
    """Prefect accepts every key, and the artifact tables of the README and docs/operating.md
    list exactly the keys a run publishes (the replay's report is documented in the README)."""
    from pathlib import Path

    from prefect.client.schemas.actions import ArtifactCreate

    from sales_etl.artifacts import REPLAY_KEY

    for key in (*ARTIFACT_KEYS, REPLAY_KEY):
        assert ArtifactCreate(key=key, type="markdown", data="x").key == key  # Prefect's own rule
    repo = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/operating.md"):
        text = (repo / doc).read_text(encoding="utf-8")
        table = re.findall(r"^\| `(sales-etl-[a-z0-9-]+)` \|", text, flags=re.MULTILINE)
        assert table == list(ARTIFACT_KEYS), doc  # exactly the keys, in the same order
    assert f"`{REPLAY_KEY}`" in (repo / "README.md").read_text(encoding="utf-8")


def test_tables() -> None:
    files = files_table(SUMMARY)
    assert [(f["file"], f["outcome"], f["rows_loaded"]) for f in files] == [
        ("to_process/a.csv", "accepted", 3),
        ("to_process/b|c.csv", "accepted", 2),
        ("to_process/x.csv", "bad_schema", ""),
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
        (t["month"], t["sales_person_id"], t["incentive"]) for t in top_performers_table(SUMMARY)
    ] == [
        ("2024-03", 5, "0.90"),
        ("2024-03", 6, "0.90"),
        ("2024-04", 7, "1.01"),
    ]


def test_summary_markdown_reports_the_run_without_the_password() -> None:
    text = summary_markdown(SUMMARY, SETTINGS)
    assert text.startswith("# Sales ETL run: Completed")
    assert "3 seen: 2 accepted, 1 rejected (bad\\_schema 1)" in text
    assert "6 read: 5 loaded, 1 quarantined" in text
    assert "`20240401_020000`" in text
    assert "b\\|c.csv" not in text  # accepted files are in the table, not the rejects list
    assert "missing mandatory column 'total\\_cost'" in text
    assert "| 2024-04 | #7 Tanvi Rao | 100.50 | 1.01 |" in text
    assert PASSWORD not in text
    assert "mysql+pymysql://etl:\\*\\*\\*@db.internal:3306/sales" in text
    # Every table row has the same number of cells as its header (no cell broke the table).
    for block in re.findall(r"(?:^\|.*\|$\n?)+", text, flags=re.M):
        rows = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, block


def test_nothing_to_do() -> None:
    empty = {
        **SUMMARY,
        "files_total": 0,
        "files": [],
        "months_recomputed": [],
        "top_performers": [],
    }
    text = summary_markdown(empty, SETTINGS)
    assert "nothing to do" in text
    assert months_table(empty) == [] and top_performers_table(empty) == []


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(f"cannot connect to mysql+pymysql://etl:{PASSWORD}@db.internal/sales"),
        RuntimeError(f"password was {PASSWORD}"),
    ],
)
def test_failure_markdown_scrubs_credentials(error: Exception) -> None:
    text = failure_markdown(
        SETTINGS,
        error,
        batch_id="20240401_020000",
        plans=[{"key": "to_process/a.csv", "accepted": True}],
    )
    assert text.startswith("# Sales ETL run: Failed")
    assert "RuntimeError" in text and PASSWORD not in text
    assert "1 file(s) seen, 1 accepted" in text
    assert "prefect flow-run retry" in text


def test_scrub_masks_aws_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abcdEFGH1234/secret")
    assert scrub("signature for abcdEFGH1234/secret failed") == "signature for *** failed"
    assert scrub("https://user:pw@host/x") == "https://user:***@host/x"
    assert scrub("s3://bucket/prefix") == "s3://bucket/prefix"

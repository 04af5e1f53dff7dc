"""The bad-input corpus (issue 6): every file, its bytes and its documented outcome.

Each :class:`CorpusFile` says where the file must end up (``processed`` or an
``error_files/<category>/`` folder, or ``to_process`` for the one hidden file the product
ignores on purpose) and, for a file that is loaded, the expected quarantine reason of every
record in file order (``None`` = loaded). The table in ``docs/reliability.md`` lists the same
files; ``tests/test_bad_input_corpus.py`` runs them all in one flow run and checks each one.

The expected row reasons are written by hand from the input rules in DESIGN.md / README, and
cross-checked against the independent rule oracle :func:`expected_reason` (also used by the
property tests), never against the product's code.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from helpers import SALES_COLUMNS, load_dimension_folder, write_dimensions

PROCESSED = "processed"
WRONG_TYPE = "wrong_file_types"
BAD_SCHEMA = "bad_schema"
DUPLICATES = "duplicates"
IGNORED = "to_process"  # left where it is (hidden file: a partial upload or editor swap file)

HEADER = SALES_COLUMNS  # the tests' own copy of the mandatory columns (tests/helpers.py)
HEADER_LINE = ",".join(HEADER)

# The corpus's dimension rows (ids only matter to the rules).
CUSTOMERS = {1: ("Asha", "Rao"), 2: ("Ben", "Cole"), 3: ("Chen", "Wu")}
STORES = {10: "Mona Shah", 11: "Nick Bose"}
SALES_TEAM = {100: ("Ann", "Lee"), 101: ("Bob", "Ray")}

GOOD = "2024-03-05"


@dataclass
class CorpusFile:
    """One corpus file: landing key (under ``to_process/``), bytes and documented outcome."""

    name: str
    data: bytes
    outcome: str  # PROCESSED, an error category, or IGNORED
    what: str  # one line for the docs table
    reasons: list[str | None] = field(default_factory=list)  # per record, file order
    # extra checks on loaded rows: product names expected verbatim among the loaded rows
    products: list[str] = field(default_factory=list)


def load_corpus_dimensions(folder: Path, database_url: str) -> None:
    """The corpus's dimension rows, written as CSVs into ``folder`` and loaded into the database."""
    write_dimensions(
        folder,
        customer=[
            {"customer_id": cid, "first_name": f, "last_name": last, "pincode": "560001"}
            for cid, (f, last) in CUSTOMERS.items()
        ],
        store=[
            {"id": sid, "address": "Main St", "store_manager_name": manager}
            for sid, manager in STORES.items()
        ],
        sales_team=[
            {"id": pid, "first_name": f, "last_name": last, "is_manager": "N"}
            for pid, (f, last) in SALES_TEAM.items()
        ],
    )
    load_dimension_folder(database_url, folder)


# --- the rule oracle (independent of sales_etl/rules/transform.py) ----------------------------

_ID = re.compile(r"[0-9]{1,18}")
_MONEY = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,2})?")
_QTY = re.compile(r"-?[0-9]{1,9}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ID_COLUMNS = ("customer_id", "store_id", "sales_person_id")


def _clean(value: str | None) -> str | None:
    """Values are trimmed of spaces; empty means missing."""
    if value is None:
        return None
    value = value.strip(" ")
    return value or None


def parse_value(column: str, value: str | None) -> object | None:
    """The typed value of one cleaned field, or None if it does not parse."""
    if value is None:
        return None
    if column in ID_COLUMNS:
        return int(value) if _ID.fullmatch(value) else None
    if column == "sales_date":
        if not _DATE.fullmatch(value):
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    if column in ("price", "total_cost"):
        return Decimal(value) if _MONEY.fullmatch(value) else None
    if column == "quantity":
        return int(value) if _QTY.fullmatch(value) else None
    return value  # product_name: any text


def expected_reason(
    values: dict[str, str | None],
    *,
    malformed: bool = False,
    customers: Sequence[int] = tuple(CUSTOMERS),
    stores: Sequence[int] = tuple(STORES),
    sales_team: Sequence[int] = tuple(SALES_TEAM),
) -> str | None:
    """The quarantine reason of one record by the documented rules (None = loaded)."""
    cleaned = {c: _clean(values.get(c)) for c in HEADER}
    parsed = {c: parse_value(c, cleaned[c]) for c in HEADER}
    codes = ["malformed_row"] if malformed else []
    codes += [f"missing_{c}" for c in HEADER if cleaned[c] is None]
    codes += [f"invalid_{c}" for c in HEADER if cleaned[c] is not None and parsed[c] is None]
    qty, price, total = parsed["quantity"], parsed["price"], parsed["total_cost"]
    if qty is not None and qty <= 0:
        codes.append("non_positive_quantity")
    if price is not None and price < 0:
        codes.append("negative_price")
    if None not in (qty, price, total) and abs(total - price * qty) > Decimal("0.01"):
        codes.append("total_cost_mismatch")
    known = {"customer_id": customers, "store_id": stores, "sales_person_id": sales_team}
    for column in ID_COLUMNS:
        if parsed[column] is not None and parsed[column] not in known[column]:
            codes.append(f"unknown_{column}")
    return ",".join(codes) or None


# --- building blocks -----------------------------------------------------------------------------


def rec(
    customer: str = "1",
    store: str = "10",
    product: str = "pen",
    date: str = GOOD,
    person: str = "100",
    price: str = "10.00",
    quantity: str = "2",
    total: str = "20.00",
) -> list[str]:
    """One record's fields in HEADER order."""
    return [customer, store, product, date, person, price, quantity, total]


def _quote(value: str) -> str:
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def lines(records: Sequence[Sequence[str]], header: str = HEADER_LINE, end: str = "\n") -> str:
    """CSV text: header then records (RFC 4180 quoting where needed), ``end`` after each line."""
    out = [header] + [",".join(_quote(v) for v in r) for r in records]
    return "".join(line + end for line in out)


def good_csv(n: int = 2, customer: str = "1") -> bytes:
    return lines([rec(customer=customer)] * n).encode()


def _utf16_be_no_bom(text: str) -> bytes:
    return codecs.encode(text, "utf-16-be")


# --- the corpus ----------------------------------------------------------------------------------


def build_corpus() -> list[CorpusFile]:
    files: list[CorpusFile] = []

    def add(name, data, outcome, what, reasons=(), products=()):  # type: ignore[no-untyped-def]
        files.append(CorpusFile(name, data, outcome, what, list(reasons), list(products)))

    good_text = lines([rec()])
    # -- not CSV text -> wrong_file_types
    add("junk_binary.csv", bytes(range(256)) * 8, WRONG_TYPE, "binary junk named .csv")
    add(
        "junk_random.csv",
        bytes((i * 97 + 13) % 256 for i in range(5000)),
        WRONG_TYPE,
        "pseudo-random bytes named .csv",
    )
    add(
        "latin1.csv",
        lines([rec(product="Café crème")]).encode("latin-1"),
        WRONG_TYPE,
        "Latin-1 text (é as 0xe9)",
    )
    add("utf16_bom.csv", good_text.encode("utf-16"), WRONG_TYPE, "UTF-16 with BOM")
    add("utf16_be_no_bom.csv", _utf16_be_no_bom(good_text), WRONG_TYPE, "UTF-16-BE, no BOM")
    add("gzip.csv", gzip.compress(good_csv(3)), WRONG_TYPE, "gzip stream named .csv")
    add(
        "nul_byte.csv",
        good_text.replace("pen", "p\x00n").encode(),
        WRONG_TYPE,
        "valid UTF-8 but a NUL byte inside",
    )
    add(
        "truncated_utf8.csv",
        good_text.encode() + "é".encode()[:1],
        WRONG_TYPE,
        "UTF-8 cut in the middle of a character at the end",
    )
    add("notes.txt", good_text.encode(), WRONG_TYPE, "good CSV content, .txt name")
    add("no_extension", good_text.encode(), WRONG_TYPE, "no extension")
    add("sales.csv.bak", good_text.encode(), WRONG_TYPE, "'.csv' not at the end")

    # -- header problems -> bad_schema
    add("empty.csv", b"", BAD_SCHEMA, "0 bytes")
    add("only_bom.csv", b"\xef\xbb\xbf", BAD_SCHEMA, "a UTF-8 BOM and nothing else")
    add(
        "blank_first_line.csv",
        ("\n" + good_text).encode(),
        BAD_SCHEMA,
        "blank first line (no header record)",
    )
    add(
        "semicolon.csv",
        good_text.replace(",", ";").encode(),
        BAD_SCHEMA,
        "';' delimiter: the header is one column",
    )
    add(
        "header_duplicate.csv",
        lines([[*rec(), "x", "y"]], HEADER_LINE + ",note,note").encode(),
        BAD_SCHEMA,
        "duplicate extra column name",
    )
    add(
        "header_duplicate_mandatory.csv",
        lines([[*rec(), "1"]], HEADER_LINE + ",customer_id").encode(),
        BAD_SCHEMA,
        "a mandatory column twice",
    )
    add(
        "header_upper.csv",
        lines([rec()], HEADER_LINE.upper()).encode(),
        BAD_SCHEMA,
        "header in upper case",
    )
    add(
        "header_title.csv",
        lines([rec()], HEADER_LINE.replace("customer_id", "Customer_Id")).encode(),
        BAD_SCHEMA,
        "one column name in title case",
    )
    add(
        "header_leading_space.csv",
        lines([rec()], HEADER_LINE.replace(",store_id", ", store_id")).encode(),
        BAD_SCHEMA,
        "' store_id' (leading space)",
    )
    add(
        "header_trailing_space.csv",
        lines([rec()], HEADER_LINE + " ").encode(),
        BAD_SCHEMA,
        "'total_cost ' (trailing space)",
    )
    add(
        "header_trailing_comma.csv",
        lines([[*rec(), ""]], HEADER_LINE + ",").encode(),
        BAD_SCHEMA,
        "trailing comma: an empty column name",
    )
    add(
        "header_missing_column.csv",
        lines([rec()[:-1]], ",".join(HEADER[:-1])).encode(),
        BAD_SCHEMA,
        "total_cost column missing",
    )
    add(
        "header_huge.csv",
        (HEADER_LINE + "," + "x" * (1024 * 1024 + 10) + "\n").encode(),
        BAD_SCHEMA,
        "header record longer than 1 MiB",
    )
    wide_header = HEADER_LINE + "," + ",".join(f"x{i}" for i in range(20_500))
    add(
        "header_wide.csv",
        (wide_header + "\n" + ",".join(rec() + [""] * 20_500) + "\n").encode(),
        BAD_SCHEMA,
        "a header of 20,508 columns: more than Spark's CSV maxColumns (20,480)",
    )
    add(
        "header_unclosed_quote.csv",
        (HEADER_LINE + ',"open\n').encode(),
        BAD_SCHEMA,
        "header with an unclosed quote",
    )

    # -- accepted files (row outcomes per record)
    add(
        "bom.csv",
        b"\xef\xbb\xbf" + lines([rec(), rec(customer="2")]).encode(),
        PROCESSED,
        "UTF-8 BOM + 2 good rows",
        [None, None],
    )
    add(
        "crlf.csv",
        lines([rec(), rec(quantity="0", total="0.00")], end="\r\n").encode(),
        PROCESSED,
        "CRLF line ends",
        [None, "non_positive_quantity"],
    )
    add(
        "bom_crlf_header_only.csv",
        b"\xef\xbb\xbf" + (HEADER_LINE + "\r\n").encode(),
        PROCESSED,
        "BOM + CRLF, header only: 0 rows",
    )
    add("header_only.csv", (HEADER_LINE + "\n").encode(), PROCESSED, "header only: 0 rows")
    add(
        "header_only_no_newline.csv",
        HEADER_LINE.encode(),
        PROCESSED,
        "header only, no final newline: 0 rows",
    )
    add(
        "no_final_newline.csv",
        lines([rec()]).encode().rstrip(b"\n"),
        PROCESSED,
        "no newline after the last record",
        [None],
    )
    quoted = [
        rec(product="pen, blue"),
        rec(product='say "hi"'),
        rec(product="two\nlines"),
        rec(product="crlf\r\ninside"),
        rec(product="  spaced  "),
    ]
    add(
        "quoted_fields.csv",
        lines(quoted).encode(),
        PROCESSED,
        "RFC 4180: commas, doubled quotes, LF and CRLF inside quoted fields",
        [None] * 5,
        ["pen, blue", 'say "hi"', "two\nlines", "crlf\r\ninside", "spaced"],
    )
    all_quoted = ",".join(f'"{v}"' for v in HEADER) + "\n" + ",".join(f'"{v}"' for v in rec())
    add("quoted_all.csv", (all_quoted + "\n").encode(), PROCESSED, "every field quoted", [None])
    add(
        "reordered_extra_columns.csv",
        lines(
            [["x1", *reversed(rec()), "_y"]],
            "note," + ",".join(reversed(HEADER)) + ",_corrupt_record",
        ).encode(),
        PROCESSED,
        "columns in reverse order + extra columns named note and _corrupt_record",
        [None],
    )
    long_name = "L" * (2 * 1024 * 1024)
    add(
        "long_line.csv",
        lines([rec(product=long_name), rec()]).encode(),
        PROCESSED,
        "a 2 MiB product name (one 2 MiB line)",
        [None, None],
        [long_name],
    )
    add(
        "blank_lines.csv",
        (HEADER_LINE + "\n" + ",".join(rec()) + "\n\n\n" + ",".join(rec()) + "\n").encode(),
        PROCESSED,
        "blank lines between records are skipped",
        [None, None],
    )
    nan = [
        rec(price="NaN", total="NaN"),
        rec(price="Infinity", total="20.00"),
        rec(price="-Infinity", total="20.00"),
        rec(price="1e309", total="20.00"),
        rec(total="2e1"),
        rec(price="10.005", total="20.01"),
        rec(price=" 10.00 ", total=" 20.00 "),
    ]
    add(
        "nan_infinity.csv",
        lines(nan).encode(),
        PROCESSED,
        "NaN, Infinity, 1e309, exponents, 3 decimals in money",
        [
            "invalid_price,invalid_total_cost",
            "invalid_price",
            "invalid_price",
            "invalid_price",
            "invalid_total_cost",
            "invalid_price",
            None,
        ],
    )
    qty = [
        rec(quantity="-2", total="-20.00"),
        rec(quantity="0", total="0.00"),
        rec(quantity="-0", total="0.00"),
        rec(quantity="1.5", total="15.00"),
        rec(quantity="+2", total="20.00"),
        rec(quantity="9999999999", total="20.00"),
        rec(price="-1.00", quantity="1", total="-1.00"),
        rec(price="0.00", quantity="3", total="0.00"),
        rec(price="-0.00", quantity="3", total="0.00"),
    ]
    add(
        "quantities.csv",
        lines(qty).encode(),
        PROCESSED,
        "negative, zero, fractional, signed, 10-digit quantities; negative and zero prices",
        [
            "non_positive_quantity",
            "non_positive_quantity",
            "non_positive_quantity",
            "invalid_quantity",
            "invalid_quantity",
            "invalid_quantity",
            "negative_price",
            None,
            None,
        ],
    )
    dates = [
        rec(date="2024-02-30"),
        rec(date="30-01-2024"),
        rec(date=""),
        rec(date="2024-2-3"),
        rec(date="2024-02-29"),
        rec(date="2023-02-29"),
        rec(date="2024-13-01"),
        rec(date="2024-03-05T10:00:00"),
        rec(date="2024/03/05"),
        rec(date="   "),
    ]
    add(
        "dates.csv",
        lines(dates).encode(),
        PROCESSED,
        "impossible, day-first, empty, unpadded, leap-day, time-stamped, slashed dates",
        [
            "invalid_sales_date",
            "invalid_sales_date",
            "missing_sales_date",
            "invalid_sales_date",
            None,
            "invalid_sales_date",
            "invalid_sales_date",
            "invalid_sales_date",
            "invalid_sales_date",
            "missing_sales_date",
        ],
    )
    ids = [
        rec(customer="4294967297"),
        rec(store="2147483648"),
        rec(person="999999999999999999"),
        rec(customer="9223372036854775808"),
        rec(customer="123456789012345678901234567890"),
        rec(customer="-1"),
        rec(customer="1.0"),
        rec(customer="0x1"),
        rec(customer="0001"),
    ]
    add(
        "big_ids.csv",
        lines(ids).encode(),
        PROCESSED,
        "ids beyond 32 bits (unknown), beyond 64 bits / 19+ digits, negative, decimal, hex "
        "(invalid), zero-padded (= 1)",
        [
            "unknown_customer_id",
            "unknown_store_id",
            "unknown_sales_person_id",
            "invalid_customer_id",
            "invalid_customer_id",
            "invalid_customer_id",
            "invalid_customer_id",
            "invalid_customer_id",
            None,
        ],
    )
    amounts = [
        rec(price="12345678901234567.00", quantity="1", total="12345678901234567.00"),
        rec(price="5000000000000000.00", quantity="2", total="10000000000000000.00"),
        rec(
            customer="3",
            store="11",
            person="101",
            date="2024-04-30",
            price="9999999999999999.99",
            quantity="1",
            total="9999999999999999.99",
        ),
        rec(total="20.01"),
        rec(total="20.02"),
        rec(total="19.99"),
    ]
    add(
        "big_amounts.csv",
        lines(amounts).encode(),
        PROCESSED,
        "amounts beyond DECIMAL(18,2) (17+ integer digits) invalid; 16 digits load; "
        "mismatch tolerance exactly 0.01",
        [
            "invalid_price,invalid_total_cost",
            "invalid_total_cost",
            None,
            None,
            "total_cost_mismatch",
            None,
        ],
    )
    formulas = [
        "=cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "+1+1",
        "-2+3",
        "'; DROP TABLE customer; --",
        "<script>alert(1)</script>",
        "日本語 ✓ 🚀",
    ]
    add(
        "formula_injection.csv",
        lines([rec(product=p) for p in formulas]).encode(),
        PROCESSED,
        "spreadsheet formulas, SQL and HTML in product names: loaded verbatim as data",
        [None] * len(formulas),
        formulas,
    )
    missing = [
        rec(customer="", store="", person=""),
        rec(product="", price="", quantity="", total=""),
        rec(customer="  ", product="   "),
    ]
    add(
        "missing_values.csv",
        lines(missing).encode(),
        PROCESSED,
        "empty and blank values",
        [
            "missing_customer_id,missing_store_id,missing_sales_person_id",
            "missing_product_name,missing_price,missing_quantity,missing_total_cost",
            "missing_customer_id,missing_product_name",
        ],
    )
    add(
        "unknown_ids.csv",
        lines([rec(customer="99", store="12", person="102")]).encode(),
        PROCESSED,
        "ids not in the dimension tables",
        ["unknown_customer_id,unknown_store_id,unknown_sales_person_id"],
    )
    malformed_text = (
        HEADER_LINE
        + "\n"
        + ",".join(rec())
        + ",extra\n"
        + ",".join(rec()[:-1])
        + "\n"
        + ",".join(rec())
        + "\n"
    )
    add(
        "malformed_rows.csv",
        malformed_text.encode(),
        PROCESSED,
        "one record with a field too many, one with a field too few",
        ["malformed_row", "malformed_row,missing_total_cost", None],
    )
    add(
        "wide_line.csv",
        lines([rec()], end="\n").encode() + (",".join(rec()) + "," * 20_473 + "\n").encode(),
        PROCESSED,
        "a line of 20,481 fields (a good row's 8 values + 20,473 commas): wider than Spark's "
        "CSV maxColumns (20,480)",
        [None, "malformed_row"],
    )

    # -- odd file names (all good content, all loaded), sub-folder, hidden file
    for i, odd in enumerate(
        [
            "sales 2024 (copy) [1].csv",
            "ventes_été_日本.csv",
            "a:b.csv",
            "100%_#hash&amp;$x.csv",
            "{brace}*star?.csv",
            "quote'dq\"back\\slash.csv",
            "-leading-dash.csv",
            "UPPER.CSV",
            "sub/dir/nested.csv",
        ]
    ):
        add(
            odd,
            lines([rec(product=f"odd {i}"), rec(customer="2")]).encode(),
            PROCESSED,
            "odd characters in the file name",
            [None, None],
        )
    add(
        ".hidden_upload.csv",
        good_csv(1),
        IGNORED,
        "hidden name (partial upload / swap file): ignored, stays in to_process/",
    )

    # -- duplicates: byte-identical to another file of the same batch
    add(
        "zz_copy_of_bom.csv",
        files[[f.name for f in files].index("bom.csv")].data,
        DUPLICATES,
        "byte-identical copy of bom.csv in the same batch",
    )
    return files

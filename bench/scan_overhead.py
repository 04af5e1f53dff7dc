"""What deciding :attr:`IncomingFile.splittable` adds to the validation scan (issue 16 §1).

    .venv/bin/python bench/scan_overhead.py [--mib 100] [--repeat 5]

Writes two ~``--mib`` MiB sales files into a temporary folder: the generator's shape (no
quotes) and one with three quoted fields per line (commas and doubled quotes inside: the
worst case, every chunk takes the quote pairing check). Then, interleaved in this one
process, ``IncomingFile.scan`` with the line-mode check as shipped and with it switched off
(its ``feed``/``finish`` replaced by no-ops: the scan as it was before). Prints the median
seconds of each and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sales_etl.storage import open_store
from sales_etl.validators import model
from sales_etl.validators.model import IncomingFile

HEADER = b"customer_id,store_id,product_name,sales_date,sales_person_id,price,quantity,total_cost\n"


def _rows(quoted: bool, count: int) -> bytes:
    if quoted:
        line = b'%d,%d,"oats, %dkg",2024-03-%02d,%d,"10.00",2,"say ""%d"""\n'
    else:
        line = b"%d,%d,oats %dkg,2024-03-%02d,%d,10.00,2,20.00\n"
    return b"".join(
        line
        % (
            (i, i % 20, i % 50, i % 28 + 1, i % 80, i)
            if quoted
            else (i, i % 20, i % 50, i % 28 + 1, i % 80)
        )
        for i in range(count)
    )


def _write(path: Path, quoted: bool, mib: int) -> int:
    block = _rows(quoted, 20_000)
    with path.open("wb") as out:
        out.write(HEADER)
        while out.tell() < mib * 2**20:
            out.write(block)
        return out.tell()


def _timed_scan(store, key: str, check: bool) -> tuple[float, IncomingFile]:
    original = (model._LineModeCheck.feed, model._LineModeCheck.finish)
    if not check:
        model._LineModeCheck.feed = lambda self, chunk: None  # type: ignore[method-assign]
        model._LineModeCheck.finish = lambda self: False  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        scanned = IncomingFile.scan(store, key)
        return time.perf_counter() - started, scanned
    finally:
        model._LineModeCheck.feed, model._LineModeCheck.finish = original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "to_process").mkdir()
        store = open_store(str(root))
        for name, quoted in (("no quotes", False), ("3 quoted fields per line", True)):
            key = f"to_process/{'quoted' if quoted else 'plain'}.csv"
            size = _write(root / key, quoted, args.mib)
            before, after = [], []
            for _ in range(args.repeat):  # interleaved: a drift of the machine hits both alike
                before.append(_timed_scan(store, key, check=False)[0])
                seconds, scanned = _timed_scan(store, key, check=True)
                after.append(seconds)
            if not scanned.splittable:
                raise SystemExit(f"{key}: expected a splittable file")
            b, a = statistics.median(before), statistics.median(after)
            print(
                f"{name:26} {size / 2**20:6.0f} MiB  scan before {b:6.3f} s  "
                f"with the line-mode check {a:6.3f} s  = {a / b:.2f}x  "
                f"(+{(a - b) / (size / 2**20) * 100:.2f} s per 100 MiB)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

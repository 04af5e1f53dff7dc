"""Example single-file validator plugin: refuse files above a size limit.

Drop this file into the folder named by ``SALES_ETL_PLUGINS_DIR`` (in a container, mount the
folder: no rebuild, no pip) and every run loads it as plugin ``dir.max_file_size``. A file larger
than ``SALES_ETL_MAX_FILE_BYTES`` bytes (default 1 GiB) goes to
``error_files/too_large/<batch>/``. It only reads ``file.size``, which the run measured already,
so it costs nothing; ``tryfirst`` puts it right after the built-in file-type check, before the
header is parsed.

Switch it off with ``SALES_ETL_DISABLE_PLUGINS=dir.max_file_size``.
"""

from __future__ import annotations

import os

from sales_etl.validators import IncomingFile, Rejection, hookimpl

#: The ``error_files/<category>/`` folder of refused files.
CATEGORY = "too_large"
#: Environment variable holding the limit in bytes.
LIMIT_ENV = "SALES_ETL_MAX_FILE_BYTES"
#: The limit when the variable is unset.
DEFAULT_LIMIT_BYTES = 1024**3


def limit_bytes() -> int:
    """The limit from ``SALES_ETL_MAX_FILE_BYTES``; a bad value is a crash naming the plugin."""
    raw = os.environ.get(LIMIT_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_LIMIT_BYTES
    if not raw.isdigit() or int(raw) == 0:
        raise ValueError(f"{LIMIT_ENV} must be a whole number of bytes > 0, got {raw!r}")
    return int(raw)


@hookimpl(tryfirst=True)
def sales_etl_validate_file(file: IncomingFile) -> Rejection | None:
    """Reject a file larger than the limit."""
    limit = limit_bytes()
    if file.size > limit:
        return Rejection(
            CATEGORY, f"file is {file.size:,} bytes, above the {limit:,}-byte limit ({LIMIT_ENV})"
        )
    return None

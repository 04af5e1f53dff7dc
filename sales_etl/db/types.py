"""Column types that keep money exact on every backend."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class Money(TypeDecorator[Decimal]):
    """DECIMAL(precision, 2) on MySQL and friends; exact text on SQLite.

    SQLite has no decimal type: NUMERIC columns become floating point, which turns
    0.1 + 0.2 into 0.30000000000000004. Storing the canonical decimal string keeps cents exact.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 3))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        exact = Decimal(str(value)).quantize(Decimal(1).scaleb(-self.scale), rounding=ROUND_HALF_UP)
        return str(exact) if dialect.name == "sqlite" else exact

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-self.scale), rounding=ROUND_HALF_UP)


#: A UTC timestamp (naive ``datetime``): microseconds kept on MySQL/MariaDB too, where a plain
#: DATETIME would round them away and make "which came first" depend on the backend.
UtcDateTime = DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

#: Free text that may outgrow MySQL's 64 KiB TEXT (a run summary lists every file of the batch).
LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

#: Table options for MySQL/MariaDB: InnoDB (transactions, row locks), 4-byte UTF-8, and a binary
#: collation so strings compare exactly as they do on SQLite ('a' != 'A', 'é' != 'e').
MYSQL_TABLE_OPTIONS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}

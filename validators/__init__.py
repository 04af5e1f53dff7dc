"""File validation for the sales ETL: the pluggy hook specification, the plugin manager,
the built-in validators and the pandera schemas.

Writing a plugin needs only what this package exports::

    from sales_etl.validators import BAD_SCHEMA, IncomingFile, Rejection, hookimpl

The plugin manager lives in :mod:`sales_etl.validators.manager`, the schemas in
:mod:`sales_etl.validators.schemas` (imported on demand: they pull in pandera), what
``sales-etl plugins`` prints in :mod:`sales_etl.validators.listing`, and the helpers plugin
authors test with in :mod:`sales_etl.validators.testing` (tests only: it imports pytest).
The author guide is ``docs/plugins.md``.
"""

from sales_etl.validators.hookspecs import HOOKSPEC_VERSION, PROJECT, hookimpl, hookspec
from sales_etl.validators.model import (
    BAD_SCHEMA,
    DUPLICATE,
    UNKNOWN,
    WRONG_FILE_TYPE,
    IncomingFile,
    Rejection,
)

__all__ = [
    "BAD_SCHEMA",
    "DUPLICATE",
    "HOOKSPEC_VERSION",
    "PROJECT",
    "UNKNOWN",
    "WRONG_FILE_TYPE",
    "IncomingFile",
    "Rejection",
    "hookimpl",
    "hookspec",
]

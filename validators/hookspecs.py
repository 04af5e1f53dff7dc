"""The validator hook specification: the one contract between the pipeline and its plugins.

A plugin is any module, class or object with a function named after a hook below and marked
with :data:`hookimpl`. It is found through the ``sales_etl`` entry-point group of an installed
distribution, or as a ``.py`` file in ``settings.plugins_dir``::

    # pyproject.toml of a plugin distribution
    [project.entry-points.sales_etl]
    no_weekend_files = "my_plugin.validators"

Hook implementations are called with keyword arguments, so an implementation may declare only
the arguments it needs. The author guide is ``docs/plugins.md``; a test keeps it in step with
every hook here.

Stability: :data:`HOOKSPEC_VERSION` is bumped only when a hook changes incompatibly (a hook or
an argument removed or renamed, a return value read differently). New hooks and new arguments
are added without a bump: a plugin that does not declare them is unaffected.
"""

from __future__ import annotations

import pluggy

from sales_etl.validators.model import IncomingFile, Rejection

#: The pluggy project name, also the setuptools entry-point group plugins register under.
PROJECT = "sales_etl"
#: Version of the hook contract below: a plugin may compare it at import time and refuse to
#: load (raise ``ImportError``) under a version it was not written for.
HOOKSPEC_VERSION = "1"

#: Marks the hook specifications in this module.
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations: ``@hookimpl`` or ``@hookimpl(tryfirst=True)``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def sales_etl_validate_file(file: IncomingFile) -> Rejection | None:
    """Decide whether one landed file may be loaded.

    Called once per file in ``to_process/``, before any of its rows is read by Spark.
    Implementations run one after another in pluggy order; the first one that returns a
    :class:`Rejection` decides the file's fate and the rest are not called. The built-ins are
    registered after installed and ``plugins_dir`` plugins, which gives this order::

        builtin.file_type       (tryfirst) a .csv name and UTF-8 text bytes
        plugins' @hookimpl(tryfirst=True)
        builtin.header_schema              not empty, every mandatory column present
        plugins' @hookimpl
        plugins' @hookimpl(trylast=True)
        builtin.extra_columns   (trylast)  no duplicate or empty column names

    so a plain implementation only sees UTF-8 ``.csv`` files with a readable, complete header.
    (pluggy calls later-registered implementations first, except among ``trylast`` ones; a
    plugin registered on the manager after it was built therefore runs just before the
    built-in of its group, or after ``extra_columns`` if ``trylast``.)

    An implementation that raises does not stop the run: the file is moved to
    ``error_files/unknown/`` with a reason naming the plugin. Hook wrappers are not supported.

    Args:
        file: The file to check: its ``key``, ``name``, lower-case ``extension``, ``size``,
            SHA-256 ``checksum``, ``utf8_error``, ``has_nul``, first 64 KiB ``head``,
            ``max_line_fields``, ``splittable``, the parsed ``header`` (raises ``ValueError``
            for a file that is not CSV text), the run's ``settings``, and ``open()`` for a
            stream of every byte.

    Returns:
        ``None`` to accept the file (as far as this validator is concerned), or
        ``Rejection(category, reason)`` to refuse it. ``category`` is a slug
        (``[a-z0-9_]+``, at most 64 characters) naming the ``error_files/<category>/`` folder:
        one of ``wrong_file_types``, ``bad_schema``, ``duplicates``, ``unknown``, or a plugin's
        own (``out_of_window``); ``reason`` is one short sentence for the operator, stored in
        ``staging_files.reason`` and the run summary (URL passwords are masked and it is cut to
        1000 characters, but it should hold no secrets in the first place).

    Example:
        A plugin enforcing a file-naming convention::

            from sales_etl.validators import WRONG_FILE_TYPE, Rejection, hookimpl

            @hookimpl
            def sales_etl_validate_file(file):
                if not file.name.startswith("sales_"):
                    return Rejection(WRONG_FILE_TYPE, f"{file.name!r} does not start with 'sales_'")
                return None
    """

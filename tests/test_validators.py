"""Validator plugins, the plugin manager and IncomingFile, over real files in a LocalStore."""

from __future__ import annotations

import gzip
import hashlib
import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy
import pytest

from sales_etl.settings import Settings
from sales_etl.storage.local import LocalStore
from sales_etl.validators import hookspecs
from sales_etl.validators.hookspecs import HOOKSPEC_VERSION, PROJECT, hookimpl
from sales_etl.validators.manager import (
    FileVerdict,
    describe_exception,
    get_plugin_manager,
    list_plugins,
    validate_file,
)
from sales_etl.validators.model import (
    BAD_SCHEMA,
    DUPLICATE,
    HEAD_BYTES,
    UNKNOWN,
    WRONG_FILE_TYPE,
    IncomingFile,
    Rejection,
)
from sales_etl.validators.schemas import MANDATORY_COLUMNS, check_header

HEADER = ",".join(MANDATORY_COLUMNS)
ROW = "1,2,apple,2024-03-01,5,1.50,2,3.00"
GOOD = f"{HEADER}\n{ROW}\n".encode()

BUILTINS = ["builtin.file_type", "builtin.header_schema", "builtin.extra_columns"]


def clean_settings(**overrides: object) -> Settings:
    """Settings that ignore any SALES_ETL_* plugin variables of the machine running the tests."""
    values: dict[str, object] = {"plugins_dir": None, "disable_plugins": ""}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "landing")


@pytest.fixture
def land(store: LocalStore) -> Callable[[str, bytes], IncomingFile]:
    """Write ``data`` byte for byte as ``to_process/<name>`` and scan it."""

    def _land(name: str, data: bytes) -> IncomingFile:
        key = f"to_process/{name}"
        store.write_bytes(key, data)
        return IncomingFile.scan(store, key, clean_settings())

    return _land


@pytest.fixture(scope="module")
def pm() -> pluggy.PluginManager:
    return get_plugin_manager(clean_settings())


@pytest.fixture
def register(pm: pluggy.PluginManager) -> Iterator[Callable[[object, str], None]]:
    """Register test plugins on the shared manager; unregister them afterwards."""
    names: list[str] = []

    def _register(plugin: object, name: str) -> None:
        pm.register(plugin, name=name)
        names.append(name)

    yield _register
    for name in names:
        pm.unregister(name=name)


def call_order(pm: pluggy.PluginManager) -> list[str]:
    return [
        pm.get_name(i.plugin) for i in reversed(pm.hook.sales_etl_validate_file.get_hookimpls())
    ]


# --- file type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("sales.json", "extension '.json' is not .csv"),
        ("sales.txt", "extension '.txt' is not .csv"),
        ("sales", "'sales' has no extension, not .csv"),
        ("sales.csv.gz", "extension '.gz' is not .csv"),
    ],
)
def test_not_a_csv_name_is_wrong_file_type(pm, land, name: str, reason: str) -> None:
    verdict = validate_file(pm, land(name, GOOD))
    assert verdict == FileVerdict(
        accepted=False,
        category=WRONG_FILE_TYPE,
        reason=reason,
        plugin="builtin.file_type",
        header=list(MANDATORY_COLUMNS),
    )


def test_upper_case_extension_is_a_csv(pm, land) -> None:
    incoming = land("SALES_1.CSV", GOOD)
    assert incoming.extension == ".csv"
    assert incoming.name == "SALES_1.CSV"
    assert validate_file(pm, incoming).accepted is True


def test_gzip_named_csv_is_wrong_file_type(pm, land) -> None:
    verdict = validate_file(pm, land("sales.csv", gzip.compress(GOOD)))
    assert verdict.category == WRONG_FILE_TYPE
    assert verdict.reason == "not UTF-8 text: byte 0x8b at offset 1: invalid start byte"
    assert verdict.plugin == "builtin.file_type"
    assert verdict.header is None


def test_utf16_with_bom_named_csv_is_wrong_file_type(pm, land) -> None:
    data = GOOD.decode().encode("utf-16")
    assert data[:2] == b"\xff\xfe"
    verdict = validate_file(pm, land("sales.csv", data))
    assert verdict.category == WRONG_FILE_TYPE
    assert verdict.reason == "not UTF-8 text: byte 0xff at offset 0: invalid start byte"


def test_utf16_without_bom_is_caught_by_its_nul_bytes(pm, land) -> None:
    incoming = land("sales.csv", GOOD.decode().encode("utf-16-le"))
    assert incoming.utf8_error is None  # ASCII in UTF-16LE is valid UTF-8, full of NULs
    assert incoming.has_nul is True
    verdict = validate_file(pm, incoming)
    assert (verdict.category, verdict.reason) == (
        WRONG_FILE_TYPE,
        "not UTF-8 text: contains NUL bytes (binary, UTF-16 or UTF-32)",
    )


def test_latin1_byte_is_wrong_file_type_with_its_offset(pm, land) -> None:
    prefix = f"{HEADER}\n1,2,caf".encode()
    data = prefix + b"\xe9,2024-03-01,5,1.50,2,3.00\n"
    verdict = validate_file(pm, land("sales.csv", data))
    assert verdict.category == WRONG_FILE_TYPE
    assert verdict.reason == (
        f"not UTF-8 text: byte 0xe9 at offset {len(prefix)}: invalid continuation byte"
    )


def test_utf8_offsets_are_exact_across_1mib_chunks(land) -> None:
    one_mib = 1024 * 1024
    # A valid two-byte character straddling the first chunk boundary is not an error.
    straddle = b"a" * (one_mib - 1) + "é".encode() + b"\n"
    assert land("straddle.csv", straddle).utf8_error is None
    # An invalid byte in the second chunk is reported at its absolute offset.
    late = b"a" * (one_mib + 10) + b"\xff" + b"\n"
    assert land("late.csv", late).utf8_error == (
        f"byte 0xff at offset {one_mib + 10}: invalid start byte"
    )
    # A character cut off by the end of the file.
    cut = b"abc" + "é".encode()[:1]
    assert land("cut.csv", cut).utf8_error == "byte 0xc3 at offset 3: unexpected end of data"


# --- header schema ---------------------------------------------------------------------------


def test_empty_file_is_bad_schema(pm, land) -> None:
    incoming = land("sales.csv", b"")
    assert (incoming.size, incoming.head) == (0, b"")
    verdict = validate_file(pm, incoming)
    assert verdict == FileVerdict(
        accepted=False,
        category=BAD_SCHEMA,
        reason="empty file (0 bytes)",
        plugin="builtin.header_schema",
        header=None,
    )


def test_missing_columns_are_named(pm, land) -> None:
    columns = [c for c in MANDATORY_COLUMNS if c not in ("price", "quantity")]
    verdict = validate_file(pm, land("sales.csv", (",".join(columns) + "\n").encode()))
    assert verdict.category == BAD_SCHEMA
    assert verdict.plugin == "builtin.header_schema"
    assert verdict.reason == "missing mandatory column 'price'; missing mandatory column 'quantity'"


def test_case_and_space_variants_are_explained(pm, land) -> None:
    columns = [{"price": "Price", "sales_date": " sales_date"}.get(c, c) for c in MANDATORY_COLUMNS]
    verdict = validate_file(pm, land("sales.csv", (",".join(columns) + "\n").encode()))
    assert verdict.category == BAD_SCHEMA
    assert verdict.reason == (
        "missing mandatory column 'sales_date' (found ' sales_date': column names are case- "
        "and space-sensitive); missing mandatory column 'price' (found 'Price': column names "
        "are case- and space-sensitive)"
    )


def test_header_only_file_is_accepted(pm, land) -> None:
    for name, data in [("a.csv", f"{HEADER}\n".encode()), ("b.csv", HEADER.encode())]:
        verdict = validate_file(pm, land(name, data))
        assert verdict == FileVerdict(
            accepted=True,
            category=None,
            reason=None,
            plugin=None,
            header=list(MANDATORY_COLUMNS),
            extra_columns=[],
        )


def test_reordered_columns_are_accepted(pm, land) -> None:
    columns = list(reversed(MANDATORY_COLUMNS))
    verdict = validate_file(pm, land("sales.csv", (",".join(columns) + "\n" + ROW).encode()))
    assert verdict.accepted is True
    assert verdict.header == columns
    assert verdict.extra_columns == []


def test_extra_columns_are_accepted_in_header_order(pm, land) -> None:
    columns = ["promo", *MANDATORY_COLUMNS[:4], "channel", *MANDATORY_COLUMNS[4:], "Price"]
    verdict = validate_file(pm, land("sales.csv", (",".join(columns) + "\n").encode()))
    assert verdict.accepted is True
    assert verdict.extra_columns == ["promo", "channel", "Price"]


def test_bom_and_crlf_give_a_clean_header(pm, land) -> None:
    data = b"\xef\xbb\xbf" + f"{HEADER},note\r\n{ROW},x\r\n".encode()
    incoming = land("sales.csv", data)
    assert incoming.utf8_error is None
    verdict = validate_file(pm, incoming)
    assert verdict.accepted is True
    assert verdict.header == [*MANDATORY_COLUMNS, "note"]
    assert verdict.extra_columns == ["note"]


def test_quoted_header_fields_follow_rfc4180(pm, land) -> None:
    data = f'{HEADER},"note, free text","say ""hi""","two\r\nlines"\r\n{ROW},a,b,c\r\n'.encode()
    verdict = validate_file(pm, land("sales.csv", data))
    assert verdict.accepted is True
    assert verdict.extra_columns == ["note, free text", 'say "hi"', "two\r\nlines"]


def test_quoted_mandatory_name_counts(pm, land) -> None:
    data = ('"customer_id",' + ",".join(MANDATORY_COLUMNS[1:]) + "\n").encode()
    assert validate_file(pm, land("sales.csv", data)).header == list(MANDATORY_COLUMNS)


def test_header_longer_than_the_head_is_read_from_the_store(pm, land) -> None:
    long_name = "é" * 40_000  # 80 000 bytes: the head ends inside the header (and inside a char)
    data = f"{HEADER},{long_name}\n{ROW},x\n".encode()
    incoming = land("sales.csv", data)
    assert len(incoming.head) == HEAD_BYTES
    verdict = validate_file(pm, incoming)
    assert verdict.accepted is True
    assert verdict.extra_columns == [long_name]


def test_unterminated_quote_in_header_is_bad_schema(pm, land) -> None:
    verdict = validate_file(pm, land("sales.csv", f'{HEADER},"note\n'.encode()))
    assert verdict.category == BAD_SCHEMA
    assert verdict.reason == "unreadable header: malformed CSV header: unexpected end of data"


def test_blank_first_line_is_bad_schema(pm, land) -> None:
    verdict = validate_file(pm, land("sales.csv", f"\r\n{HEADER}\r\n".encode()))
    assert verdict.category == BAD_SCHEMA
    assert verdict.reason == "unreadable header: the first line is blank: no header record"


def test_duplicate_and_empty_column_names_are_bad_schema(pm, land) -> None:
    duplicate = f"{HEADER},store_id\n".encode()
    verdict = validate_file(pm, land("dup.csv", duplicate))
    assert verdict.category == BAD_SCHEMA
    assert verdict.plugin == "builtin.extra_columns"
    assert verdict.reason == "ambiguous header: duplicate column names: 'store_id' (2 times)"
    assert verdict.extra_columns == []

    empty = f"{HEADER},,note,\n".encode()
    verdict = validate_file(pm, land("empty.csv", empty))
    assert verdict.reason == "ambiguous header: empty column name at positions 9, 11"


def test_check_header_lists_every_missing_column_in_order() -> None:
    assert check_header([*MANDATORY_COLUMNS, "extra"]) == []
    assert check_header([]) == [f"missing mandatory column {c!r}" for c in MANDATORY_COLUMNS]
    assert check_header(["TOTAL-COST", *MANDATORY_COLUMNS[:-1]]) == [
        "missing mandatory column 'total_cost' (found 'TOTAL-COST': column names are case- "
        "and space-sensitive)"
    ]


# --- IncomingFile ----------------------------------------------------------------------------


def test_scan_records_checksum_size_and_head(store, land) -> None:
    data = GOOD * 5000  # ~400 KB: larger than the head
    incoming = land("sales.csv", data)
    assert incoming.checksum == hashlib.sha256(data).hexdigest()
    assert incoming.checksum == store.sha256("to_process/sales.csv")
    assert incoming.size == len(data)
    assert incoming.head == data[:HEAD_BYTES]
    assert (incoming.key, incoming.name, incoming.extension) == (
        "to_process/sales.csv",
        "sales.csv",
        ".csv",
    )
    assert (incoming.utf8_error, incoming.has_nul) == (None, False)
    with incoming.open() as stream:
        assert stream.read() == data


def test_header_of_a_binary_file_raises_a_clear_error(land) -> None:
    incoming = land("sales.csv", b"\x00\x01\x02")
    with pytest.raises(ValueError, match="contains NUL bytes"):
        _ = incoming.header


def test_rejection_category_must_be_a_slug() -> None:
    assert Rejection(DUPLICATE, "same bytes as an earlier file").category == "duplicates"
    with pytest.raises(ValueError, match=r"slug matching \[a-z0-9_\]\+"):
        Rejection("../etc", "escape")
    with pytest.raises(ValueError, match="slug"):
        Rejection("Bad Schema", "spaces")
    with pytest.raises(AttributeError):
        Rejection(BAD_SCHEMA, "x").category = UNKNOWN  # type: ignore[misc]


# --- plugin manager and third-party plugins --------------------------------------------------


def test_hookspec_is_versioned_and_documented(pm: pluggy.PluginManager) -> None:
    """What the plugin guide, the example plugin and the manager say of the contract's version
    and entry-point group is what validators/hookspecs.py defines."""
    repo = Path(__file__).resolve().parents[1]
    guide = (repo / "docs" / "plugins.md").read_text(encoding="utf-8")
    example = repo / "plugins" / "sales-etl-date-window"
    guard = f'if HOOKSPEC_VERSION != "{HOOKSPEC_VERSION}":'
    # The guide states the current version, and the guard it shows checks that version.
    assert f'`HOOKSPEC_VERSION` (now `"{HOOKSPEC_VERSION}"`)' in guide
    assert f"Version {HOOKSPEC_VERSION} has " in guide
    assert guard in guide
    # The example plugin refuses any other version and registers under the project's group.
    assert guard in (example / "sales_etl_date_window" / "__init__.py").read_text()
    entry_points = f"[project.entry-points.{PROJECT}]"
    assert entry_points in (example / "pyproject.toml").read_text()
    assert entry_points in guide
    # The manager, the spec and the implementation marker are all of that project.
    assert pm.project_name == hookspecs.hookspec.project_name == hookimpl.project_name == PROJECT
    assert pm.hook.sales_etl_validate_file.spec.namespace is hookspecs
    doc = inspect.getdoc(hookspecs.sales_etl_validate_file)
    for section in ("Args:", "file:", "Returns:", "Example:"):
        assert section in doc


def test_builtins_run_in_pluggy_order(pm) -> None:
    assert call_order(pm) == BUILTINS
    assert [p["name"] for p in list_plugins(pm)] == sorted(BUILTINS)


class Crashing:
    @hookimpl
    def sales_etl_validate_file(self, file: IncomingFile) -> Rejection | None:
        raise RuntimeError(f"boom in {file.name}")


class RejectsEverything:
    def __init__(self, category: str = DUPLICATE) -> None:
        self.category = category

    @hookimpl
    def sales_etl_validate_file(self, file: IncomingFile) -> Rejection | None:
        return Rejection(self.category, f"seen {file.checksum[:8]} before")


def test_crashing_plugin_gives_unknown_with_its_name(pm, register, land) -> None:
    register(Crashing(), "test.crashing")
    verdict = validate_file(pm, land("sales.csv", GOOD))
    assert verdict == FileVerdict(
        accepted=False,
        category=UNKNOWN,
        reason="validator plugin 'test.crashing' crashed: RuntimeError: boom in sales.csv",
        plugin="test.crashing",
        header=list(MANDATORY_COLUMNS),
    )


def test_crash_message_is_truncated_and_masks_url_passwords() -> None:
    exc = ValueError("cannot reach mysql+pymysql://etl:s3cr3t@db:3306/sales " + "x" * 1000)
    text = describe_exception(exc)
    assert "s3cr3t" not in text
    assert text.startswith("ValueError: cannot reach mysql+pymysql://etl:***@db:3306/sales xxx")
    assert text.endswith("...")
    assert len(text) == len("ValueError: ") + 500 + 3


def test_rejecting_plugin_gives_its_reason_and_name(pm, register, land) -> None:
    register(RejectsEverything(), "test.rejects")
    data = GOOD
    verdict = validate_file(pm, land("sales.csv", data))
    assert verdict.accepted is False
    assert verdict.category == DUPLICATE
    assert verdict.reason == f"seen {hashlib.sha256(data).hexdigest()[:8]} before"
    assert verdict.plugin == "test.rejects"


def test_plugin_gets_only_the_arguments_it_declares(pm, register, land) -> None:
    class NoArguments:
        @hookimpl
        def sales_etl_validate_file(self) -> Rejection:
            return Rejection("quarantine_all", "every file is refused today")

    register(NoArguments(), "test.no_arguments")
    verdict = validate_file(pm, land("sales.csv", GOOD))
    assert (verdict.category, verdict.plugin) == ("quarantine_all", "test.no_arguments")


def test_plugin_returning_garbage_is_unknown(pm, register, land) -> None:
    class ReturnsString:
        @hookimpl
        def sales_etl_validate_file(self, file: IncomingFile) -> str:
            return "no"

    register(ReturnsString(), "test.garbage")
    verdict = validate_file(pm, land("sales.csv", GOOD))
    assert verdict.category == UNKNOWN
    assert verdict.reason == (
        "validator plugin 'test.garbage' crashed: it returned str, expected a Rejection or None"
    )


def test_tryfirst_and_trylast_order_is_respected(pm, register, land) -> None:
    calls: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        def sales_etl_validate_file(self, file: IncomingFile) -> None:
            calls.append("first")

    class Plain:
        @hookimpl
        def sales_etl_validate_file(self, file: IncomingFile) -> None:
            calls.append("plain")

    class Last:
        @hookimpl(trylast=True)
        def sales_etl_validate_file(self, file: IncomingFile) -> None:
            calls.append("last")

    # Registered in the opposite order: only the markers can put First first.
    register(Last(), "test.last")
    register(Plain(), "test.plain")
    register(First(), "test.first")
    assert call_order(pm) == [
        "test.first",
        "builtin.file_type",
        "test.plain",
        "builtin.header_schema",
        "builtin.extra_columns",
        "test.last",  # among trylast ones, pluggy calls the later-registered last
    ]
    incoming = land("sales.csv", GOOD)
    assert validate_file(pm, incoming).accepted is True
    assert calls == ["first", "plain", "last"]

    calls.clear()  # pluggy's own call walks the implementations in the same order
    assert pm.hook.sales_etl_validate_file(file=incoming) is None
    assert calls == ["first", "plain", "last"]


def test_first_rejection_wins(pm, register, land) -> None:
    class LateReject:
        @hookimpl(trylast=True)
        def sales_etl_validate_file(self, file: IncomingFile) -> Rejection:
            return Rejection(DUPLICATE, "late")

    register(LateReject(), "test.late")
    verdict = validate_file(pm, land("sales.json", GOOD))
    assert (verdict.category, verdict.plugin) == (WRONG_FILE_TYPE, "builtin.file_type")
    assert validate_file(pm, land("sales.csv", GOOD)).reason == "late"


PLUGIN_FILE = """
from sales_etl.validators import Rejection, hookimpl


@hookimpl
def sales_etl_validate_file(file):
    if "refuse" in file.name:
        return Rejection("bad_schema", f"{file.name} is refused by the folder plugin")
    return None
"""


@pytest.fixture
def plugins_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    yield folder
    for path in folder.glob("*.py"):
        sys.modules.pop(f"sales_etl_plugin_{path.stem}", None)


def test_plugins_dir_files_are_loaded(plugins_dir: Path, land) -> None:
    (plugins_dir / "refuser.py").write_text(PLUGIN_FILE)
    pm = get_plugin_manager(clean_settings(plugins_dir=str(plugins_dir)))
    assert call_order(pm) == [
        "builtin.file_type",
        "builtin.header_schema",
        "dir.refuser",
        "builtin.extra_columns",
    ]
    described = {p["name"]: p for p in list_plugins(pm)}
    assert described["dir.refuser"]["module"] == "sales_etl_plugin_refuser"
    assert described["dir.refuser"]["file"] == str(plugins_dir / "refuser.py")
    assert described["dir.refuser"]["hooks"] == ["sales_etl_validate_file"]
    assert described["dir.refuser"]["distribution"] is None

    verdict = validate_file(pm, land("refuse_me.csv", GOOD))
    assert (verdict.category, verdict.reason, verdict.plugin) == (
        BAD_SCHEMA,
        "refuse_me.csv is refused by the folder plugin",
        "dir.refuser",
    )
    assert validate_file(pm, land("fine.csv", GOOD)).accepted is True
    # An empty file never reaches the plugin: the header check runs first and explains.
    assert validate_file(pm, land("refuse_empty.csv", b"")).plugin == "builtin.header_schema"


def test_misspelt_hook_fails_loudly(plugins_dir: Path) -> None:
    (plugins_dir / "typo.py").write_text(
        "from sales_etl.validators import hookimpl\n\n\n"
        "@hookimpl\ndef sales_etl_validate_fle(file):\n    return None\n"
    )
    with pytest.raises(pluggy.PluginValidationError, match="sales_etl_validate_fle"):
        get_plugin_manager(clean_settings(plugins_dir=str(plugins_dir)))


def test_hook_wrappers_are_refused(plugins_dir: Path) -> None:
    (plugins_dir / "wrapper.py").write_text(
        "from sales_etl.validators import hookimpl\n\n\n"
        "@hookimpl(wrapper=True)\ndef sales_etl_validate_file(file):\n    return (yield)\n"
    )
    with pytest.raises(pluggy.PluginValidationError, match="hook wrappers are not supported"):
        get_plugin_manager(clean_settings(plugins_dir=str(plugins_dir)))


def test_plugins_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        get_plugin_manager(clean_settings(plugins_dir=str(tmp_path / "missing")))


def test_disable_plugins_blocks_builtins(land) -> None:
    pm = get_plugin_manager(
        clean_settings(disable_plugins=" builtin.extra_columns , builtin.file_type")
    )
    assert call_order(pm) == ["builtin.header_schema"]
    assert pm.is_blocked("builtin.extra_columns")
    assert validate_file(pm, land("dup.csv", f"{HEADER},price\n".encode())).accepted is True
    assert validate_file(pm, land("sales.json", GOOD)).accepted is True


@pytest.fixture
def installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fake installed distribution with two ``sales_etl`` entry points, one unimportable."""
    site = tmp_path / "site"
    info = site / "fake_sales_plugins-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-sales-plugins\nVersion: 1.2.3\n"
    )
    (info / "entry_points.txt").write_text(
        "[sales_etl]\nfake_refuser = fake_sales_refuser\nfake_broken = fake_sales_broken\n"
    )
    (site / "fake_sales_refuser.py").write_text(PLUGIN_FILE)
    (site / "fake_sales_broken.py").write_text("raise ImportError('this plugin is broken')\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    for module in ("fake_sales_refuser", "fake_sales_broken"):
        sys.modules.pop(module, None)


def test_entry_point_plugins_load_and_can_be_disabled(installed_plugins, land) -> None:
    with pytest.raises(ImportError, match="this plugin is broken"):
        get_plugin_manager(clean_settings())

    # Blocked by entry-point name, the broken plugin is never imported.
    pm = get_plugin_manager(clean_settings(disable_plugins="fake_broken"))
    assert "fake_sales_broken" not in sys.modules
    described = {p["name"]: p for p in list_plugins(pm)}
    assert set(described) == {*BUILTINS, "fake_refuser"}
    assert described["fake_refuser"]["distribution"] == "fake-sales-plugins"
    assert described["fake_refuser"]["version"] == "1.2.3"
    assert described["fake_refuser"]["module"] == "fake_sales_refuser"
    assert validate_file(pm, land("refuse.csv", GOOD)).plugin == "fake_refuser"


def test_importing_the_schemas_leaves_spark_environment_alone() -> None:
    # pandera sets SPARK_LOCAL_IP=127.0.0.1 on import, which would bind a cluster driver to
    # loopback; a fresh interpreter shows whether importing our modules leaks that.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SPARK_LOCAL_IP", "PYARROW_IGNORE_TIMEZONE")
    }
    code = (
        "import os, sales_etl.validators.manager\n"
        "from sales_etl.validators.schemas import MartSale\n"
        "print(MartSale.__name__, os.environ.get('SPARK_LOCAL_IP'),"
        " os.environ.get('PYARROW_IGNORE_TIMEZONE'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["MartSale", "None", "None"]

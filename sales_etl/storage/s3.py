"""An S3 bucket prefix as an object store (``s3://bucket/prefix``), through boto3.

Connection settings come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_S3``, profiles,
instance roles: whatever boto3's own chain finds) or, when ``SALES_ETL_AWS_CREDENTIALS_BLOCK``
names one, from a Prefect ``AwsCredentials`` block. :func:`resolve_s3_connection` is the one place
that decides, so boto3 here and Spark's s3a connector (``sales_etl.spark``) always agree.

Secrets never leave this module in a printable form: :class:`S3Connection` hides them from
``repr``, and errors name only the bucket and key.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote, urlsplit

from sales_etl.storage.base import (
    ObjectInfo,
    ObjectStore,
    StorageError,
    escape_hadoop_glob,
    safe_key,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: Largest object a single CopyObject call may copy; larger ones use a multipart copy.
MAX_SINGLE_COPY_BYTES = 5 * 1024**3
#: Part size of a multipart copy (S3 allows 5 MiB to 5 GiB per part, 10,000 parts).
MULTIPART_COPY_CHUNK_BYTES = 512 * 1024**2
#: DeleteObjects accepts at most this many keys per call.
DELETE_BATCH = 1000

_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_REGION_VARS = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Everything that changes which client we would build (values only used as a cache key).
_CLIENT_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    *_REGION_VARS,
    *_ENDPOINT_VARS,
    "SALES_ETL_AWS_CREDENTIALS_BLOCK",
)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix")`` (``s3a://`` accepted too)."""
    parts = urlsplit(url)
    if parts.scheme not in ("s3", "s3a") or not parts.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(
            f"an S3 URL takes no credentials, query or fragment: s3://{parts.hostname}/..."
        )
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    if prefix:
        prefix = safe_key(prefix)
    return bucket, prefix


# --- connection settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class S3Connection:
    """Where S3 is and who we are, for boto3 and for Spark's s3a alike.

    ``access_key``/``secret_key``/``session_token`` are set when static credentials are known
    (environment variables, a profile file, a Prefect block); they are ``None`` when the
    credentials refresh themselves (instance or container roles), in which case Spark uses its
    own default provider chain. They never appear in ``repr``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    source: str = "environment"  # "environment" or "prefect block <name>"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    client_kwargs: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    session: Any = field(default=None, repr=False, compare=False)

    @property
    def path_style(self) -> bool:
        """Path-style addressing for custom endpoints (MinIO, moto, Ceph...), not for AWS."""
        return self.endpoint_url is not None


def _env_first(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _credentials_block_name() -> str | None:
    from sales_etl.settings import Settings

    name = Settings().aws_credentials_block
    return name.strip() if name and name.strip() else None


def _static_credentials(session: Any) -> tuple[str | None, str | None, str | None]:
    """Frozen keys of a boto3 session, unless they refresh themselves (then Spark resolves)."""
    from botocore.credentials import RefreshableCredentials

    credentials = session.get_credentials()
    if credentials is None or isinstance(credentials, RefreshableCredentials):
        return None, None, None
    frozen = credentials.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token


def _from_block(name: str) -> S3Connection:
    from prefect_aws import AwsCredentials

    try:
        block = AwsCredentials.load(name, _sync=True)
    except Exception as exc:  # the block's fields are not in the message, only its name
        raise StorageError(
            f"could not load the Prefect AwsCredentials block {name!r}: {type(exc).__name__}"
        ) from None
    session = block.get_boto3_session()
    params = block.aws_client_parameters.get_params_override()
    endpoint = params.get("endpoint_url") or _env_first(_ENDPOINT_VARS)
    if endpoint:
        params["endpoint_url"] = endpoint
    access, secret, token = _static_credentials(session)
    return S3Connection(
        endpoint_url=endpoint,
        region=block.region_name or session.region_name or _env_first(_REGION_VARS),
        source=f"prefect block {name}",
        access_key=access,
        secret_key=secret,
        session_token=token,
        client_kwargs=params,
        session=session,
    )


def _from_environment() -> S3Connection:
    import boto3

    session = boto3.session.Session()
    access, secret, token = _static_credentials(session)
    return S3Connection(
        endpoint_url=_env_first(_ENDPOINT_VARS),
        region=session.region_name or _env_first(_REGION_VARS),
        access_key=access,
        secret_key=secret,
        session_token=token,
        session=session,
    )


_lock = threading.Lock()
_connections: dict[tuple[str | None, ...], S3Connection] = {}
_clients: dict[tuple[str | None, ...], BaseClient] = {}


def _cache_key() -> tuple[str | None, ...]:
    return tuple(os.environ.get(name) for name in _CLIENT_ENV_VARS)


def resolve_s3_connection() -> S3Connection:
    """The S3 connection settings for the current environment (cached per environment)."""
    key = _cache_key()
    with _lock:
        connection = _connections.get(key)
        if connection is None:
            block = _credentials_block_name()
            connection = _from_block(block) if block else _from_environment()
            _connections[key] = connection
        return connection


def s3_client() -> BaseClient:
    """A boto3 S3 client for the current environment (thread-safe, cached per environment)."""
    from botocore.config import Config

    key = _cache_key()
    with _lock:
        client = _clients.get(key)
    if client is not None:
        return client
    connection = resolve_s3_connection()
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path" if connection.path_style else "auto"},
        max_pool_connections=32,
    )
    kwargs = dict(connection.client_kwargs)
    if isinstance(kwargs.get("config"), Config):
        config = kwargs.pop("config").merge(config)
    kwargs.pop("config", None)
    if connection.endpoint_url:
        kwargs["endpoint_url"] = connection.endpoint_url
    if connection.region:
        kwargs.setdefault("region_name", connection.region)
    with _lock:  # boto3 sessions are not thread-safe; clients are
        if key not in _clients:
            _clients[key] = connection.session.client("s3", config=config, **kwargs)
        return _clients[key]


def clear_s3_cache() -> None:
    """Forget cached connections and clients (after credentials or endpoint changed)."""
    with _lock:
        _connections.clear()
        _clients.clear()


# --- streaming reads ---------------------------------------------------------------------------


class _BodyReader(io.RawIOBase):
    """A raw stream over a botocore ``StreamingBody`` (wrapped in a BufferedReader by ``open``).

    Not redundant although ``StreamingBody`` is an ``io.IOBase`` with ``readinto``: its
    ``close()`` closes the HTTP response but never marks the object closed, so a BufferedReader
    straight over it still says ``closed == False`` after ``close()`` (botocore 1.4x).
    """

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _precondition_failed(exc: Exception) -> bool:
    """An If-Match / CopySourceIfMatch condition did not hold (the object changed)."""
    return _error_code(exc) in ("PreconditionFailed", "412") or _status(exc) == 412


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound") or _status(exc) == 404


# --- the store ---------------------------------------------------------------------------------


class S3Store(ObjectStore):
    """Objects under ``s3://bucket/prefix``; keys are relative to the prefix."""

    #: Half of the client's connection pool (``max_pool_connections=32`` in :func:`s3_client`).
    concurrent_moves = 16

    def __init__(self, url: str, client: BaseClient | None = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    @property
    def client(self) -> BaseClient:
        return self._client if self._client is not None else s3_client()

    # keys <-> S3 keys

    def _full(self, key: str) -> str:
        key = safe_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _dir_prefix(self, prefix: str) -> str:
        """The S3 prefix of a folder-like ``prefix`` ("" = the whole store)."""
        folder = prefix.strip("/")
        if not folder:
            return f"{self.prefix}/" if self.prefix else ""
        return self._full(folder) + "/"

    def _relative(self, s3_key: str) -> str:
        return s3_key[len(self.prefix) + 1 :] if self.prefix else s3_key

    def _iter_s3_keys(
        self, s3_prefix: str, delimiter: str | None = None
    ) -> Iterator[tuple[str, int, str]]:
        """Every (S3 key, size, ETag) under ``s3_prefix``, all pages, folder markers included;
        with ``delimiter="/"`` only those of the prefix's own level (the folders below it are
        CommonPrefixes, not objects)."""
        paginator = self.client.get_paginator("list_objects_v2")
        extra = {"Delimiter": delimiter} if delimiter else {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=s3_prefix, **extra):
            for item in page.get("Contents", ()):
                yield item["Key"], int(item["Size"]), str(item.get("ETag", ""))

    def _missing(self, key: str) -> StorageError:
        return StorageError(f"object not found: {key!r} in {self.url}")

    # ObjectStore

    def list(self, prefix: str) -> list[ObjectInfo]:
        found = []
        for s3_key, size, etag in self._iter_s3_keys(self._dir_prefix(prefix)):
            if s3_key.endswith("/"):  # a folder marker (S3 consoles, Hadoop mkdirs)
                continue
            found.append(ObjectInfo(key=self._relative(s3_key), size=size, version=etag))
        return sorted(found, key=lambda o: o.key)

    def list_top_level(self) -> list[ObjectInfo]:
        found = []
        for s3_key, size, etag in self._iter_s3_keys(self._dir_prefix(""), delimiter="/"):
            if not s3_key.endswith("/"):  # the root's own folder marker
                found.append(ObjectInfo(key=self._relative(s3_key), size=size, version=etag))
        return sorted(found, key=lambda o: o.key)

    def open(self, key: str) -> BinaryIO:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _is_not_found(exc):
                raise self._missing(key) from exc
            raise
        return io.BufferedReader(_BodyReader(response["Body"]), buffer_size=1 << 20)  # type: ignore[return-value]

    def read_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            with self.open(key) as stream:
                return stream.read()
        if max_bytes <= 0:
            if not self.exists(key):
                raise self._missing(key)
            return b""
        try:
            response = self.client.get_object(
                Bucket=self.bucket, Key=self._full(key), Range=f"bytes=0-{max_bytes - 1}"
            )
        except Exception as exc:
            if _is_not_found(exc):
                raise self._missing(key) from exc
            if _error_code(exc) == "InvalidRange" or _status(exc) == 416:
                return b""  # a 0-byte object has no byte 0
            raise
        with response["Body"] as body:
            return body.read()[:max_bytes]

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        """The object's size in bytes."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _is_not_found(exc):
                raise self._missing(key) from exc
            raise
        return int(head["ContentLength"])

    def copy(self, src: str, dst: str) -> None:
        """Server-side copy: one CopyObject up to 5 GiB, a multipart copy beyond."""
        if self._full(src) != self._full(dst):
            self._copy(src, dst, self.size(src))

    def _copy(self, src: str, dst: str, size: int, etag: str | None = None) -> str | None:
        """Server-side copy; with ``etag``, only of that version (else HTTP 412 is raised).

        Returns the copy's ETag when the store reports it (single CopyObject), else None.
        """
        copy_source = {"Bucket": self.bucket, "Key": self._full(src)}
        target = self._full(dst)
        condition = {"CopySourceIfMatch": etag} if etag else {}
        if size <= MAX_SINGLE_COPY_BYTES:
            response = self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource=copy_source, **condition
            )
            return response.get("CopyObjectResult", {}).get("ETag")
        from boto3.s3.transfer import TransferConfig

        # The managed transfer splits the copy into UploadPartCopy requests (server-side too);
        # it passes CopySourceIfMatch on to its HeadObject (as IfMatch) and to every part.
        self.client.copy(
            copy_source,
            self.bucket,
            target,
            ExtraArgs=condition or None,
            Config=TransferConfig(
                multipart_threshold=MAX_SINGLE_COPY_BYTES,
                multipart_chunksize=MULTIPART_COPY_CHUNK_BYTES,
            ),
        )
        return None

    def version(self, key: str) -> str | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        return str(head["ETag"])

    def claim(self, src: str, dst: str, version: str) -> bool:
        """Server-side copy of ``src`` if its ETag is still ``version`` (412 or 404 -> False).

        Checked again after the copy, for stores that ignore ``CopySourceIfMatch`` (moto 5.2
        does): a copy whose ETag is not ``version`` (another version's MD5, or a store that
        gives copies new ETags: SSE-KMS, multipart) is kept only if the source still has
        ``version``; otherwise it is deleted and the file left for the next run.
        """
        try:
            size = self.size(src)
            copied = self._copy(src, dst, size, etag=version)
        except StorageError:
            return False  # deleted since it was listed
        except Exception as exc:
            if _is_not_found(exc) or _precondition_failed(exc):
                return False
            raise
        if copied != version and self.version(src) != version:
            self.delete(dst)
            return False
        return True

    def delete_if_unchanged(self, key: str, version: str) -> bool:
        """``DeleteObject`` with ``If-Match: <ETag>`` (412: a new version arrived, kept).

        A store that ignores ``If-Match`` on DELETE would delete a newer version too
        (docs/reliability.md); AWS S3 general purpose buckets honour it since
        2025-09-16 (S3 user guide, "How to perform conditional deletes"); moto 5.2 does.
        """
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key), IfMatch=version)
        except Exception as exc:
            # 404: already deleted (a repeated call); 412: another version, kept.
            if _is_not_found(exc) or _precondition_failed(exc):
                return False
            raise
        return True

    def move(self, src: str, dst: str) -> bool:
        """Copy then delete (S3 has no rename); safe to repeat, 3 requests when there is work.

        Source gone and target present: an earlier attempt finished, nothing to do. Both
        present (a crash between copy and delete): the copy is redone and the source deleted.
        """
        if self._full(src) == self._full(dst):
            return False
        try:
            size = self.size(src)
        except StorageError:
            if self.exists(dst):
                return False
            raise StorageError(f"cannot move {src!r}: it does not exist in {self.url}") from None
        self._copy(src, dst, size)
        self.delete(src)
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def _delete_s3_keys(self, s3_keys: list[str]) -> None:
        for start in range(0, len(s3_keys), DELETE_BATCH):
            batch = s3_keys[start : start + DELETE_BATCH]
            response = self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StorageError(
                    f"could not delete {len(errors)} object(s) under {self.url}, e.g. "
                    f"{self._relative(first.get('Key', ''))!r}: {first.get('Code')}"
                )

    def delete_prefix(self, prefix: str) -> int:
        """Delete the object ``prefix`` names, or everything under the folder ``prefix``."""
        folder = safe_key(prefix.rstrip("/"))
        s3_keys = [k for k, _, _ in self._iter_s3_keys(self._full(folder) + "/")]
        if self.exists(folder):
            s3_keys.append(self._full(folder))
        self._delete_s3_keys(s3_keys)
        return sum(not k.endswith("/") for k in s3_keys)

    def spark_path(self, key: str) -> str:
        # Hadoop takes the raw key (it URL-encodes by itself), with glob characters escaped.
        return f"s3a://{self.bucket}/" + escape_hadoop_glob(self._full(key))

    def key_from_spark_path(self, path: str) -> str | None:
        for scheme in ("s3a://", "s3://", "s3n://"):
            head = f"{scheme}{self.bucket}/"
            if path.startswith(head):
                s3_key = unquote(path[len(head) :])
                break
        else:
            return None
        if self.prefix:
            if not s3_key.startswith(self.prefix + "/"):
                return None
            s3_key = s3_key[len(self.prefix) + 1 :]
        try:
            return safe_key(s3_key)
        except StorageError:
            return None

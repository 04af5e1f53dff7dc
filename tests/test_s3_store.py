"""S3Store against a real S3 API: moto's server over HTTP on 127.0.0.1 (tests/services.py).

Nothing here mocks boto3: every call goes over the wire to ``moto_server``. Checks are made with
an independent boto3 client from the fixture, not with the store under test.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor

import pytest

from sales_etl.settings import Settings
from sales_etl.spark import configure_s3a
from sales_etl.storage import ObjectInfo, StorageError, open_store
from sales_etl.storage import s3 as s3_module
from sales_etl.storage.s3 import S3Store, parse_s3_url, resolve_s3_connection


def _put_many(client, bucket: str, keys: list[str], body: bytes = b"x") -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body), keys))


def _all_keys(client, bucket: str, prefix: str = "") -> list[str]:
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)


def test_url_parsing_and_factory(moto_server, s3_bucket):
    assert parse_s3_url("s3://b-1/a/b/") == ("b-1", "a/b")
    assert parse_s3_url("s3a://b-1") == ("b-1", "")
    with pytest.raises(ValueError) as err:
        parse_s3_url("s3://someone:hunter2@b-1/x")
    assert "hunter2" not in str(err.value)
    with pytest.raises(StorageError):
        parse_s3_url("s3://b-1/../x")
    store = open_store(f"s3://{s3_bucket}/landing/")
    assert isinstance(store, S3Store)
    assert store.url == f"s3://{s3_bucket}/landing"
    assert store.spark_path("to_process/a.csv") == f"s3a://{s3_bucket}/landing/to_process/a.csv"


def test_list_is_paginated_sorted_and_folder_like(moto_server, s3_bucket):
    client = moto_server.client()
    keys = [f"landing/to_process/sales_{i:05d}.csv" for i in range(1500)]
    _put_many(client, s3_bucket, keys)
    # Neighbours that must not show up: another folder with the same leading characters, a
    # folder marker, and an object outside the store's prefix.
    _put_many(client, s3_bucket, ["landing/to_process_old/x.csv", "landing/to_process/sub/"])
    _put_many(client, s3_bucket, ["other/to_process/y.csv"])
    store = S3Store(f"s3://{s3_bucket}/landing")

    listed = store.list("to_process/")
    assert len(listed) == 1500  # more than one page of 1,000
    assert [o.key for o in listed] == sorted(k.removeprefix("landing/") for k in keys)
    assert listed[0] == ObjectInfo("to_process/sales_00000.csv", 1)
    assert store.list("to_process") == listed
    assert store.list("to_pro") == []
    assert {o.key for o in store.list("")} == {o.key for o in listed} | {"to_process_old/x.csv"}

    # delete_prefix: batched DeleteObjects (at most 1,000 keys per call), markers removed too.
    calls = []
    store.client.meta.events.register(
        "provide-client-params.s3.DeleteObjects",
        lambda **kw: calls.append(len(kw["params"]["Delete"]["Objects"])),
    )
    try:
        assert store.delete_prefix("to_process") == 1500
    finally:
        store.client.meta.events.unregister("provide-client-params.s3.DeleteObjects")
    assert calls == [1000, 501]
    assert _all_keys(client, s3_bucket) == [
        "landing/to_process_old/x.csv",
        "other/to_process/y.csv",
    ]
    assert store.delete_prefix("to_process") == 0
    # A prefix naming one object deletes that object only.
    assert store.delete_prefix("to_process_old/x.csv") == 1
    assert _all_keys(client, s3_bucket, "landing/") == []


def test_list_top_level_lists_only_the_roots_own_objects(moto_server, s3_bucket):
    client = moto_server.client()
    top = [f"landing/sales_{i:04d}.csv" for i in range(1005)]  # more than one page
    _put_many(client, s3_bucket, top)
    _put_many(
        client,
        s3_bucket,
        [
            "landing/",  # the root's own folder marker
            "landing/to_process/a.csv",
            "landing/processed/20240101_000000/b.csv",
            "landing_old/c.csv",  # a neighbour with the same leading characters
            "d.csv",  # above the store's root
        ],
    )
    listed = S3Store(f"s3://{s3_bucket}/landing").list_top_level()
    assert [o.key for o in listed] == sorted(k.removeprefix("landing/") for k in top)
    assert listed[0] == ObjectInfo("sales_0000.csv", 1)
    bucket_root = S3Store(f"s3://{s3_bucket}").list_top_level()
    assert [o.key for o in bucket_root] == ["d.csv"]


def test_read_write_stream_and_checksum(moto_server, s3_bucket):
    store = S3Store(f"s3://{s3_bucket}/root")
    body = b"customer_id,price\r\n" + b"".join(b"%d,1.50\r\n" % i for i in range(200_000))
    store.write_bytes("to_process/big.csv", body)
    store.write_bytes("to_process/empty.csv", b"")
    assert store.exists("to_process/big.csv")
    assert not store.exists("to_process/nope.csv")

    with store.open("to_process/big.csv") as stream:
        head = stream.read(10)
        rest = stream.read()
    assert head + rest == body
    assert store.read_bytes("to_process/big.csv") == body
    assert store.read_bytes("to_process/big.csv", max_bytes=7) == body[:7]
    assert store.read_bytes("to_process/empty.csv", max_bytes=7) == b""
    assert store.read_bytes("to_process/empty.csv") == b""
    assert store.sha256("to_process/big.csv") == hashlib.sha256(body).hexdigest()
    with store.open("to_process/big.csv") as stream:  # lines across the 1 MiB buffer
        lines = list(stream)
    assert lines[0] == b"customer_id,price\r\n" and len(lines) == 200_001
    assert b"".join(lines) == body

    with pytest.raises(StorageError, match="not found"):
        store.open("to_process/nope.csv")
    with pytest.raises(StorageError, match="not found"):
        store.read_bytes("to_process/nope.csv", max_bytes=5)


def test_copy_is_server_side_and_move_is_idempotent(moto_server, s3_bucket):
    store = S3Store(f"s3://{s3_bucket}/landing")
    client = moto_server.client()
    store.write_bytes("to_process/a.csv", b"a,b\n1,2\n")

    seen: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.*", lambda model, **kw: seen.append(model.name)
    )
    try:
        store.move("to_process/a.csv", "processed/20240101_000000/a.csv")
    finally:
        store.client.meta.events.unregister("before-call.s3.*")
    assert "CopyObject" in seen and "GetObject" not in seen and "PutObject" not in seen
    assert _all_keys(client, s3_bucket) == ["landing/processed/20240101_000000/a.csv"]

    # Repeating the move after it finished is a no-op; a crash between copy and delete
    # (both present) is finished by the next attempt; a move of nothing is an error.
    store.move("to_process/a.csv", "processed/20240101_000000/a.csv")
    store.copy("processed/20240101_000000/a.csv", "to_process/a.csv")
    store.move("to_process/a.csv", "processed/20240101_000000/a.csv")
    assert _all_keys(client, s3_bucket) == ["landing/processed/20240101_000000/a.csv"]
    assert store.read_bytes("processed/20240101_000000/a.csv") == b"a,b\n1,2\n"
    with pytest.raises(StorageError):
        store.move("to_process/gone.csv", "processed/x/gone.csv")
    store.delete("to_process/gone.csv")  # deleting a missing object is fine


def test_large_objects_use_a_multipart_copy(moto_server, s3_bucket, monkeypatch):
    """Objects above the single-copy limit (5 GiB on AWS) are copied in server-side parts."""
    monkeypatch.setattr(s3_module, "MAX_SINGLE_COPY_BYTES", 6 * 1024**2)
    monkeypatch.setattr(s3_module, "MULTIPART_COPY_CHUNK_BYTES", 5 * 1024**2)
    store = S3Store(f"s3://{s3_bucket}/m")
    data = bytes(range(256)) * (11 * 1024**2 // 256)  # 11 MiB -> 3 parts
    store.write_bytes("big.bin", data)
    seen: list[str] = []
    store.client.meta.events.register(
        "before-call.s3.*", lambda model, **kw: seen.append(model.name)
    )
    try:
        store.copy("big.bin", "copy/big.bin")
    finally:
        store.client.meta.events.unregister("before-call.s3.*")
    assert (
        seen.count("UploadPartCopy") == 3 and "GetObject" not in seen and "UploadPart" not in seen
    )
    head = moto_server.client().head_object(Bucket=s3_bucket, Key="m/copy/big.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert (
        hashlib.sha256(store.read_bytes("copy/big.bin")).digest() == hashlib.sha256(data).digest()
    )


GLOB_KEYS = [
    "to_process/sales [1] {a,b} *?.csv",
    "to_process/ünïcode 100%.csv",
    "to_process/sales 1 a .csv",  # what an unescaped glob of the first name could also match
    "to_process/back\\slash #2.csv",
]


def test_spark_paths_escape_globs_and_map_back(moto_server, s3_bucket, spark):
    # The shared session may predate this server: hand it the endpoint and keys explicitly, as
    # start_spark does for a flow run, instead of relying on the JVM's inherited environment.
    configure_s3a(spark, Settings(landing=f"s3://{s3_bucket}/landing"))
    store = S3Store(f"s3://{s3_bucket}/landing")
    for i, key in enumerate(GLOB_KEYS):
        store.write_bytes(key, f"n\n{i}\n".encode())
    for i, key in enumerate(GLOB_KEYS):
        path = store.spark_path(key)
        assert path.startswith(f"s3a://{s3_bucket}/landing/to_process/")
        rows = (
            spark.read.option("header", "true")
            .csv(path)
            .select("n", "_metadata.file_path")
            .collect()
        )
        assert [r.n for r in rows] == [str(i)], key
        assert store.key_from_spark_path(rows[0].file_path) == key

    assert store.key_from_spark_path(f"s3a://{s3_bucket}/landing/to_process/a%20b.csv") == (
        "to_process/a b.csv"
    )
    assert store.key_from_spark_path(f"s3a://{s3_bucket}/elsewhere/a.csv") is None
    assert store.key_from_spark_path("s3a://another-bucket/landing/a.csv") is None
    assert store.key_from_spark_path("file:/tmp/landing/a.csv") is None


def test_secrets_stay_out_of_reprs_and_errors(moto_server, s3_bucket):
    connection = resolve_s3_connection()
    assert connection.access_key == moto_server.access_key  # from AWS_ACCESS_KEY_ID
    assert connection.endpoint_url == moto_server.endpoint  # from AWS_ENDPOINT_URL_S3
    text = repr(connection) + str(connection)
    assert moto_server.secret_key not in text and moto_server.access_key not in text
    store = S3Store(f"s3://{s3_bucket}/x")
    with pytest.raises(StorageError) as err:
        store.open("missing.csv")
    assert moto_server.secret_key not in str(err.value)
    assert moto_server.secret_key not in repr(store)


@pytest.mark.slow
def test_prefect_aws_credentials_block(moto_server, s3_bucket, prefect_api, monkeypatch):
    """SALES_ETL_AWS_CREDENTIALS_BLOCK: credentials and endpoint from a Prefect block."""
    from prefect_aws import AwsCredentials

    from sales_etl.settings import Settings
    from sales_etl.spark import s3a_options
    from sales_etl.storage.s3 import clear_s3_cache

    AwsCredentials(
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name="eu-west-3",
        aws_client_parameters={"endpoint_url": moto_server.endpoint},
    ).save("sales-etl-test-s3", overwrite=True)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SALES_ETL_AWS_CREDENTIALS_BLOCK", "sales-etl-test-s3")
    clear_s3_cache()
    try:
        connection = resolve_s3_connection()
        assert connection.source == "prefect block sales-etl-test-s3"
        assert connection.endpoint_url == moto_server.endpoint
        assert connection.region == "eu-west-3"
        assert moto_server.secret_key not in repr(connection)
        store = S3Store(f"s3://{s3_bucket}/blk")
        store.write_bytes("to_process/a.csv", b"x\n1\n")
        assert [o.key for o in store.list("to_process")] == ["to_process/a.csv"]

        settings = Settings(landing=f"s3://{s3_bucket}/blk", marts=f"s3://{s3_bucket}/marts")
        options = s3a_options(settings)
        assert options["fs.s3a.endpoint"] == moto_server.endpoint
        assert options["fs.s3a.path.style.access"] == "true"
        assert options["fs.s3a.connection.ssl.enabled"] == "false"
        assert options["fs.s3a.access.key"] == moto_server.access_key
        assert options["fs.s3a.aws.credentials.provider"].endswith("SimpleAWSCredentialsProvider")
        assert options["mapreduce.fileoutputcommitter.algorithm.version"] == "2"
    finally:
        clear_s3_cache()


def test_open_returns_a_real_binary_stream(moto_server, s3_bucket):
    store = S3Store(f"s3://{s3_bucket}")
    store.write_bytes("a/b.csv", b"l1\nl2\n")
    with store.open("a/b.csv") as stream:
        assert isinstance(stream, io.BufferedIOBase)
        assert stream.readline() == b"l1\n"
        assert list(stream) == [b"l2\n"]
    assert stream.closed


def test_claim_copies_only_the_listed_version(moto_server, s3_bucket, monkeypatch):
    """CopyObject with CopySourceIfMatch: a replaced or deleted object is not claimed (412)."""
    client = moto_server.client()
    store = S3Store(f"s3://{s3_bucket}/l")
    client.put_object(Bucket=s3_bucket, Key="l/to_process/a.csv", Body=b"v1")
    (listed,) = store.list("to_process/")
    assert listed.version == client.head_object(Bucket=s3_bucket, Key="l/to_process/a.csv")["ETag"]
    assert store.claim("to_process/a.csv", "_incoming/b/claimed/000001.csv", listed.version)
    assert (
        client.get_object(Bucket=s3_bucket, Key="l/_incoming/b/claimed/000001.csv")["Body"].read()
        == b"v1"
    )

    client.put_object(Bucket=s3_bucket, Key="l/to_process/a.csv", Body=b"v2")
    assert not store.claim("to_process/a.csv", "_incoming/b/claimed/000002.csv", listed.version)
    client.delete_object(Bucket=s3_bucket, Key="l/to_process/a.csv")
    assert not store.claim("to_process/a.csv", "_incoming/b/claimed/000002.csv", listed.version)
    assert _all_keys(client, s3_bucket, "l/_incoming/") == ["l/_incoming/b/claimed/000001.csv"]

    # Above the single-copy limit the condition travels with the multipart copy.
    monkeypatch.setattr(s3_module, "MAX_SINGLE_COPY_BYTES", 6 * 1024**2)
    monkeypatch.setattr(s3_module, "MULTIPART_COPY_CHUNK_BYTES", 5 * 1024**2)
    big = bytes(range(256)) * (11 * 1024**2 // 256)
    client.put_object(Bucket=s3_bucket, Key="l/to_process/big.csv", Body=big)
    (big_listed,) = store.list("to_process/")
    assert store.claim("to_process/big.csv", "_incoming/b/claimed/000003.csv", big_listed.version)
    assert store.read_bytes("_incoming/b/claimed/000003.csv") == big
    client.put_object(Bucket=s3_bucket, Key="l/to_process/big.csv", Body=big + b"x")
    assert not store.claim(
        "to_process/big.csv", "_incoming/b/claimed/000004.csv", big_listed.version
    )
    assert not store.exists("_incoming/b/claimed/000004.csv")


def test_delete_if_unchanged_keeps_a_new_version(moto_server, s3_bucket):
    """DeleteObject with If-Match: a version uploaded after the listing survives (412)."""
    client = moto_server.client()
    store = S3Store(f"s3://{s3_bucket}/l")
    client.put_object(Bucket=s3_bucket, Key="l/to_process/a.csv", Body=b"v1")
    old = store.version("to_process/a.csv")
    client.put_object(Bucket=s3_bucket, Key="l/to_process/a.csv", Body=b"v2")
    assert not store.delete_if_unchanged("to_process/a.csv", old)
    assert store.read_bytes("to_process/a.csv") == b"v2"
    new = store.version("to_process/a.csv")
    assert new != old
    assert store.delete_if_unchanged("to_process/a.csv", new)
    assert _all_keys(client, s3_bucket, "l/") == []
    assert not store.delete_if_unchanged("to_process/a.csv", new)  # repeated: nothing to do
    assert store.version("to_process/a.csv") is None

"""The lake on an S3 endpoint (moto's server on 127.0.0.1, the same protocol as AWS): a file appears whole under
its final key with one PUT, and no temporary object is ever left, even when a write fails half-way."""

from __future__ import annotations

import pytest

moto_server = pytest.importorskip("moto.server", reason="the cluster extra: pip install -e '.[cluster]'")
pytest.importorskip("s3fs", reason="the cluster extra: pip install -e '.[cluster]'")

import boto3  # noqa: E402
import fsspec  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from startpoint import lake  # noqa: E402

BUCKET = "lake-test"


@pytest.fixture(scope="module")
def endpoint():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_lake(endpoint, monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    fsspec.filesystem("s3").invalidate_cache()
    yield f"s3://{BUCKET}/lake", client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:
    return sorted(o["Key"] for p in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
                  for o in p.get("Contents", []))


def _row(model: str = "org/m") -> dict:
    return {"model_id": model, "architecture": "a", "role": "pretrained"}


def test_a_write_is_one_object_under_its_final_key(s3_lake, monkeypatch):
    url, client = s3_lake
    fs = fsspec.filesystem("s3")
    calls = []
    for name in ("mv", "copy", "_copy", "rename"):  # an object store has no rename: none may be used
        if hasattr(fs, name):
            monkeypatch.setattr(fs, name, lambda *a, _n=name, **k: calls.append(_n))
    path = lake.write(url, "hub_models", "local/org--m", [_row()])
    assert calls == []
    assert path == f"{BUCKET}/lake/hub_models/local/org--m.parquet"
    assert _keys(client) == ["lake/hub_models/local/org--m.parquet"]
    body = client.get_object(Bucket=BUCKET, Key="lake/hub_models/local/org--m.parquet")["Body"].read()
    assert body[:4] == body[-4:] == b"PAR1"
    assert lake.list_files(url, "hub_models") == [path]
    assert lake.read(url, "hub_models").column("model_id").to_pylist() == ["org/m"]


def test_a_failed_write_leaves_nothing(s3_lake, monkeypatch):
    """Serialization fails before the PUT (here: the PUT itself fails): no object, temporary or final."""
    url, client = s3_lake
    fs = fsspec.filesystem("s3")

    def broken(path, value, **kwargs):
        raise OSError("connection reset by peer")

    monkeypatch.setattr(fs, "pipe_file", broken)
    with pytest.raises(OSError, match="connection reset"):
        lake.write(url, "hub_models", "local/org--m", [_row()])
    assert _keys(client) == []


def test_a_rewrite_replaces_the_object_whole(s3_lake):
    url, client = s3_lake
    lake.write(url, "hub_models", "local/org--m", [_row()])
    lake.write(url, "hub_models", "local/org--m", [_row() | {"architecture": "b"}])
    assert _keys(client) == ["lake/hub_models/local/org--m.parquet"]
    with fsspec.open(f"{url}/hub_models/local/org--m.parquet", "rb") as fh:
        assert pq.read_table(fh).column("architecture").to_pylist() == ["b"]


def test_compaction_on_s3_leaves_only_whole_objects(s3_lake, monkeypatch):
    """Compaction writes its merged file with one PUT too, then removes the sources: no temporary object."""
    url, client = s3_lake
    for i in range(3):
        lake.write(url, "hub_models", f"local/org--m{i}", [_row(f"org/m{i}")])
    fs = fsspec.filesystem("s3")
    calls = []
    monkeypatch.setattr(fs, "mv", lambda *a, **k: calls.append("mv"))
    result = lake.compact(url, "hub_models", "local")
    assert calls == [] and result.sources == 3 and len(result.written) == 1
    keys = _keys(client)
    assert len(keys) == 1 and keys[0].startswith("lake/hub_models/local/_compacted/") and keys[0].endswith(".parquet")
    fs.invalidate_cache()
    assert sorted(lake.read(url, "hub_models").column("model_id").to_pylist()) == ["org/m0", "org/m1", "org/m2"]

"""Smoke tests of the storage backends through fsspec alone: the emulators and the fixture work.

They do not use schemasync_backup; they check that what the backup code will rely on holds on
every backend: streamed writes, reads, exclusive create, listing and removal.
"""

from __future__ import annotations

import hashlib
from typing import Any

import fsspec
import pytest
from storage_backends import StorageLocation

pytestmark = pytest.mark.timeout(60)

CHUNK = 1024 * 1024
BLOCK_SIZE = 5 * 1024 * 1024  # the S3 minimum part size: 7 chunks make a multipart / staged / resumable upload


def open_location(location: StorageLocation) -> tuple[Any, str]:
    fs, root = fsspec.core.url_to_fs(location.url, **location.options)
    return fs, root.rstrip("/")


def chunks(count: int) -> list[bytes]:
    # Distinct, incompressible-looking content per chunk, without spending time on os.urandom.
    return [hashlib.sha256(str(i).encode()).digest() * (CHUNK // 32) for i in range(count)]


def names(paths: list[str], root: str) -> set[str]:
    return {path.rstrip("/").removeprefix(root + "/") for path in paths}


def test_location_is_fresh_and_empty(storage_url: StorageLocation) -> None:
    fs, root = open_location(storage_url)
    assert storage_url.url.split("://")[0] in {"file", "memory", "s3", "az", "gs"}
    assert fs.find(root) == []


def test_streamed_write_reads_back_same_sha256(storage_url: StorageLocation) -> None:
    fs, root = open_location(storage_url)
    path = f"{root}/stream.bin"
    data = chunks(7)
    expected = hashlib.sha256(b"".join(data)).hexdigest()

    with fs.open(path, "wb", block_size=BLOCK_SIZE) as out:
        for chunk in data:
            out.write(chunk)

    assert fs.size(path) == len(data) * CHUNK
    digest = hashlib.sha256()
    with fs.open(path, "rb") as source:
        while block := source.read(CHUNK):
            digest.update(block)
    assert digest.hexdigest() == expected
    # The same through a fresh filesystem and a URL, as a restore in another process would read it.
    with fsspec.open(f"{storage_url.url}/stream.bin", "rb", **storage_url.options) as source:
        assert hashlib.sha256(source.read()).hexdigest() == expected


def test_exclusive_create_refuses_to_overwrite(storage_url: StorageLocation) -> None:
    if storage_url.backend == "gcs":
        pytest.skip("gcp-storage-emulator ignores ifGenerationMatch=0, so 'xb' silently overwrites "
                    "(shared/STORAGE-EMULATORS.md, trap 3); real GCS honours it")
    fs, root = open_location(storage_url)
    path = f"{root}/once.bin"
    with fs.open(path, "xb") as out:
        out.write(b"first")

    with pytest.raises(FileExistsError), fs.open(path, "xb") as out:
        out.write(b"second")

    assert fs.cat_file(path) == b"first"


def test_ls_find_and_rm(storage_url: StorageLocation) -> None:
    fs, root = open_location(storage_url)
    fs.makedirs(f"{root}/sub/deeper", exist_ok=True)  # needed on file://, a no-op on object stores
    contents = {"a.bin": b"a" * 10, "sub/b.bin": b"b" * 20, "sub/deeper/c.bin": b"c" * 30}
    for name, data in contents.items():
        fs.pipe_file(f"{root}/{name}", data)

    assert names(fs.find(root), root) == set(contents)
    listing = {entry["name"].rstrip("/").removeprefix(root + "/"): entry for entry in fs.ls(root, detail=True)}
    assert set(listing) == {"a.bin", "sub"}
    assert listing["a.bin"]["type"] == "file"
    assert listing["a.bin"]["size"] == 10
    assert listing["sub"]["type"] == "directory"

    fs.rm(f"{root}/a.bin")
    assert not fs.exists(f"{root}/a.bin")
    assert names(fs.find(root), root) == {"sub/b.bin", "sub/deeper/c.bin"}

    fs.rm(f"{root}/sub", recursive=True)
    assert fs.find(root) == []

"""BackupStore speed: the object pipeline per codec against each stage's raw ceiling, create of a
large schema on file:// and on the S3 emulator, and the storage cost of 30 unchanged backups.

    .venv/bin/python benchmarks/bench_store.py [--megabytes 256] [--tables 5000]

Ratios, not absolute numbers, are the point: every figure is measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_capture import generate_schema, load

from schemasync_backup.formats.framing import DEFAULT_FRAME_SIZE, Encoding, encode
from schemasync_backup.plugins.crypto import AesGcm, EncryptionKey
from schemasync_backup.plugins.manager import default_registry
from schemasync_backup.store.store import BackupStore
from schemasync_backup.testing.sandbox import ThrowawayServer


class NullSink:
    def write(self, data: bytes) -> int:
        return len(data)


def sample(megabytes: int) -> bytes:
    """Schema-like text: JSON lines with repeated keys and varied values (compresses about 4-8x)."""
    rng = random.Random(7)
    words = ["varchar(255)", "NOT NULL", "DEFAULT NULL", "utf8mb4_general_ci", "InnoDB", "KEY", "int(11)"]
    line = []
    size = 0
    while size < megabytes * 2**20:
        piece = (f'{{"name":"col_{rng.randrange(10**6)}","type":"{rng.choice(words)}",'
                 f'"comment":"{rng.randbytes(6).hex()}","nullable":{rng.random() < 0.5}}}\n')
        line.append(piece)
        size += len(piece)
    return "".join(line).encode()[: megabytes * 2**20]


def rate(megabytes: float, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return megabytes / best


def frames(data: bytes) -> list[bytes]:
    return [data[i : i + DEFAULT_FRAME_SIZE] for i in range(0, len(data), DEFAULT_FRAME_SIZE)]


def pipeline(megabytes: int) -> None:
    data = sample(megabytes)
    registry = default_registry()
    key = EncryptionKey.generate()
    cipher = AesGcm()
    address = hashlib.sha256(data).hexdigest()
    sha = rate(megabytes, lambda: hashlib.sha256(data).digest())
    aes = rate(megabytes, lambda: [cipher.encrypt(key.material, f, b"x") for f in frames(data)])
    print(f"\n== object pipeline on {megabytes} MiB ({os.cpu_count()} cores; one core used)")
    print(f"   ceilings: sha256 {sha:8.0f} MB/s   AES-256-GCM {aes:8.0f} MB/s")
    print(f"   {'codec':8} {'codec alone':>12} {'pipeline':>10} {'decode':>10} {'vs slowest':>11} {'ratio':>6}")
    for name, level in (("lz4", None), ("zstd", 1), ("gzip", 1), ("none", None)):
        if name not in registry.codecs:
            continue
        codec = registry.codec(name)
        alone = rate(megabytes, lambda codec=codec, level=level: [codec.compress(f, level) for f in frames(data)])
        encoding = Encoding(codec=name, level=level, key=key)
        full = rate(megabytes, lambda encoding=encoding: encode(data, address, len(data), encoding, registry,
                                                                NullSink()))
        stored = _encoded(data, address, encoding)
        store_ratio = len(data) / len(stored)
        decoded = rate(megabytes, lambda stored=stored: _decode(stored, address, key))
        slowest = min(alone, aes, sha)
        print(f"   {name:8} {alone:9.0f} MB/s {full:7.0f} MB/s {decoded:7.0f} MB/s {full / slowest:10.0%} "
              f"{store_ratio:5.1f}x")


class _Buffer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)


def _encoded(data: bytes, address: str, encoding: Encoding) -> bytes:
    sink = _Buffer()
    encode(data, address, len(data), encoding, default_registry(), sink)
    return b"".join(sink.parts)


def _decode(stored: bytes, address: str, key: EncryptionKey) -> bytes:
    import io

    from schemasync_backup.formats.framing import decode
    from schemasync_backup.plugins.crypto import Keyring

    return b"".join(decode(io.BytesIO(stored), address, Keyring((key,)), default_registry(), "bench"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def creates(tables: int) -> None:
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    with ThrowawayServer(extra_options=("--table-open-cache=12000",)) as server, \
            tempfile.TemporaryDirectory() as scratch:
        schema = generate_schema(tables)
        load(server, "bench", schema)
        key = EncryptionKey.generate()
        targets = [("file://", scratch + "/store", {})]
        process = None
        if moto:
            port = free_port()
            process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            options = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
                       "skip_instance_cache": True}
            import fsspec

            fsspec.filesystem("s3", **options).mkdir("bench-store")
            targets.append(("s3 (moto)", "s3://bench-store/backups", options))
        print(f"\n== create of a {tables}-table schema (capture + encode + upload + commit)")
        try:
            for label, url, options in targets:
                store = BackupStore.open(url, storage_options=options, encryption_keys=key, compression="zstd")
                started = time.perf_counter()
                info = store.create(server.dsn, "bench")
                first = time.perf_counter() - started
                for _ in range(29):
                    store.create(server.dsn, "bench")
                usage = sum(len(store.fs.cat_file(p)) for p in store.fs.find(store.root))
                print(f"   {label:10} create {first:5.2f} s, {info.raw_size / 2**20:.1f} MiB raw -> "
                      f"{info.stored_size / 2**20:.2f} MiB stored; 30 backups occupy {usage / 2**20:.2f} MiB "
                      f"(one object + 30 manifests of ~{(usage - info.stored_size) / 30 / 1024:.0f} KiB)")
        finally:
            if process is not None:
                process.terminate()
        dump = subprocess.run(["mariadb-dump", "--no-defaults", "-uroot", f"--socket={server.socket_path}",
                               "--no-data", "--routines", "--triggers", "--events", "bench"],
                              capture_output=True, check=True).stdout
        print(f"   for scale: mysqldump --no-data output is {len(dump) / 2**20:.1f} MiB per copy, "
              f"{30 * len(dump) / 2**20:.0f} MiB for 30 copies")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--tables", type=int, default=5000)
    args = parser.parse_args()
    pipeline(args.megabytes)
    creates(args.tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

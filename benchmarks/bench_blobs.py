"""Blob store throughput: uploads' originals in a directory, in PostgreSQL's blob table, and in an
S3-compatible bucket (``blobs = "s3://..."``), through the ``BlobStore`` protocol.

For each store: ``put`` N new 200 KB blobs (random bytes, content-addressed keys, as an upload
is), ``put`` them again (already there: S3 answers a HEAD and sends nothing), ``get`` each, and
``local_path`` each (a remote store downloads, checks the SHA-256 and renames into the cache).
One blob at a time from one thread, the way one ingestion worker stores them.

The S3 server is moto's (``moto[server]``), started as its own process on loopback: a Python
server, much slower per request than MinIO or AWS, so its figures are a floor for S3 on this
machine, not what a real bucket does; what they show is the per-request cost oculi adds
(boto3 signing and HTTP) and that nothing is sent twice. PostgreSQL runs from the ``pgserver``
wheel over a Unix socket.

Run: ``.venv/bin/python benchmarks/bench_blobs.py [--n 200] [--kb 200] [--stores dir,pg,s3]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _s3(tmp: Path):
    """A moto S3 server in its own process and a bucket on it; ``(blob store, stop)``."""
    import boto3

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    t0 = time.monotonic()
    while True:
        try:
            client.create_bucket(Bucket="bench")
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() - t0 > 60:
                proc.kill()
                raise
            time.sleep(0.2)
    from oculi.store.s3_blobs import S3BlobRoot

    store = S3BlobRoot("bench", "oculi", endpoint_url=endpoint, cache_dir=tmp / "cache").collection("photos")
    return store, lambda: (proc.terminate(), proc.wait(10))


def _pg(tmp: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.pgutil import start_server

    from oculi.store.pg_store import PgStore

    folder = Path(tempfile.mkdtemp(prefix="oculi-bench-pg-"))
    folder.chmod(0o755)
    srv, url = start_server(folder / "data")
    store = PgStore(url, home=tmp / "home")
    store.create_collection("photos")
    b = store.blobs("photos")

    def stop() -> None:
        store.close()
        srv.cleanup()  # type: ignore[attr-defined]
        shutil.rmtree(folder, ignore_errors=True)

    return b, stop


def _dir(tmp: Path):
    from oculi.store.blobs import DirectoryBlobStore

    return DirectoryBlobStore(tmp / "blobs"), lambda: None


def _timed(fn, keys) -> float:
    t0 = time.perf_counter()
    for k in keys:
        fn(k)
    return time.perf_counter() - t0


def run(name: str, store, blobs: dict[str, bytes]) -> dict[str, float]:
    keys = list(blobs)
    mb = sum(len(v) for v in blobs.values()) / 1e6
    put = _timed(lambda k: store.put(k, blobs[k]), keys)
    again = _timed(lambda k: store.put(k, blobs[k]), keys)
    get = _timed(store.get, keys)
    local = _timed(store.local_path, keys)
    assert all(store.get(k) == blobs[k] for k in keys[:5])
    n = len(keys)
    return {"put_ms": put / n * 1e3, "put_mbs": mb / put, "again_ms": again / n * 1e3, "get_ms": get / n * 1e3,
            "get_mbs": mb / get, "local_ms": local / n * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--kb", type=int, default=200)
    ap.add_argument("--stores", default="dir,pg,s3")
    a = ap.parse_args()
    blobs = {}
    for i in range(a.n):
        data = os.urandom(a.kb * 1024)
        sha = hashlib.sha256(data).hexdigest()
        blobs[f"{sha[:2]}/{sha}.jpg"] = data
    makers = {"dir": ("directory", _dir), "pg": ("PostgreSQL table", _pg), "s3": ("S3 (moto server, loopback)", _s3)}
    rows = []
    for s in a.stores.split(","):
        label, make = makers[s]
        tmp = Path(tempfile.mkdtemp(prefix=f"oculi-bench-{s}-"))
        try:
            store, stop = make(tmp)
            try:
                rows.append((label, run(label, store, blobs)))
            finally:
                stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"Blob stores, {a.n} blobs of {a.kb} KB, one at a time — {machine()}\n")
    print("| blob store | put ms/blob | put MB/s | put again (present) ms | get ms/blob | get MB/s | local_path ms (first) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        print(f"| {label} | {r['put_ms']:.2f} | {r['put_mbs']:.0f} | {r['again_ms']:.2f} | {r['get_ms']:.2f} | "
              f"{r['get_mbs']:.0f} | {r['local_ms']:.2f} |")


if __name__ == "__main__":
    main()

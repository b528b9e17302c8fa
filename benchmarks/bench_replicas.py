"""Server throughput with 1 and 2 `oculi serve` replicas on loopback, behind a round-robin client.

Each replica is its own `python -m oculi serve` process (the real models, API keys on) on its
own port; the client sends request i to replica i mod N, as a round-robin load balancer does.
The replicas share one home, and with it the **embedded** store: that is fine for this
traffic, which only reads collections (text search) or touches none (caption); replicas that
write share PostgreSQL instead (``OCULI_STORE=postgresql://...``, docs/DEPLOY.md).

For each replica count: ``--clients`` concurrent clients send a mix of two thirds caption and
one third text search for ``--seconds``; reported: requests/s, p50/p95 latency, errors (must
be 0). The replicas of one run compete for the same cores, so on a 2-core machine a second
replica cannot add compute; what it shows is the cost or gain of a second process (its own
model copies, its own event loop and lanes) — on separate machines throughput adds up until
the store is the bottleneck (docs/CAPACITY.md).

Run: ``.venv/bin/python benchmarks/bench_replicas.py [--clients 8] [--seconds 60] [--replicas 1,2]
[--store postgresql://user@host/db]`` (with ``--store`` the replicas share that store and its keys).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import count
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_server import QUERIES, Server, free_port, pct, sample_photos, variants  # noqa: E402
from machine import machine  # noqa: E402


async def round_robin_load(urls: list[str], key: str, clients: int, seconds: float,
                           photos: list[tuple[str, bytes]], collection: str) -> dict:
    """``clients`` workers back to back for ``seconds``; request i goes to ``urls[i % N]``."""
    lat: dict[str, list[float]] = {"caption": [], "search": []}
    errors: list[str] = []
    counter = count()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    conns = [httpx.AsyncClient(base_url=u, headers=headers, timeout=600, limits=limits) for u in urls]
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            i = next(counter)
            client = conns[i % len(conns)]
            op = "search" if i % 3 == 2 else "caption"
            name, data = photos[i % len(photos)]
            t0 = time.perf_counter()
            try:
                if op == "caption":
                    r = await client.post("/api/v1/caption", files={"image": (name, data, "image/jpeg")})
                else:
                    r = await client.post(f"/api/v1/collections/{collection}/search",
                                          json={"text": QUERIES[i % len(QUERIES)], "top_k": 10})
                ok, msg = r.status_code < 300, f"{op}: HTTP {r.status_code}"
            except httpx.HTTPError as e:
                ok, msg = False, f"{op}: {type(e).__name__}"
            if ok:
                lat[op].append(time.perf_counter() - t0)
            else:
                errors.append(msg)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - t0
    for c in conns:
        await c.aclose()
    done = sum(len(v) for v in lat.values())
    return {"requests": done + len(errors), "errors": len(errors), "error_samples": errors[:3], "wall_s": wall,
            "rps": done / wall, "p50": pct(lat["caption"] + lat["search"], 50),
            "p95": pct(lat["caption"] + lat["search"], 95),
            "caption_p50": pct(lat["caption"], 50), "search_p50": pct(lat["search"], 50)}


def build_collection(home: Path, photos: list[tuple[str, bytes]], store: str | None) -> None:
    """The searched collection, indexed once in this process (the replicas only read it)."""
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.library import Library

    settings = Settings(home=home, assets_dir=Settings().assets_dir, store=store)
    eng = Engine(settings)
    try:
        Library(eng).ingest("bench", photos)
    finally:
        eng.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--collection-size", type=int, default=30)
    ap.add_argument("--store", default=None, help="a store URL the replicas share (e.g. postgresql://...); "
                    "default: the embedded store of one shared home")
    args = ap.parse_args()
    photos = sample_photos()
    rows = []
    with tempfile.TemporaryDirectory(prefix="oculi-bench-replicas-") as tmp:
        home = Path(tmp) / "home"
        from oculi.server.auth import KeyStore

        if args.store:  # keys live in the shared store then (oculi keys create --store ...)
            out = subprocess.run([sys.executable, "-m", "oculi", "--store", args.store, "keys", "create", "--scope",
                                  "admin", "--json"], env={**os.environ, "OCULI_HOME": str(home)},
                                 capture_output=True, text=True, check=True).stdout
            key = json.loads(out)["key"]
        else:
            key, _ = KeyStore(home).create("admin", name="bench")
        build_collection(home, photos + variants(photos, args.collection_size - len(photos), seed=1), args.store)
        print(f"machine: {machine()}", flush=True)
        for n in (int(x) for x in args.replicas.split(",")):
            env = {"OCULI_STORE": args.store} if args.store else None
            servers = [Server(home, free_port(), Path(tmp) / f"replica{n}-{i}.log", env=env) for i in range(n)]
            try:
                for s in servers:
                    s.start()
                asyncio.run(round_robin_load([s.url for s in servers], key, 2, 5, photos, "bench"))  # warm
                res = asyncio.run(round_robin_load([s.url for s in servers], key, args.clients, args.seconds,
                                                   photos, "bench"))
                res["rss_mib"] = sum(s.rss() for s in servers) / 2**20
            finally:
                for s in servers:
                    s.stop()
            print(f"{n} replica(s): {res}", flush=True)
            rows.append((n, res))
    base = rows[0][1]["rps"]
    print(f"\nMachine: {machine()}\n")
    print(f"{args.clients} concurrent clients for {args.seconds:.0f} s, 2/3 caption (640×480 JPEG upload) and 1/3 "
          f"text search over {args.collection_size} images; round-robin over the replicas; "
          f"{'one shared ' + args.store.split(':')[0] + ' store (keys in it too)' if args.store else 'embedded store, read-only traffic'}.\n")
    print("| replicas | requests | errors | requests/s | × 1 replica | p50 (s) | p95 (s) | caption p50 (s) | search p50 (s) | RSS, all replicas (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n, r in rows:
        print(f"| {n} | {r['requests']} | {r['errors']} | **{r['rps']:.2f}** | {r['rps'] / base:.2f} | {r['p50']:.2f} "
              f"| {r['p95']:.2f} | {r['caption_p50']:.2f} | {r['search_p50']:.3f} | {r['rss_mib']:.0f} |")
    return 0 if all(r["errors"] == 0 for _, r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

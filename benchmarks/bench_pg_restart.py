"""What a PostgreSQL restart costs a running ``PgStore``: the server (``pgserver`` wheel, Unix
socket) is stopped and started again (``pg_ctl -m fast``, same data and socket) under one store
object, and the next search is timed: it meets the ended connection, opens a new one (re-applying
its session settings) and runs again. Warm searches on a live connection are the baseline; the
items are counted afterwards (none may be lost).

Run: ``.venv/bin/python benchmarks/bench_pg_restart.py [--items 200] [--restarts 5]``
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=5)
    a = ap.parse_args()
    logging.getLogger("oculi.store.pg_store").setLevel(logging.ERROR)  # one warning per restart otherwise

    from tests.pgutil import RestartableServer, pg_database
    from tests.store_contract import TD, item, vec

    from oculi.store.pg_store import PgStore

    folder = Path(tempfile.mkdtemp(prefix="oculi-bench-pgr-"))
    folder.chmod(0o755)
    srv = RestartableServer(folder / "data")
    try:
        with pg_database(srv.url, "bench") as url:
            store = PgStore(url, home=folder / "home")
            coll = store.create_collection("photos")
            coll.add_items([item(n) for n in range(a.items)])
            q = vec(3, TD)

            def search() -> float:
                t = time.perf_counter()
                coll.vector_search(q, column="text_vec", k=10)
                return (time.perf_counter() - t) * 1000

            for _ in range(5):
                search()
            warm = [search() for _ in range(50)]
            restart, first = [], []
            for _ in range(a.restarts):
                t = time.perf_counter()
                srv.stop()
                srv.start()
                restart.append((time.perf_counter() - t) * 1000)
                first.append(search())
            kept = coll.count()
            store.close()
    finally:
        srv.cleanup()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"PostgreSQL restart under a running PgStore, {a.items} items, {a.restarts} restarts — {machine()}\n")
    print("| measure | median (ms) | min–max (ms) |")
    print("|---|---|---|")
    for name, xs in (("search, live connection", warm), ("server stop + start", restart),
                     ("first search after the restart (reconnects)", first)):
        print(f"| {name} | {statistics.median(xs):.1f} | {min(xs):.1f}–{max(xs):.1f} |")
    print(f"\nitems after the restarts: {kept} of {a.items}")


if __name__ == "__main__":
    main()

"""Load and reliability of `oculi serve` on loopback (issue 4's benchmark; not a test).

Starts `python -m oculi serve` as a child process on 127.0.0.1 with a throw-away home (the
real model assets), then:

1. **Load**: 1, 8 and 32 concurrent clients mixing caption, ask and search (a third each),
   each level bounded by a request count and a time limit; reports throughput, p50/p95/p99
   latency, errors (non-2xx on valid requests; must be 0) and the server's peak RSS.
2. **Ingest while searching**: one job uploads images while a client keeps searching; reports
   the job's rate and the searches' latency and errors.
3. **Kill and resume**: a job is uploaded, the server is killed with SIGKILL part-way, a new
   server is started on the same home; the job resumes and every image ends up in the
   collection exactly once.
4. **Search under image load** (issue 7: search must never queue behind image work): 16
   clients back to back, a third each caption / ask / text search, for a fixed time; search
   latency is reported apart from the image requests, next to the same search with the server
   otherwise idle. With ``--anchor-ref REF`` the same run is made, in alternating rounds on
   the same home, against the server code at git ``REF`` (e.g. the commit before the lanes),
   and the table gives this code's figures as ratios of the anchor's: on a shared machine
   only the ratios mean much.

Prints a Markdown report (also written to ``--out``). Run:
``.venv/bin/python benchmarks/bench_server.py --out docs/SERVER.md``; only part 4, against an
anchor: ``... --only priority --anchor-ref fe14a02``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageOps

from machine import machine  # benchmarks/machine.py: this script's folder is on sys.path

SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "page", "clock", "coins", "motorcycle", "horse")
QUESTIONS = ("How many people are there?", "Is there a cat?", "What colour is the cup?", "Is there any text?")
QUERIES = ("a cat", "people", "a red motorcycle", "coffee cup", "text on a page", "a rocket launch")



def sample_photos() -> list[tuple[str, bytes]]:
    """The scikit-image samples as 640×480 JPEGs."""
    from skimage import data

    out = []
    for name in SAMPLES:
        arr = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, "chelsea" if name == "cat" else name)()
        if arr.dtype == bool:
            arr = (~arr).astype(np.uint8) * 255
        img = Image.fromarray(arr).convert("RGB").resize((640, 480), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append((f"{name}.jpg", buf.getvalue()))
    return out


def variants(photos: list[tuple[str, bytes]], n: int, seed: int) -> list[tuple[str, bytes]]:
    """``n`` distinct images (crops/flips/tints of the samples), so no two are the same item."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name, data = photos[i % len(photos)]
        img = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = img.size
        dx, dy = rng.randint(0, w // 6), rng.randint(0, h // 6)
        img = img.crop((dx, dy, w - rng.randint(0, w // 6), h - rng.randint(0, h // 6)))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(80, 92))
        out.append((f"v{seed}-{i}-{name}", buf.getvalue()))
    return out


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the server process ------------------------------------------------------------------------
class Server:
    def __init__(self, home: Path, port: int, log: Path, src: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.home, self.port, self.log = home, port, log
        self.env = env or {}
        self.src = src  # run the server from this source tree (an anchor) instead of the installed one
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.peak_rss = 0
        self._stop = threading.Event()

    def start(self, timeout: float = 180) -> float:
        env = {**os.environ, "OCULI_HOME": str(self.home), "OCULI_SERVER_RATE_PER_MINUTE": "0", **self.env}
        from oculi.config import Settings

        env["OCULI_ASSETS_DIR"] = str(Settings().assets_dir)
        if self.src is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(self.src), *filter(None, [os.environ.get("PYTHONPATH")])])
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oculi", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
        )
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    self._stop.clear()
                    threading.Thread(target=self._watch_rss, daemon=True).start()
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, AttributeError):
            pass
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return float("nan")

    def _watch_rss(self) -> None:
        while not self._stop.is_set() and self.proc and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.25)

    def kill(self) -> None:
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


# --- load --------------------------------------------------------------------------------------
@dataclass
class Level:
    clients: int
    requests: int = 0
    errors: int = 0
    wall: float = 0.0
    lat: dict[str, list[float]] = field(default_factory=lambda: {"caption": [], "ask": [], "search": []})
    rss: int = 0
    error_samples: list[str] = field(default_factory=list)

    @property
    def all_lat(self) -> list[float]:
        return [x for v in self.lat.values() for x in v]


async def one_request(client: httpx.AsyncClient, op: str, i: int, photos: list[tuple[str, bytes]], collection: str) -> httpx.Response:
    name, data = photos[i % len(photos)]
    if op == "caption":
        return await client.post("/api/v1/caption", files={"image": (name, data, "image/jpeg")})
    if op == "ask":
        b64 = base64.b64encode(data).decode()
        return await client.post("/api/v1/ask", json={"image": b64, "question": QUESTIONS[i % len(QUESTIONS)]})
    return await client.post(f"/api/v1/collections/{collection}/search", json={"text": QUERIES[i % len(QUERIES)], "top_k": 10})


async def run_level(server: Server, key: str, clients: int, max_requests: int, max_seconds: float,
                    photos: list[tuple[str, bytes]], collection: str) -> Level:
    lvl = Level(clients)
    ops = ("caption", "ask", "search")
    counter = iter(range(10**9))
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    server.peak_rss = server.rss()

    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=600, limits=limits) as client:
        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                op = ops[i % 3]
                t0 = time.perf_counter()
                try:
                    r = await one_request(client, op, i, photos, collection)
                    ok = r.status_code < 300
                    msg = f"{op}: HTTP {r.status_code} {r.text[:120]}"
                except httpx.HTTPError as e:
                    ok, msg = False, f"{op}: {type(e).__name__}"
                dt = time.perf_counter() - t0
                lvl.requests += 1
                if ok:
                    lvl.lat[op].append(dt)
                else:
                    lvl.errors += 1
                    if len(lvl.error_samples) < 5:
                        lvl.error_samples.append(msg)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        lvl.wall = time.perf_counter() - t0
    lvl.rss = server.peak_rss
    return lvl


# --- jobs --------------------------------------------------------------------------------------
def upload(url: str, key: str, collection: str, items: list[tuple[str, bytes]]) -> dict:
    files = [("images", (n, d, "image/jpeg")) for n, d in items]
    r = httpx.post(f"{url}/api/v1/collections/{collection}/images", files=files,
                   headers={"Authorization": f"Bearer {key}"}, timeout=120)
    r.raise_for_status()
    return r.json()


def job(url: str, key: str, job_id: str) -> dict:
    r = httpx.get(f"{url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def wait_job(url: str, key: str, job_id: str, timeout: float = 900) -> dict:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        j = job(url, key, job_id)
        if j["state"] in ("done", "failed", "cancelled"):
            return j
        time.sleep(0.5)
    raise RuntimeError(f"job {job_id} did not finish")


def count_items(url: str, key: str, collection: str) -> int:
    r = httpx.get(f"{url}/api/v1/collections/{collection}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    r.raise_for_status()
    return r.json()["items"]


def ingest_while_searching(server: Server, key: str, items: list[tuple[str, bytes]]) -> dict:
    t0 = time.perf_counter()
    j = upload(server.url, key, "bench", items)
    lat, errors, n = [], 0, 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        while True:
            state = job(server.url, key, j["id"])
            if state["state"] in ("done", "failed", "cancelled"):
                break
            q = QUERIES[n % len(QUERIES)]
            s = time.perf_counter()
            r = c.post("/api/v1/collections/bench/search", json={"text": q, "top_k": 10})
            lat.append(time.perf_counter() - s)
            n += 1
            errors += r.status_code >= 300
    wall = time.perf_counter() - t0
    return {"images": len(items), "job_state": state["state"], "job_done": state["done"], "job_failed": state["failed"],
            "wall": wall, "rate": len(items) / wall, "searches": n, "search_errors": errors,
            "search_p50": pct(lat, 50), "search_p95": pct(lat, 95), "search_max": max(lat) if lat else float("nan")}


def kill_and_resume(server: Server, key: str, items: list[tuple[str, bytes]]) -> dict:
    before = count_items(server.url, key, "bench")
    j = upload(server.url, key, "bench", items)
    t0 = time.perf_counter()
    while True:
        s = job(server.url, key, j["id"])
        if s["state"] not in ("queued", "running") or (s["progress"] >= 0.45 and s["done"] > 0 and s["in_flight"] > 0):
            break
        if time.perf_counter() - t0 > 600:
            raise RuntimeError("job made no progress")
        time.sleep(0.1)
    done_at_kill = f"{s['done']} committed + {s['in_flight']} in flight"
    server.kill()
    restart = server.start()
    final = wait_job(server.url, key, j["id"])
    after = count_items(server.url, key, "bench")
    return {"images": len(items), "done_at_kill": done_at_kill, "state_at_kill": s["state"], "restart_s": restart,
            "final_state": final["state"], "final_done": final["done"], "final_failed": final["failed"],
            "items_before": before, "items_after": after, "added": after - before,
            "ok": final["state"] == "done" and final["done"] == len(items) and after - before == len(items)}


# --- search under image load ------------------------------------------------------------------
@dataclass
class PriorityRun:
    config: str
    search_alone: list[float] = field(default_factory=list)
    search: list[float] = field(default_factory=list)
    image: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    cpu: float = 0.0  # server CPU seconds during the mixed load


def anchor_tree(ref: str, dest: Path) -> Path:
    """The ``src`` folder of git ``ref`` of this repository, unpacked under ``dest``."""
    repo = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(repo), "archive", ref, "src"], check=True, capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


async def search_alone(server: Server, key: str, n: int, collection: str) -> list[float]:
    out = []
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        for i in range(n):
            t0 = time.perf_counter()
            r = await c.post(f"/api/v1/collections/{collection}/search", json={"text": QUERIES[i % len(QUERIES)], "top_k": 10})
            r.raise_for_status()
            out.append(time.perf_counter() - t0)
    return out


async def mixed_for(server: Server, key: str, clients: int, seconds: float, photos: list[tuple[str, bytes]],
                    collection: str, run: PriorityRun) -> None:
    """``clients`` back-to-back clients, client i doing op i % 3 (caption, ask, search), for ``seconds``."""
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    ops = ("caption", "ask", "search")
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=600, limits=limits) as c:
        async def worker(w: int) -> None:
            op, i = ops[w % 3], w
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    r = await one_request(c, op, i, photos, collection)
                    ok = r.status_code < 300
                except httpx.HTTPError:
                    ok = False
                dt = time.perf_counter() - t0
                if not ok:
                    run.errors += 1
                elif op == "search":
                    run.search.append(dt)
                else:
                    run.image.append(dt)
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        run.wall = time.perf_counter() - t0


def priority_runs(home: Path, key: str, tmp: Path, args: argparse.Namespace, photos: list[tuple[str, bytes]]) -> list[PriorityRun]:
    configs: list[tuple[str, Path | None, dict[str, str]]] = [("this code", None, {})]
    if args.with_nice0:  # the lanes alone, without the lower priority for image work
        configs.append(("this code, `OCULI_SERVER_MODEL_NICE=0`", None, {"OCULI_SERVER_MODEL_NICE": "0"}))
    if args.anchor_ref:
        repo = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", args.anchor_ref], check=True, capture_output=True,
                             text=True).stdout.strip()
        configs.insert(0, (f"anchor `{sha}`", anchor_tree(args.anchor_ref, tmp / "anchor"), {}))
    runs = []
    for rnd in range(args.rounds):
        for name, src, env in configs:
            server = Server(home, free_port(), tmp / f"server-{len(runs)}.log", src=src, env=env)
            server.start()
            try:
                run = PriorityRun(name)
                asyncio.run(search_alone(server, key, 3, "bench"))  # warm the search path
                run.search_alone = asyncio.run(search_alone(server, key, args.alone_searches, "bench"))
                cpu0 = server.cpu_seconds()
                asyncio.run(mixed_for(server, key, args.priority_clients, args.priority_seconds, photos, "bench", run))
                run.cpu = server.cpu_seconds() - cpu0
            finally:
                server.stop()
            print(f"round {rnd + 1} {name}: search alone p50 {pct(run.search_alone, 50) * 1000:.0f} ms; under load "
                  f"{len(run.search)} searches p50 {pct(run.search, 50) * 1000:.0f} ms p95 {pct(run.search, 95) * 1000:.0f} ms; "
                  f"{len(run.image)} image requests ({len(run.image) / run.wall:.2f}/s), server CPU {run.cpu / run.wall:.2f} cores, "
                  f"errors {run.errors}", flush=True)
            runs.append(run)
    return runs


def priority_report(runs: list[PriorityRun], args: argparse.Namespace) -> list[str]:
    ms = lambda x: f"{x * 1000:,.0f}"  # noqa: E731
    names = list(dict.fromkeys(r.config for r in runs))
    merged = {}
    for n in names:
        rs = [r for r in runs if r.config == n]
        merged[n] = PriorityRun(n, [x for r in rs for x in r.search_alone], [x for r in rs for x in r.search],
                                [x for r in rs for x in r.image], sum(r.errors for r in rs), sum(r.wall for r in rs),
                                sum(r.cpu for r in rs))
    lines = [
        "Search under image load: "
        f"{args.priority_clients} clients back to back for {args.priority_seconds:.0f} s, a third each caption, ask and text "
        f"search; {args.rounds} round(s) per configuration, alternating, on the same collection "
        f"({args.collection_size} images). \"search alone\" is {args.alone_searches} searches with the server otherwise idle. "
        "\"server CPU\" is the cores' worth of CPU time the server process got during the load (on a machine shared with "
        "other work, lower-priority image threads get less of it).",
        "",
        "| server | search alone p50 (ms) | searches | search p50 (ms) | search p95 (ms) | search max (ms) | image requests/s | "
        "image p50 (ms) | server CPU (cores) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        m = merged[n]
        lines.append(f"| {n} | {ms(pct(m.search_alone, 50))} | {len(m.search)} | {ms(pct(m.search, 50))} | {ms(pct(m.search, 95))} | "
                     f"{ms(max(m.search) if m.search else float('nan'))} | {len(m.image) / m.wall:.2f} | {ms(pct(m.image, 50))} | "
                     f"{m.cpu / m.wall:.2f} | {m.errors} |")
    ratio = lambda x, y: f"{x / y:.2f}×" if y else "n/a"  # noqa: E731
    anchor = merged[names[0]] if names[0].startswith("anchor") else None
    for n in names[1:] if anchor is not None else ():
        a, b = anchor, merged[n]
        lines.append(
            f"| {n} / anchor | {ratio(pct(b.search_alone, 50), pct(a.search_alone, 50))} | | "
            f"{ratio(pct(b.search, 50), pct(a.search, 50))} | {ratio(pct(b.search, 95), pct(a.search, 95))} | "
            f"{ratio(max(b.search), max(a.search))} | {ratio(len(b.image) / b.wall, len(a.image) / a.wall)} | "
            f"{ratio(pct(b.image, 50), pct(a.image, 50))} | {ratio(b.cpu / b.wall, a.cpu / a.wall)} | |"
        )
    return lines


# --- report ------------------------------------------------------------------------------------
def report(levels: list[Level], ingest: dict | None, resume: dict | None, prio: list[PriorityRun], startup: float,
           idle_rss: int, args: argparse.Namespace) -> str:
    ms = lambda x: f"{x * 1000:,.0f}"  # noqa: E731
    lines = [
        "## Server load and reliability",
        "",
        f"Machine: {machine()}. Server: `oculi serve` on 127.0.0.1, one process, built-in models, "
        f"inference concurrency = CPU count; measured by `benchmarks/bench_server.py` "
        f"(bounded to {args.max_requests_per_client} requests per client, at least {args.min_requests}, "
        f"and {args.max_seconds:.0f} s per level). Startup to ready: {startup:.1f} s; idle RSS after warm-up {idle_rss / 2**20:,.0f} MiB.",
        "",
    ]
    if levels:
        lines += [
            "Mixed load, a third each of caption (multipart JPEG 640×480), ask (base64 JSON) and text search (collection of "
            f"{args.collection_size} images):",
            "",
            "| clients | requests | errors | throughput (req/s) | p50 (ms) | p95 (ms) | p99 (ms) | caption p50 | ask p50 | search p50 | search p95 | server peak RSS (MiB) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for lv in levels:
            al = lv.all_lat
            lines.append(
                f"| {lv.clients} | {lv.requests} | {lv.errors} | {lv.requests / lv.wall:.2f} | {ms(pct(al, 50))} | {ms(pct(al, 95))} | "
                f"{ms(pct(al, 99))} | {ms(pct(lv.lat['caption'], 50))} | {ms(pct(lv.lat['ask'], 50))} | {ms(pct(lv.lat['search'], 50))} | "
                f"{ms(pct(lv.lat['search'], 95))} | {lv.rss / 2**20:,.0f} |"
            )
        lines.append("")
    if prio:
        lines += priority_report(prio, args) + [""]
    if ingest is not None:
        lines += [
            "Ingestion while searching (one upload job; one client searching back-to-back until the job ends):",
            "",
            "| images | job | ingest rate (img/s) | searches | search errors | search p50 (ms) | search p95 (ms) | search max (ms) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
            f"| {ingest['images']} | {ingest['job_state']} ({ingest['job_done']} done, {ingest['job_failed']} failed) | "
            f"{ingest['rate']:.2f} | {ingest['searches']} | {ingest['search_errors']} | {ms(ingest['search_p50'])} | "
            f"{ms(ingest['search_p95'])} | {ms(ingest['search_max'])} |",
            "",
        ]
    if resume is not None:
        lines += [
            "Kill and restart mid-ingestion (SIGKILL, then a new server on the same home):",
            "",
            "| images in job | progress when killed | restart to ready (s) | after restart | items added to the collection | nothing lost |",
            "|---:|---:|---:|---|---:|---|",
            f"| {resume['images']} | {resume['done_at_kill']} | {resume['restart_s']:.1f} | {resume['final_state']} "
            f"({resume['final_done']} done, {resume['final_failed']} failed) | {resume['added']} | {'yes' if resume['ok'] else 'NO'} |",
        ]
    errs = [e for lv in levels for e in lv.error_samples]
    if errs:
        lines += ["", "Errors seen:", ""] + [f"- `{e}`" for e in errs]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("all", "load", "priority", "jobs"), default="all",
                    help="which parts to run (load: 1; priority: 4; jobs: 2 and 3)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--max-requests-per-client", type=int, default=3)
    ap.add_argument("--min-requests", type=int, default=24)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--collection-size", type=int, default=44)
    ap.add_argument("--ingest-images", type=int, default=24)
    ap.add_argument("--resume-images", type=int, default=48)
    ap.add_argument("--priority-clients", type=int, default=16)
    ap.add_argument("--priority-seconds", type=float, default=45.0)
    ap.add_argument("--alone-searches", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of part 4 per configuration (alternating)")
    ap.add_argument("--anchor-ref", default=None, help="git ref whose server code part 4 compares against")
    ap.add_argument("--with-nice0", action="store_true", help="part 4 also runs this code with OCULI_SERVER_MODEL_NICE=0")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    run = (lambda part: args.only in ("all", part))  # noqa: E731

    photos = sample_photos()
    levels: list[Level] = []
    ingest = resume = None
    prio: list[PriorityRun] = []
    with tempfile.TemporaryDirectory(prefix="oculi-bench-") as tmp:
        home = Path(tmp) / "home"
        from oculi.server.auth import KeyStore

        key, _ = KeyStore(home).create("admin", name="bench")
        server = Server(home, free_port(), Path(tmp) / "server.log")
        print(f"machine: {machine()}", flush=True)
        startup = server.start()
        idle_rss = server.rss()
        print(f"server ready in {startup:.1f} s, RSS {idle_rss / 2**20:.0f} MiB", flush=True)
        try:
            j = upload(server.url, key, "bench", photos + variants(photos, args.collection_size - len(photos), seed=1))
            j = wait_job(server.url, key, j["id"])
            print(f"collection ready: {j['done']} images in {j['elapsed_s']:.1f} s", flush=True)
            for c in (int(x) for x in args.clients.split(",")) if run("load") else ():
                n = max(args.min_requests, c * args.max_requests_per_client)
                lv = asyncio.run(run_level(server, key, c, n, args.max_seconds, photos, "bench"))
                print(f"{c:>3} clients: {lv.requests} requests in {lv.wall:.1f} s, errors {lv.errors}, "
                      f"p50 {pct(lv.all_lat, 50):.2f}s p95 {pct(lv.all_lat, 95):.2f}s, RSS {lv.rss / 2**20:.0f} MiB", flush=True)
                levels.append(lv)
            if run("jobs"):
                ingest = ingest_while_searching(server, key, variants(photos, args.ingest_images, seed=2))
                print(f"ingest while searching: {ingest}", flush=True)
                resume = kill_and_resume(server, key, variants(photos, args.resume_images, seed=3))
                print(f"kill and resume: {resume}", flush=True)
        finally:
            server.stop()
        if run("priority"):
            prio = priority_runs(home, key, Path(tmp), args, photos)
        md = report(levels, ingest, resume, prio, startup, idle_rss, args)
    print()
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
    ok = (all(lv.errors == 0 for lv in levels) and (ingest is None or ingest["search_errors"] == 0)
          and (resume is None or resume["ok"]) and all(r.errors == 0 for r in prio))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

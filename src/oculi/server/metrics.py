"""Prometheus-style metrics in the text exposition format, without a client library.

Labels are the route *template* (``/api/v1/collections/{name}/search``), never the raw path,
so a client cannot blow up the series count and no collection name appears in the output.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from typing import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def process_rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.hist_sum: dict[str, float] = defaultdict(float)
        self.model_calls: dict[str, int] = defaultdict(int)
        self.model_seconds: dict[str, float] = defaultdict(float)
        self.inflight = 0
        self.gauges: dict[str, Callable[[], float]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            h = self.hist[route]
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
                    break
            else:
                h[-1] += 1
            self.hist_sum[route] += seconds

    def observe_model(self, task: str, seconds: float) -> None:
        with self._lock:
            self.model_calls[task] += 1
            self.model_seconds[task] += seconds

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out.append("# HELP oculi_http_requests_total HTTP requests by method, route and status.")
            out.append("# TYPE oculi_http_requests_total counter")
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f'oculi_http_requests_total{{method="{m}",route="{_esc(r)}",status="{s}"}} {n}')
            out.append("# HELP oculi_http_request_duration_seconds Request latency by route.")
            out.append("# TYPE oculi_http_request_duration_seconds histogram")
            for r, h in sorted(self.hist.items()):
                acc = 0
                for b, n in zip(BUCKETS, h):
                    acc += n
                    out.append(f'oculi_http_request_duration_seconds_bucket{{route="{_esc(r)}",le="{b}"}} {acc}')
                acc += h[-1]
                out.append(f'oculi_http_request_duration_seconds_bucket{{route="{_esc(r)}",le="+Inf"}} {acc}')
                out.append(f'oculi_http_request_duration_seconds_sum{{route="{_esc(r)}"}} {self.hist_sum[r]:.6f}')
                out.append(f'oculi_http_request_duration_seconds_count{{route="{_esc(r)}"}} {acc}')
            out.append("# HELP oculi_model_calls_total Model calls by task.")
            out.append("# TYPE oculi_model_calls_total counter")
            for t, n in sorted(self.model_calls.items()):
                out.append(f'oculi_model_calls_total{{task="{t}"}} {n}')
            out.append("# HELP oculi_model_seconds_total Seconds spent in model calls by task.")
            out.append("# TYPE oculi_model_seconds_total counter")
            for t, s in sorted(self.model_seconds.items()):
                out.append(f'oculi_model_seconds_total{{task="{t}"}} {s:.6f}')
            out.append("# TYPE oculi_http_requests_in_flight gauge")
            out.append(f"oculi_http_requests_in_flight {self.inflight}")
            gauges = dict(self.gauges)
        out.append("# TYPE process_resident_memory_bytes gauge")
        out.append(f"process_resident_memory_bytes {process_rss_bytes()}")
        out.append("# TYPE process_start_time_seconds gauge")
        out.append(f"process_start_time_seconds {self.started:.3f}")
        for name, fn in sorted(gauges.items()):
            try:
                v = float(fn())
            except Exception:
                continue
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name} {v}")
        return "\n".join(out) + "\n"


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

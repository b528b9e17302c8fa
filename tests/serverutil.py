"""Run an oculi FastAPI app under uvicorn on 127.0.0.1 in a background thread (tests only)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """``with ServerThread(app) as base_url: ...`` — a real HTTP server on a free loopback port."""

    def __init__(self, app: Any, *, ready_path: str = "/healthz", timeout: float = 60.0) -> None:
        import uvicorn

        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)
        self.ready_path = ready_path
        self.timeout = timeout

    def __enter__(self) -> str:
        self.thread.start()
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.timeout:
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=2).status_code == 200:
                    return self.base_url
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"server did not answer {self.ready_path} in {self.timeout} s")

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)

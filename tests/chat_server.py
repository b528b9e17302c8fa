"""A tiny OpenAI-compatible chat endpoint on loopback (tests only): a real HTTP server that an
``openai`` backend in ``oculi.toml`` talks to, playing a chat model whose replies the test
scripts. Shared by the narrator tests (reports, server report jobs) and the tool-calling one.

Example:
    >>> with ChatServer(lambda body: "A cat.") as srv:  # doctest: +SKIP
    ...     toml = openai_model_toml("story", srv.url, "storyteller")
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

# reply(request body) -> the assistant's text
Reply = Callable[[dict[str, Any]], str]


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


class ChatServer:
    """``with ChatServer(reply) as srv:`` — ``POST {srv.url}/chat/completions`` answers
    ``reply(body)`` as a chat completion; ``srv.bodies`` holds every request body received."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                                   "choices": [{"index": 0, "message": {"role": "assistant", "content": outer.reply(body)},
                                                "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._srv.server_address[1]}/v1"

    def __enter__(self) -> "ChatServer":
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._srv.shutdown()
        self._srv.server_close()


def openai_model_toml(name: str, url: str, model: str) -> str:
    """An ``oculi.toml`` table configuring the chat model ``name`` served at ``url``."""
    return f'[models.{name}]\nbackend = "openai"\nbase_url = "{url}"\nmodel = "{model}"\n'


def engine_with_models(engine: Any, home: Path, toml: str) -> Any:
    """An ``Engine`` on ``home`` whose ``oculi.toml`` is ``toml``, sharing the built-in models
    ``engine`` has already loaded (the configured ones are created on first use)."""
    from oculi.engine import Engine

    home.mkdir(parents=True, exist_ok=True)
    (home / "oculi.toml").write_text(toml)
    eng = Engine(engine.settings.model_copy(update={"home": home}))
    eng._backends = dict(engine._backends)  # the built-in models already loaded; the configured ones are added to the copy
    return eng

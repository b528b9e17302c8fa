"""Footage questions through a configured chat model: ``oculi.toml`` names an ``openai`` model
(a real HTTP server on loopback that plays a tool-calling model), ``Library.ask_footage`` and
``oculi ask-footage`` hand it the query functions as tools, and the answer's evidence is what the
tools returned from the stored records."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from oculi.config import Settings
from oculi.engine import Engine
from oculi.library import Library
from oculi.store.lance import LanceStore
from tests.footage_records import T, fill_collection

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)


class _ToolCaller(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint: asks for the cars after 17:00, then answers with the
    number of tracks the tool returned (it can only know that number from the tool result)."""

    bodies: list[dict] = []

    def log_message(self, *a: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        last = body["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
        if text.startswith("Result: "):
            n = len(json.loads(text[len("Result: "):]))
            reply = json.dumps({"answer": f"{n} car(s) came in after 5 pm."})
        else:
            reply = json.dumps({"tool": "find_tracks", "arguments": {"labels": ["car"], "after": T(17), "arrived_within": True}})
        data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"],
                           "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def tool_server():
    _ToolCaller.bodies = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ToolCaller)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _home(tmp_path: Path, url: str | None) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    if url is not None:
        (home / "oculi.toml").write_text(
            f'[models.footage-llm]\nbackend = "openai"\nbase_url = "{url}"\nmodel = "tool-caller"\n\n[tasks]\nchat = "footage-llm"\n')
    settings = Settings(home=home)
    fill_collection(LanceStore(settings.collections_dir).create_collection("footage"))
    return settings


def test_a_configured_chat_model_answers_by_calling_the_query_functions(tmp_path: Path, tool_server: str) -> None:
    lib = Library(Engine(_home(tmp_path, tool_server)))
    a = lib.ask_footage("footage", "How many cars came in after 5 pm?", now=NOW, tz=UTC)
    assert a.method == "model" and a.answer == "1 car(s) came in after 5 pm."
    # the evidence is the tracks the tool found in the store, not anything the model wrote
    assert [(e.track_id, e.label) for e in a.evidence] == [(4, "car")]
    first = _ToolCaller.bodies[0]
    assert first["model"] == "tool-caller" and first["temperature"] == 0.0
    assert "find_events" in first["messages"][0]["content"]  # the tools were described to it
    # the same collection by the rules: same facts, another method
    r = lib.ask_footage("footage", "How many cars came in after 5 pm?", now=NOW, tz=UTC, use_model=False)
    assert r.method == "rules" and r.value == 1


def test_without_a_chat_model_the_rules_answer(tmp_path: Path) -> None:
    lib = Library(Engine(_home(tmp_path, None)))
    a = lib.ask_footage("footage", "How many cars came in after 5 pm?", now=NOW, tz=UTC)
    assert a.method == "rules" and a.value == 1


def test_a_chat_model_that_is_down_falls_back_to_the_rules(tmp_path: Path) -> None:
    lib = Library(Engine(_home(tmp_path, "http://127.0.0.1:9/v1")))  # nothing listens on port 9
    a = lib.ask_footage("footage", "How many cars came in after 5 pm?", now=NOW, tz=UTC)
    assert a.method == "rules" and a.value == 1

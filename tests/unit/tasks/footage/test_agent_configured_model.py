"""Footage questions through a configured chat model: ``oculi.toml`` names an ``openai`` model
(a real HTTP server on loopback that plays a tool-calling model), ``Library.ask_footage`` and
``oculi ask-footage`` hand it the query functions as tools, and the answer's evidence is what the
tools returned from the stored records."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from oculi.config import Settings
from oculi.engine import Engine
from oculi.library import Library
from oculi.store.lance import LanceStore
from tests.chat_server import ChatServer, message_text, openai_model_toml
from tests.footage_records import T, fill_collection

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)


def call_a_tool(body: dict) -> str:
    """A tool-calling model: asks for the cars after 17:00, then answers with the number of
    tracks the tool returned (it can only know that number from the tool result)."""
    text = message_text(body["messages"][-1])
    if text.startswith("Result: "):
        n = len(json.loads(text[len("Result: "):]))
        return json.dumps({"answer": f"{n} car(s) came in after 5 pm."})
    return json.dumps({"tool": "find_tracks", "arguments": {"labels": ["car"], "after": T(17), "arrived_within": True}})


@pytest.fixture()
def tool_server():
    with ChatServer(call_a_tool) as srv:
        yield srv


def _home(tmp_path: Path, url: str | None) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    if url is not None:
        (home / "oculi.toml").write_text(
            openai_model_toml("footage-llm", url, "tool-caller") + '\n[tasks]\nchat = "footage-llm"\n')
    settings = Settings(home=home)
    fill_collection(LanceStore(settings.collections_dir).create_collection("footage"))
    return settings


def test_a_configured_chat_model_answers_by_calling_the_query_functions(tmp_path: Path, tool_server) -> None:
    lib = Library(Engine(_home(tmp_path, tool_server.url)))
    a = lib.ask_footage("footage", "How many cars came in after 5 pm?", now=NOW, tz=UTC)
    assert a.method == "model" and a.answer == "1 car(s) came in after 5 pm."
    # the evidence is the tracks the tool found in the store, not anything the model wrote
    assert [(e.track_id, e.label) for e in a.evidence] == [(4, "car")]
    first = tool_server.bodies[0]
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

"""A chat model answering footage questions by calling the query functions as tools.

The model sees the question, the cameras, zones and footage coverage, and the ``TOOLS`` of
``oculi.tasks.footage.query`` (names, descriptions, JSON-schema parameters). Each turn it replies
with one JSON object: ``{"tool": NAME, "arguments": {...}}`` to call a query function (the result
comes back as JSON), or ``{"answer": TEXT}`` when done. The loop runs the very functions the
rules-based path uses, so a model reaches the same facts; the answer's evidence is what the tool
calls returned (events and tracks), never something the model wrote. A model that replies with
no usable JSON, calls an unknown tool too often, or takes more than ``max_steps`` turns falls
back to the rules.

Any object with ``chat(messages) -> str`` (messages are ``{"role", "content"}`` dicts) can drive
it; a configured model backend is adapted to that.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, tzinfo
from typing import Any, Protocol

from oculi.core.errors import InputError
from oculi.store.records import iso_time
from oculi.tasks.footage import query as fq
from oculi.tasks.footage.ask import FootageAnswer, FootageEvidence, ask_footage
from oculi.tasks.footage.parse import parse_question

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 6000  # a tool result is cut to this much text before it goes back to the model


class ToolChat(Protocol):
    """A chat model: the conversation so far in, its next message out."""

    def chat(self, messages: list[dict[str, str]]) -> str: ...


def _system(coll: Any, now: datetime, tz: tzinfo) -> str:
    covs = "; ".join(f"{c.camera}: " + ", ".join(f"{iso_time(s, tz)} to {iso_time(e, tz)}" for s, e in c.intervals)
                     for c in fq.footage_coverage(coll)) or "none"
    tools = json.dumps([{k: t[k] for k in ("name", "description", "parameters")} for t in fq.TOOLS], ensure_ascii=False)
    return (
        "You answer questions about camera footage using only the results of these tools, which read the "
        "tracked objects and events recorded from the footage. Times in tool arguments and results are epoch "
        f"seconds. Now is {iso_time(now.timestamp(), tz)} (epoch {now.timestamp():.0f}); the time zone is {tz}.\n"
        f"Cameras: {', '.join(fq.list_cameras(coll)) or 'none'}. Zones: {', '.join(fq.list_zones(coll)) or 'none'}.\n"
        f"Footage covers: {covs}.\nTools: {tools}\n"
        'Reply with exactly one JSON object and nothing else: {"tool": "<name>", "arguments": {...}} to call a tool, '
        'or {"answer": "<your answer>"} when you can answer. If no footage covers the time asked about, say so '
        "instead of answering no. State only what the tool results show, citing times and track ids."
    )


def _json_object(text: str) -> dict[str, Any] | None:
    m = re.search(r"\{.*\}", text or "", re.S)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def ask_with_tools(coll: Any, question: str, model: ToolChat, *, now: datetime, tz: tzinfo,
                   max_steps: int = 8) -> FootageAnswer:
    """Answer with a tool-calling chat model (see the module docstring); rules as the fallback.

    Raises:
        InputError: an empty or over-long question (as the rules path).
    """
    query = parse_question(question, now=now, tz=tz, cameras=fq.list_cameras(coll), zones=fq.list_zones(coll))
    messages = [{"role": "system", "content": _system(coll, now, tz)}, {"role": "user", "content": question}]
    evidence: dict[tuple[str, Any], FootageEvidence] = {}
    bad = 0
    for _ in range(max_steps):
        try:
            reply = model.chat(messages)
        except Exception as e:  # noqa: BLE001 - a model failure falls back to the rules
            log.warning("footage model failed (%s); answering by rules", e)
            break
        obj = _json_object(reply)
        messages.append({"role": "assistant", "content": reply})
        if obj is not None and isinstance(obj.get("answer"), str) and obj["answer"].strip():
            ev = tuple(evidence.values())
            return FootageAnswer(question, obj["answer"].strip(), "model", None, query, ev[:50], len(ev),
                                 tuple(fq.footage_coverage(coll)), method="model")
        if obj is None or not isinstance(obj.get("tool"), str):
            bad += 1
            if bad >= 3:
                break
            messages.append({"role": "user", "content": 'Reply with one JSON object: {"tool": ..., "arguments": {...}} or {"answer": ...}.'})
            continue
        try:
            result = fq.call_tool(coll, obj["tool"], obj.get("arguments") or {})
        except InputError as e:
            bad += 1
            if bad >= 3:
                break
            messages.append({"role": "user", "content": f"Tool error: {e}"})
            continue
        if obj["tool"] in ("find_events", "find_tracks") and isinstance(result, list):
            for d in result:  # what the tools returned is the answer's evidence
                key = (obj["tool"], d.get("id") or (d.get("source_id"), d.get("track_id")))
                evidence[key] = FootageEvidence(d.get("type", "track"), d["camera"], d["start_ts"], d["end_ts"],
                                                d.get("track_id"), d.get("label"), d.get("zone"), d.get("thumbnail"),
                                                d.get("seconds"), d.get("colour"), bool(d.get("ongoing")))
        messages.append({"role": "user", "content": "Result: " + json.dumps(result, ensure_ascii=False)[:MAX_RESULT_CHARS]})
    return ask_footage(coll, question, now=now, tz=tz)


class BackendToolChat:
    """A configured model backend that serves ``chat`` (``oculi.backends.base``), as a ``ToolChat``:
    text turns in, its reply's text out, at temperature 0 so the same question takes the same path."""

    def __init__(self, backend: Any, *, max_tokens: int = 512) -> None:
        self.backend = backend
        self.max_tokens = max_tokens

    def chat(self, messages: list[dict[str, str]]) -> str:
        from oculi.backends.base import ChatMessage, ChatOptions, ChatPart

        turns = [ChatMessage(m["role"], [ChatPart("text", text=m["content"])]) for m in messages]  # type: ignore[arg-type]
        return self.backend.chat(turns, ChatOptions(max_tokens=self.max_tokens, temperature=0.0)).text


"""The tool loop a chat model drives: real query functions over hand-made records; the model is a
scripted stand-in (what is tested is the loop: tools run, results go back, evidence is what the
tools returned, bad replies fall back to the rules)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from oculi.tasks.footage.agent import ask_with_tools
from tests.footage_records import T

UTC = timezone.utc
NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)


class Scripted:
    """Calls find_tracks for cars after 17:00, then answers with the count it was given back."""

    def __init__(self) -> None:
        self.seen: list[list[dict]] = []

    def chat(self, messages):
        self.seen.append(list(messages))
        last = messages[-1]["content"]
        if last.startswith("Result: "):
            n = len(json.loads(last[len("Result: "):]))
            return json.dumps({"answer": f"{n} car(s) came after 5 pm."})
        if last.startswith("Tool error"):
            return '{"tool": "find_tracks", "arguments": {"labels": ["car"], "after": %f, "arrived_within": true}}' % T(17)
        return 'Sure! {"tool": "find_tracks", "arguments": {"labels": ["car"], "after": %f, "arrived_within": true, "oops": 1}}' % T(17)


def test_the_model_answers_through_the_same_query_functions(coll) -> None:
    m = Scripted()
    a = ask_with_tools(coll, "How many cars came in after 5 pm?", m, now=NOW, tz=UTC)
    assert a.method == "model" and a.answer == "1 car(s) came after 5 pm."
    assert [e.track_id for e in a.evidence] == [4] and a.evidence[0].label == "car" and a.evidence[0].thumbnail == "4" * 32
    system = m.seen[0][0]["content"]
    assert "find_events" in system and "main gate" in system and "2026-11-27T16:59:40" in system
    assert any(msg["content"].startswith("Tool error") and "unknown arguments" in msg["content"] for msg in m.seen[-1])
    assert a.to_dict()["method"] == "model"


class Babbler:
    def chat(self, messages):
        return "I think there were probably three cars, maybe."


class Broken:
    def chat(self, messages):
        raise ConnectionError("model server down")


@pytest.mark.parametrize("model", [Babbler(), Broken()])
def test_a_model_without_usable_replies_falls_back_to_the_rules(coll, model) -> None:
    a = ask_with_tools(coll, "How many cars came in after 5 pm?", model, now=NOW, tz=UTC)
    assert a.method == "rules" and a.value == 1 and re.match(r"1 car came", a.answer)

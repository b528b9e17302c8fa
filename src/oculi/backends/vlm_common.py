"""What the VLM backends (``transformers``, ``openai``) share: prompts, ``Answer`` building, chat helpers.

A user-brought vision-language model writes free text; these helpers turn oculi's two fixed
tasks (caption, ask) into chat messages and its reply back into oculi's result types, so every
VLM backend words its prompts the same way and a comparison between models is fair.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any, Sequence

from PIL import Image

from oculi.core.errors import InputError
from oculi.core.types import Answer, AnswerKind

CAPTION_PROMPT = "Describe this image in one sentence."
DETAILED_PROMPT = "Describe this image in a short paragraph: the objects, their colours, any text, and the setting."
JSON_INSTRUCTION = "Reply with a JSON object and nothing else."


def caption_prompt(detailed: bool) -> str:
    return DETAILED_PROMPT if detailed else CAPTION_PROMPT


def answer_of(question: str, text: str, confidence: float | None = None) -> Answer:
    """An ``Answer`` from a VLM's reply. A VLM gives no grounded evidence: ``evidence`` is empty,
    ``kind`` is ``unknown``, ``confidence`` is the model's own (mean token probability) or 0 when
    the backend has none."""
    text = text.strip()
    return Answer(question=question, answer=text, confidence=float(confidence or 0.0), kind=AnswerKind.UNKNOWN,
                  evidence=(), answerable=bool(text))


def image_data_url(image: Image.Image, fmt: str = "PNG") -> str:
    """A ``data:`` URL of an image (PNG: lossless; JPEG for large photos)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format=fmt)
    mime = "image/png" if fmt.upper() == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def check_json_reply(text: str, response_format: dict[str, Any] | None) -> Any:
    """Parse a reply that ``response_format`` asked to be JSON; raise ``InputError`` when it is not
    (or does not match the ``json_schema``). Returns the parsed value (``None`` when not asked)."""
    if not response_format or response_format.get("type") == "text":
        return None
    try:
        value = json.loads(strip_fence(text))
    except ValueError as e:
        raise InputError(f"the model's reply is not valid JSON ({e}); the reply was: {text[:200]!r}") from None
    if response_format.get("type") == "json_object" and not isinstance(value, dict):
        raise InputError(f"the model's reply is JSON but not an object: {text[:200]!r}")
    schema = (response_format.get("json_schema") or {}).get("schema")
    if response_format.get("type") == "json_schema" and schema:
        import jsonschema

        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as e:
            raise InputError(f"the model's reply does not match the json_schema: {e.message}") from None
    return value


def strip_fence(text: str) -> str:
    """A reply without a Markdown code fence around it (models often add one to JSON)."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t.strip()


def cut_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = len(text)
    for s in stop or ():
        i = text.find(s)
        if s and 0 <= i < cut:
            cut = i
    return text[:cut], cut < len(text)

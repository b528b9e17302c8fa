"""An OpenAI-compatible face: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

The official ``openai`` client works against it unchanged (``base_url="http://host:port/v1"``,
``api_key=<an oculi key>``).

Models:

* ``oculi-builtin`` — chat. The *last user message* that carries text decides the task, and the
  most recent image in the conversation (an ``image_url`` content part) is what it is about:
  no text, or a request to describe/caption → a grounded caption (``detailed`` when the text
  asks for detail); anything else → an answer to the question. ``stream: true`` sends the
  answer as ``chat.completion.chunk`` server-sent events ending with ``data: [DONE]``.
* ``oculi-text-embed`` — embeddings of text (sentence encoder, 384-d).
* ``oculi-image-embed`` — embeddings of images; each input is a ``data:`` URL (or an http(s)
  URL when the server allows remote images). The image and text spaces are different.

Images arrive as ``data:`` URLs; http(s) URLs are refused unless the server was started with
remote images on (see ``oculi.server.fetch`` for the SSRF rules).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any, AsyncIterator, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from oculi.server.auth import Principal, Scope
from oculi.server.fetch import image_bytes_from_url
from oculi.server.limits import HTTPProblem, check_image
from oculi.server.state import ERROR_RESPONSES, ErrorBody, GuardedRoute, get_state, require, run_model

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

CHAT_MODEL = "oculi-builtin"
TEXT_EMBED_MODEL = "oculi-text-embed"
IMAGE_EMBED_MODEL = "oculi-image-embed"
MODELS = {
    CHAT_MODEL: "chat: grounded captions and answers about an image",
    TEXT_EMBED_MODEL: "embeddings of text",
    IMAGE_EMBED_MODEL: "embeddings of images (data: URLs)",
}
CHAT_ALIASES = {CHAT_MODEL, "oculi"}
MAX_MESSAGES = 64
MAX_TEXT_INPUTS = 256
MAX_IMAGE_INPUTS = 16
MAX_INPUT_CHARS = 8192

_DESCRIBE_RE = re.compile(
    r"^\W*(please\s+)?(describe|caption|summari[sz]e|narrate)\b"
    r"|\bwhat('?s| is)\s+(in|on|shown in|happening in)\s+(this|the)\s+(image|picture|photo|pic)\b"
    r"|\bwhat do you see\b"
    r"|\b(give|write)\s+(me\s+)?a\s+(caption|description)\b",
    re.I,
)
_DETAIL_RE = re.compile(r"\b(detail|detailed|in depth|paragraph|thorough)\b", re.I)


# --- request models ------------------------------------------------------------------------------
class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = CHAT_MODEL
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    n: int | None = 1
    user: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


# --- helpers ---------------------------------------------------------------------------------------
def _parts(msg: ChatMessage) -> tuple[str, list[str]]:
    """A message's text (parts joined) and its image URLs."""
    if msg.content is None:
        return "", []
    if isinstance(msg.content, str):
        return msg.content, []
    texts, urls = [], []
    for p in msg.content:
        if p.type in ("text", "input_text") and p.text:
            texts.append(p.text)
        elif p.type in ("image_url", "input_image"):
            iu = p.image_url
            url = iu if isinstance(iu, str) else (iu.url if iu is not None else "")
            if not url:
                raise HTTPProblem(400, "an image_url content part has no url", param="messages")
            urls.append(url)
        elif p.type not in ("text", "input_text"):
            raise HTTPProblem(400, f"content part type {p.type!r} is not supported (use text and image_url)", param="messages")
    return "\n".join(texts), urls


def plan_chat(messages: list[ChatMessage]) -> tuple[str, str, bool, str]:
    """``(task, text, detailed, image_url)`` for a conversation; 400 when it has no image."""
    text = ""
    image = ""
    for msg in reversed(messages):
        if msg.role != "user":
            continue
        t, urls = _parts(msg)
        if not text and t.strip():
            text = t.strip()
        if urls:
            image = urls[-1]
            break
    if not image:
        raise HTTPProblem(400, "the conversation has no image: add an image_url content part with a data: URL", param="messages")
    if not text or _DESCRIBE_RE.search(text):
        return "caption", text, bool(_DETAIL_RE.search(text)), image
    return "ask", text, False, image


def _tokens(s: str) -> int:
    return max(1, len(s.split())) if s else 0


def _chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    doc = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "oculi",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(doc, ensure_ascii=False)}\n\n"


async def _image_bytes(st: Any, url: str, param: str) -> bytes:
    """Checked image bytes of an image URL; errors name ``param`` (the request field)."""
    max_bytes = st.settings.max_image_bytes
    try:
        data = await image_bytes_from_url(url, st.config, max_bytes=max_bytes)
        check_image(data, max_bytes=max_bytes, max_pixels=st.settings.max_image_pixels)
    except HTTPProblem as e:
        e.param = e.param or param
        raise
    return data


# --- routes ----------------------------------------------------------------------------------------
@router.get("/models", summary="List models (OpenAI-compatible)")
async def list_models(_: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    return {"object": "list", "data": [_model(m) for m in MODELS]}


def _model(m: str) -> dict[str, Any]:
    return {"id": m, "object": "model", "created": 1735689600, "owned_by": "oculi", "description": MODELS[m]}


@router.get("/models/{model_id}", summary="One model (OpenAI-compatible)")
async def get_model(model_id: str, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    if model_id not in MODELS:
        raise HTTPProblem(404, f"model {model_id!r} does not exist; models: {', '.join(MODELS)}", "invalid_request_error", code="model_not_found")
    return _model(model_id)


_REMOTE = {504: {"model": ErrorBody, "description": "a remote image URL took longer than the server's limit"}}


@router.post("/chat/completions", summary="Chat about an image (OpenAI-compatible)", response_model=None, responses=_REMOTE)
async def chat_completions(body: ChatCompletionRequest, request: Request, _: Principal = Depends(require(Scope.READ))) -> Any:
    st = get_state(request)
    if body.model not in CHAT_ALIASES:
        raise HTTPProblem(404, f"model {body.model!r} does not exist; use {CHAT_MODEL!r}", code="model_not_found", param="model")
    if body.n not in (None, 1):
        raise HTTPProblem(400, "only n=1 is supported", param="n")
    task, text, detailed, url = plan_chat(body.messages)
    data = await _image_bytes(st, url, "messages")
    if task == "caption":
        res = await run_model(st, "caption", st.engine.caption, data, detailed=detailed)
        content = res.caption
        extra = res.to_dict()
    else:
        res = await run_model(st, "ask", st.engine.ask, data, text)
        content = res.answer
        extra = res.to_dict()
    cid = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    model = CHAT_MODEL
    prompt_tokens = _tokens(text) + 85  # an image counts as a fixed 85, as OpenAI's low detail does
    completion_tokens = _tokens(content)

    if body.stream:
        async def events() -> AsyncIterator[str]:
            yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
            words = re.findall(r"\S+\s*", content) or [content]
            for w in words:
                yield _chunk(cid, created, model, {"content": w})
            yield _chunk(cid, created, model, {}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "oculi",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "refusal": None}, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        "oculi": {"task": task, "result": extra},
    }


@router.post("/embeddings", summary="Embed text or images (OpenAI-compatible)", responses=_REMOTE)
async def embeddings(body: EmbeddingRequest, request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    inputs = body.input
    if isinstance(inputs, str):
        inputs = [inputs]
    if not inputs:
        raise HTTPProblem(400, "input is empty", param="input")
    if not all(isinstance(x, str) for x in inputs):
        raise HTTPProblem(400, "token-id input is not supported; send strings", param="input")
    if body.model == TEXT_EMBED_MODEL:
        if len(inputs) > MAX_TEXT_INPUTS:
            raise HTTPProblem(400, f"at most {MAX_TEXT_INPUTS} inputs per request", param="input")
        if any(len(x) > MAX_INPUT_CHARS for x in inputs):
            raise HTTPProblem(400, f"each input is at most {MAX_INPUT_CHARS} characters", param="input")
        if any(not x.strip() for x in inputs):
            raise HTTPProblem(400, "an input is empty", param="input")
        vecs = await run_model(st, "embed_text", st.engine.embed_texts, list(inputs))
        usage = sum(_tokens(x) for x in inputs)
    elif body.model == IMAGE_EMBED_MODEL:
        if len(inputs) > MAX_IMAGE_INPUTS:
            raise HTTPProblem(400, f"at most {MAX_IMAGE_INPUTS} images per request", param="input")
        images = [await _image_bytes(st, u, "input") for u in inputs]
        vecs = await run_model(st, "embed_image", st.engine.embed_images, images)
        usage = 85 * len(images)
    else:
        raise HTTPProblem(
            404, f"model {body.model!r} does not exist; use {TEXT_EMBED_MODEL!r} or {IMAGE_EMBED_MODEL!r}", code="model_not_found", param="model"
        )
    arr = np.asarray(vecs, dtype=np.float32)
    if body.dimensions is not None and body.dimensions != arr.shape[1]:
        raise HTTPProblem(400, f"{body.model} has {arr.shape[1]} dimensions; other sizes are not supported", param="dimensions")
    data = []
    for i, v in enumerate(arr):
        emb: Any = base64.b64encode(v.astype("<f4").tobytes()).decode() if body.encoding_format == "base64" else [float(x) for x in v]
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": body.model, "usage": {"prompt_tokens": usage, "total_tokens": usage}}

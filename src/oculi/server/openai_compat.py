"""An OpenAI-compatible face: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/images/generations``,
``/v1/images/edits``, ``/v1/models``.

The official ``openai`` client works against it unchanged (``base_url="http://host:port/v1"``,
``api_key=<an oculi key>``).

Models:

* ``oculi-builtin`` — chat with the built-in grounded model. The *last user message* decides
  the task and **every image of it** is answered (a follow-up without an image uses the images
  of the latest user message that has some): no text, or a request to describe/caption → a
  grounded caption per image (``detailed`` when the text asks for detail); anything else → an
  answer per image. The built-in model answers each image on its own, so what it cannot use (a
  system message, the earlier turns, ``temperature``) is said at the end of the reply.
* ``oculi`` — the configured chat model (``[tasks] chat``, ``serve --model``), else the built-in.
  A configured model that serves ``chat`` (``openai``, ``transformers`` types) gets the **whole
  conversation with every image**, and is also listed and callable under its own name.
* ``oculi-text-embed`` / ``oculi-image-embed`` — embeddings of text / of images (``data:`` URLs).
* image generation — ``POST /v1/images/generations`` with the configured generator
  (``[tasks] generate``, a ``diffusers`` model); ``b64_json`` PNGs. Without one: 400
  ``no_generator`` naming the configuration that fixes it. ``POST /v1/images/edits`` (multipart:
  ``image``, ``prompt``, optional ``mask``) changes an image with the same generator's
  image-to-image form (inpainting inside a mask).

Chat parameters are honoured or refused with an OpenAI-shaped error carrying ``param`` and
``code``, never silently ignored: ``max_tokens``/``max_completion_tokens`` (words, for the built-in
model), ``stop``, ``response_format`` (``json_object``/``json_schema``: the reply is valid JSON
or the request fails with 400 ``json_validate_failed``), ``stream`` with
``stream_options.include_usage``, ``temperature`` (0–2; the built-in model is deterministic and
says so), ``n`` (1 only), ``tools`` and ``logprobs`` (refused).

Images arrive as ``data:`` URLs; http(s) URLs are refused unless the server was started with
remote images on (see ``oculi.server.fetch`` for the SSRF rules).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from oculi.core.errors import InputError, OculiError
from oculi.server.auth import Principal, Scope
from oculi.server.fetch import image_bytes_from_url
from oculi.server.limits import HTTPProblem, check_image
from oculi.server.state import ERROR_RESPONSES, ErrorBody, GuardedRoute, get_state, require, run_blocking, run_model

router = APIRouter(prefix="/v1", tags=["openai"], route_class=GuardedRoute, responses=ERROR_RESPONSES)

CHAT_MODEL = "oculi-builtin"
CONFIGURED_CHAT = "oculi"
TEXT_EMBED_MODEL = "oculi-text-embed"
IMAGE_EMBED_MODEL = "oculi-image-embed"
MODELS = {
    CHAT_MODEL: "chat: grounded captions and answers about an image",
    TEXT_EMBED_MODEL: "embeddings of text",
    IMAGE_EMBED_MODEL: "embeddings of images (data: URLs)",
}
CHAT_ALIASES = {CHAT_MODEL, CONFIGURED_CHAT}
MAX_MESSAGES = 64
MAX_CHAT_IMAGES = 16
MAX_STOP = 4
MAX_TEXT_INPUTS = 256
MAX_IMAGE_INPUTS = 16
MAX_INPUT_CHARS = 8192
MAX_PROMPT_CHARS = 4000
MAX_GENERATED = 4

_DESCRIBE_RE = re.compile(
    r"^\W*(please\s+)?(describe|caption|summari[sz]e|narrate)\b"
    r"|\bwhat('?s| is)\s+(in|on|shown in|happening in)\s+(this|the|these)\s+(images?|pictures?|photos?|pics?)\b"
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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str = CHAT_MODEL
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    n: int | None = 1
    tools: list[Any] | None = None
    logprobs: bool | None = None
    user: str | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class ImageGenerationRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = None
    n: int = Field(1, ge=1, le=MAX_GENERATED)
    size: str | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    seed: int | None = Field(None, ge=0, description="oculi: the same seed and options make the same image")
    steps: int | None = Field(None, ge=1, le=500, description="oculi: denoising steps (default: the model's)")
    user: str | None = None


# --- helpers ---------------------------------------------------------------------------------------
def _bad(message: str, param: str, code: str = "invalid_value", status: int = 400) -> HTTPProblem:
    return HTTPProblem(status, message, param=param, code=code)


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


@dataclass
class BuiltinPlan:
    """What the built-in model does with a conversation: one task over the images of one message."""

    task: str
    text: str
    detailed: bool
    urls: list[str]
    not_used: list[str] = field(default_factory=list)


def plan_builtin(messages: list[ChatMessage]) -> BuiltinPlan:
    """The task, question and images for the built-in model, and what of the conversation it does
    not use; 400 when the conversation has no image."""
    text, urls, source = "", [], -1
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg.role != "user":
            continue
        t, u = _parts(msg)
        if not text and t.strip():
            text = t.strip()
        if u:
            urls, source = u, i
            break
    if not urls:
        raise HTTPProblem(400, "the conversation has no image: add an image_url content part with a data: URL", param="messages")
    last_user = max(i for i, m in enumerate(messages) if m.role == "user")
    not_used = []
    if any(m.role in ("system", "developer") and _parts(m)[0].strip() for m in messages):
        not_used.append("the system message")
    used = {source, last_user}
    if any(i not in used and m.role in ("user", "assistant") and (m.content or "") for i, m in enumerate(messages)):
        not_used.append("the earlier turns")
    if not text or _DESCRIBE_RE.search(text):
        return BuiltinPlan("caption", text, bool(_DETAIL_RE.search(text)), urls, not_used)
    return BuiltinPlan("ask", text, False, urls, not_used)


def plan_chat(messages: list[ChatMessage]) -> tuple[str, str, bool, str]:
    """``(task, text, detailed, last image URL)`` of ``plan_builtin`` (kept for callers of 0.1)."""
    p = plan_builtin(messages)
    return p.task, p.text, p.detailed, p.urls[-1]


def _tokens(s: str) -> int:
    return max(1, len(s.split())) if s else 0


@dataclass
class ChatParams:
    max_tokens: int | None
    stop: list[str] | None
    temperature: float | None
    response_format: dict[str, Any] | None
    include_usage: bool

    @property
    def wants_json(self) -> bool:
        return bool(self.response_format) and self.response_format.get("type") in ("json_object", "json_schema")


def chat_params(body: ChatCompletionRequest) -> ChatParams:
    """The request's generation parameters, checked; an OpenAI-shaped 400 (``param``, ``code``) for
    one that is out of range or not supported."""
    if body.n not in (None, 1):
        raise _bad("only n=1 is supported", "n", "unsupported_value")
    if body.tools:
        raise _bad("tools (function calling) are not supported by oculi's chat models", "tools", "unsupported_parameter")
    if body.logprobs:
        raise _bad("logprobs are not supported", "logprobs", "unsupported_parameter")
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    for name, v in (("max_completion_tokens", body.max_completion_tokens), ("max_tokens", body.max_tokens)):
        if v is not None and v < 1:
            raise _bad(f"{name} must be at least 1; got {v}", name)
    if body.temperature is not None and not 0.0 <= body.temperature <= 2.0:
        raise _bad(f"temperature must be between 0 and 2; got {body.temperature}", "temperature")
    if body.top_p is not None and not 0.0 < body.top_p <= 1.0:
        raise _bad(f"top_p must be in (0, 1]; got {body.top_p}", "top_p")
    if body.top_p is not None and body.top_p < 1.0:
        raise _bad("top_p other than 1 is not supported; use temperature", "top_p", "unsupported_value")
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    if stop is not None:
        if len(stop) > MAX_STOP or any(not s for s in stop):
            raise _bad(f"stop is up to {MAX_STOP} non-empty strings", "stop")
        stop = stop or None
    rf = body.response_format
    if rf is not None:
        kind = rf.get("type")
        if kind not in ("text", "json_object", "json_schema"):
            raise _bad(f"response_format.type must be text, json_object or json_schema; got {kind!r}", "response_format")
        if kind == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                raise _bad("response_format json_schema needs json_schema.schema (a JSON Schema object)", "response_format")
            import jsonschema

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as e:
                raise _bad(f"response_format json_schema.schema is not a valid JSON Schema: {e.message}", "response_format") from None
    if body.stream_options is not None and not body.stream:
        raise _bad("stream_options is only allowed when stream is true", "stream_options")
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return ChatParams(max_tokens, stop, body.temperature, rf, include_usage)


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


def _usage_chunk(cid: str, created: int, model: str, usage: dict[str, int]) -> str:
    doc = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "system_fingerprint": "oculi",
           "choices": [], "usage": usage}
    return f"data: {json.dumps(doc)}\n\n"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


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


def _check_json(text: str, rf: dict[str, Any] | None) -> None:
    from oculi.backends.vlm_common import check_json_reply

    try:
        check_json_reply(text, rf)
    except InputError as e:
        raise _bad(str(e), "response_format", "json_validate_failed") from None


def _sse_response(gen: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(gen, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _completion(cid: str, created: int, model: str, content: str, finish: str, usage: dict[str, int],
                extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "oculi",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, "refusal": None}, "logprobs": None, "finish_reason": finish}
        ],
        "usage": usage,
        "oculi": extra,
    }


# --- models ----------------------------------------------------------------------------------------
def _configured(st: Any, capability: str) -> dict[str, Any]:
    """Configured models (``oculi.toml``) serving ``capability``, by name (none for a test engine)."""
    eng = st.engine
    if not hasattr(eng, "models") or not hasattr(eng, "model"):
        return {}
    from oculi.backends.registry import capabilities_of

    out = {}
    try:
        names = eng.models.names()
    except OculiError:
        return {}
    for name in names:
        if name == "builtin" or name in MODELS or name in CHAT_ALIASES:
            continue
        try:
            b = eng.model(name)
        except OculiError:
            continue
        if capability in capabilities_of(b):
            out[name] = b
    return out


def _model_ids(st: Any) -> dict[str, str]:
    ids = dict(MODELS)
    chat = _configured(st, "chat")
    if chat or _configured(st, "generate_image"):
        ids[CONFIGURED_CHAT] = "the configured chat model (else the built-in one)"
    for name, b in chat.items():
        ids[name] = f"chat: {getattr(b, 'model_id', name)}"
    for name, b in _configured(st, "generate_image").items():
        ids[name] = f"image generation: {getattr(b, 'model_id', name)}"
    return ids


@router.get("/models", summary="List models (OpenAI-compatible)")
async def list_models(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    ids = _model_ids(get_state(request))
    return {"object": "list", "data": [_model(m, d) for m, d in ids.items()]}


def _model(m: str, description: str) -> dict[str, Any]:
    return {"id": m, "object": "model", "created": 1735689600, "owned_by": "oculi", "description": description}


@router.get("/models/{model_id}", summary="One model (OpenAI-compatible)")
async def get_model(model_id: str, request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    ids = _model_ids(get_state(request))
    if model_id not in ids:
        raise HTTPProblem(404, f"model {model_id!r} does not exist; models: {', '.join(ids)}", "invalid_request_error", code="model_not_found")
    return _model(model_id, ids[model_id])


def _chat_backend(st: Any, name: str) -> Any:
    """The backend that chats for ``name``, or ``None`` for the built-in model; 404 for an unknown name."""
    if name == CHAT_MODEL:
        return None
    if name == CONFIGURED_CHAT:
        pick = getattr(st.engine, "chat_model", None)
        return pick() if pick is not None else None
    configured = _configured(st, "chat")
    if name in configured:
        return configured[name]
    names = [CHAT_MODEL, CONFIGURED_CHAT, *configured]
    raise HTTPProblem(404, f"model {name!r} does not exist; chat models: {', '.join(names)}", code="model_not_found", param="model")


_REMOTE = {504: {"model": ErrorBody, "description": "a remote image URL took longer than the server's limit"}}


# --- chat ------------------------------------------------------------------------------------------
@router.post("/chat/completions", summary="Chat about images (OpenAI-compatible)", response_model=None, responses=_REMOTE)
async def chat_completions(body: ChatCompletionRequest, request: Request, _: Principal = Depends(require(Scope.READ))) -> Any:
    st = get_state(request)
    params = chat_params(body)
    backend = _chat_backend(st, body.model)
    if backend is None:
        return await _chat_builtin(st, body, params)
    return await _chat_model(st, body, params, backend)


async def _chat_builtin(st: Any, body: ChatCompletionRequest, params: ChatParams) -> Any:
    plan = plan_builtin(body.messages)
    if len(plan.urls) > MAX_CHAT_IMAGES:
        raise _bad(f"at most {MAX_CHAT_IMAGES} images per message", "messages")
    notes = list(plan.not_used)
    if params.temperature:
        notes.append(f"temperature {params.temperature:g} (the built-in model is deterministic)")
    results = []
    for url in plan.urls:
        data = await _image_bytes(st, url, "messages")
        if plan.task == "caption":
            res = await run_model(st, "caption", st.engine.caption, data, detailed=plan.detailed)
            results.append((res.caption, res.to_dict()))
        else:
            res = await run_model(st, "ask", st.engine.ask, data, plan.text)
            results.append((res.answer, res.to_dict()))
    if params.wants_json:
        doc: Any = results[0][1] if len(results) == 1 else {"images": [r for _, r in results]}
        if notes:
            doc = {**doc, "not_used": notes}
        content = json.dumps(doc, ensure_ascii=False)
        _check_json(content, params.response_format)
    elif len(results) == 1:
        content = results[0][0]
    else:
        content = "\n".join(f"Image {i}: {text}" for i, (text, _) in enumerate(results, 1))
    if notes and not params.wants_json:
        content += "\n\n(Not used: " + "; ".join(notes) + " — the built-in model answers each image on its own.)"
    finish = "stop"
    if params.stop:
        from oculi.backends.vlm_common import cut_at_stop

        content, _ = cut_at_stop(content, params.stop)
    words = re.findall(r"\S+\s*", content)
    if params.max_tokens is not None and len(words) > params.max_tokens:
        if params.wants_json:
            raise _bad(f"the JSON reply is {len(words)} tokens; max_tokens {params.max_tokens} would cut it", "max_tokens",
                       "json_validate_failed")
        content, finish = "".join(words[: params.max_tokens]).rstrip(), "length"
    cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    prompt_tokens = _tokens(plan.text) + 85 * len(plan.urls)  # an image counts as a fixed 85, as OpenAI's low detail does
    usage = _usage(prompt_tokens, _tokens(content))
    extra = {"task": plan.task, "result": results[0][1], "results": [r for _, r in results], "not_used": notes}
    if body.stream:
        async def events() -> AsyncIterator[str]:
            yield _chunk(cid, created, CHAT_MODEL, {"role": "assistant", "content": ""})
            for w in re.findall(r"\S+\s*", content) or [content]:
                yield _chunk(cid, created, CHAT_MODEL, {"content": w})
            yield _chunk(cid, created, CHAT_MODEL, {}, finish)
            if params.include_usage:
                yield _usage_chunk(cid, created, CHAT_MODEL, usage)
            yield "data: [DONE]\n\n"

        return _sse_response(events())
    return _completion(cid, created, CHAT_MODEL, content, finish, usage, extra)


async def _chat_messages(st: Any, body: ChatCompletionRequest) -> list[Any]:
    """The conversation as backend ``ChatMessage``s, every image decoded (checked, limited)."""
    from oculi.backends.base import ChatMessage as BMessage
    from oculi.backends.base import ChatPart

    out, n_images = [], 0
    for m in body.messages:
        role = "system" if m.role == "developer" else m.role
        if role not in ("system", "user", "assistant"):
            raise _bad(f"message role {m.role!r} is not supported (system, user, assistant)", "messages", "unsupported_value")
        parts = []
        if isinstance(m.content, str):
            parts.append(ChatPart("text", text=m.content))
        for p in m.content if isinstance(m.content, list) else []:
            if p.type in ("text", "input_text"):
                if p.text:
                    parts.append(ChatPart("text", text=p.text))
            elif p.type in ("image_url", "input_image"):
                n_images += 1
                if n_images > MAX_CHAT_IMAGES:
                    raise _bad(f"at most {MAX_CHAT_IMAGES} images per conversation", "messages")
                iu = p.image_url
                url = iu if isinstance(iu, str) else (iu.url if iu is not None else "")
                if not url:
                    raise HTTPProblem(400, "an image_url content part has no url", param="messages")
                data = await _image_bytes(st, url, "messages")
                loaded = await run_blocking(st.engine.load_image, data)  # decoding off the event loop
                parts.append(ChatPart("image", image=loaded.image))
            else:
                raise HTTPProblem(400, f"content part type {p.type!r} is not supported (use text and image_url)", param="messages")
        out.append(BMessage(role, parts))
    return out


async def _chat_model(st: Any, body: ChatCompletionRequest, params: ChatParams, backend: Any) -> Any:
    from starlette.concurrency import iterate_in_threadpool

    from oculi.backends.base import ChatOptions

    msgs = await _chat_messages(st, body)
    opts = ChatOptions(max_tokens=params.max_tokens, stop=params.stop, temperature=params.temperature,
                       response_format=params.response_format)
    cid, created, model = "chatcmpl-" + secrets.token_hex(12), int(time.time()), body.model
    prompt_est = sum(_tokens(m.text) + 85 * len(m.images) for m in msgs)
    extra = {"task": "chat", "model": str(getattr(backend, "model_id", body.model))}
    if body.stream and not params.wants_json and hasattr(backend, "chat_stream"):
        pieces = backend.chat_stream(msgs, opts)
        first = await run_model(st, "chat", next, pieces, None)  # errors before the first piece are HTTP errors

        async def events() -> AsyncIterator[str]:
            sent = []
            yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
            try:
                if first is not None:
                    sent.append(first)
                    yield _chunk(cid, created, model, {"content": first})
                    async for piece in iterate_in_threadpool(pieces):
                        sent.append(piece)
                        yield _chunk(cid, created, model, {"content": piece})
            except OculiError as e:  # mid-stream: an error event, as OpenAI's API sends
                yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error'}})}\n\n"
                yield "data: [DONE]\n\n"
                return
            text = "".join(sent)
            n = _tokens(text)
            finish = "length" if params.max_tokens is not None and n >= params.max_tokens else "stop"
            yield _chunk(cid, created, model, {}, finish)
            if params.include_usage:
                yield _usage_chunk(cid, created, model, _usage(prompt_est, n))
            yield "data: [DONE]\n\n"

        return _sse_response(events())
    res = await run_model(st, "chat", backend.chat, msgs, opts)
    if params.wants_json:
        _check_json(res.text, params.response_format)
    usage = _usage(res.prompt_tokens if res.prompt_tokens is not None else prompt_est,
                   res.completion_tokens if res.completion_tokens is not None else _tokens(res.text))
    if body.stream:  # JSON replies are checked whole, then streamed
        async def replay() -> AsyncIterator[str]:
            yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
            for w in re.findall(r"\S+\s*", res.text) or [res.text]:
                yield _chunk(cid, created, model, {"content": w})
            yield _chunk(cid, created, model, {}, res.finish_reason)
            if params.include_usage:
                yield _usage_chunk(cid, created, model, usage)
            yield "data: [DONE]\n\n"

        return _sse_response(replay())
    return _completion(cid, created, model, res.text, res.finish_reason, usage, extra)


# --- images ----------------------------------------------------------------------------------------
def _size(size: str | None) -> tuple[int | None, int | None]:
    if size in (None, "", "auto"):
        return None, None
    m = re.fullmatch(r"(\d{1,4})x(\d{1,4})", size)
    if not m:
        raise _bad(f"size must be WIDTHxHEIGHT (e.g. 512x512) or auto; got {size!r}", "size")
    return int(m.group(1)), int(m.group(2))


def _generator(eng: Any, model: str | None) -> Any:
    """The configured generator (``model``, else ``[tasks] generate``), or 400 ``no_generator``."""
    from oculi.tasks.generate import NoGeneratorError

    if not hasattr(eng, "generator"):
        raise _bad("this server has no image generation", "model", "no_generator")
    name = None if model in (None, CONFIGURED_CHAT, "") else model
    try:
        return eng.generator(name)
    except NoGeneratorError as e:
        raise _bad(str(e), "model", "no_generator") from None
    except OculiError as e:
        raise _bad(str(e), "model", "model_not_found" if name and name not in eng.models.names() else "no_generator") from None


async def _generate_n(st: Any, n: int, seed: int | None, size: str | None, **kw: Any) -> dict[str, Any]:
    """``n`` generations (seeds ``seed``, ``seed + 1``, ...) as an OpenAI images response."""
    from oculi.tasks.generate import png_b64

    first = seed if seed is not None else secrets.randbelow(2**31)
    data, results = [], []
    for i in range(n):
        g = await run_model(st, "generate", st.engine.generate, seed=first + i, **kw)
        for im in g.images:
            data.append({"b64_json": png_b64(im), "revised_prompt": None})
        results.append(g.to_dict())
    return {"created": int(time.time()), "data": data, "output_format": "png", "size": size or "auto",
            "oculi": {"model": results[0]["model"], "seeds": [r["seed"] for r in results], "steps": results[0]["steps"],
                      "strength": results[0]["strength"]}}


@router.post("/images/generations", summary="Generate images (OpenAI-compatible)", response_model=None)
async def images_generations(body: ImageGenerationRequest, request: Request,
                             _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    st = get_state(request)
    if body.response_format != "b64_json":
        raise _bad("only response_format b64_json is supported: the server keeps no image files", "response_format",
                   "unsupported_value")
    width, height = _size(body.size)
    gen = _generator(st.engine, body.model)
    return await _generate_n(st, body.n, body.seed, body.size, prompt=body.prompt, steps=body.steps, width=width,
                             height=height, model=gen.name)


EDIT_FIELDS = {"prompt", "model", "n", "size", "response_format", "seed", "steps", "strength", "user", "quality",
               "background", "output_format", "input_fidelity"}


@router.post(
    "/images/edits", summary="Edit an image (OpenAI-compatible)", response_model=None,
    description="multipart/form-data: a file field `image` (PNG, JPEG, WebP...), `prompt`, and optionally a file "
    "field `mask` (a PNG the size of the image whose fully transparent pixels mark what to change), `n` (1-4), "
    "`size` (WIDTHxHEIGHT, multiples of 8; default: the image's), `response_format` (b64_json), `model`, and "
    "oculi's `seed`, `steps`, `strength`. Served by the configured generator's image-to-image form "
    "(inpainting with a mask); 400 `no_generator` without one.",
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", "prompt"],
        "properties": {"image": {"type": "string", "format": "binary"}, "mask": {"type": "string", "format": "binary"},
                       "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS}, "n": {"type": "integer"},
                       "size": {"type": "string"}, "response_format": {"type": "string", "enum": ["b64_json"]},
                       "model": {"type": "string"}, "seed": {"type": "integer"}, "steps": {"type": "integer"},
                       "strength": {"type": "number"}}}}}}},
)
async def images_edits(request: Request, _: Principal = Depends(require(Scope.READ))) -> dict[str, Any]:
    from starlette.datastructures import UploadFile

    from oculi.server.state import field_float, field_int, field_str, read_upload

    st = get_state(request)
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise HTTPProblem(415, "send multipart/form-data with a file field 'image' and a field 'prompt'",
                          "unsupported_media_type")
    try:
        form = await request.form(max_files=3, max_fields=20, max_part_size=64 * 1024)
    except HTTPProblem:
        raise
    except Exception as e:  # noqa: BLE001 - python-multipart/starlette refusal: too many files, malformed body
        status = getattr(e, "status_code", 400)
        raise HTTPProblem(status if 400 <= status < 500 else 400, f"malformed upload: {getattr(e, 'detail', e)}") from None
    files: dict[str, list[UploadFile]] = {}
    fields: dict[str, Any] = {}
    for k, v in form.multi_items():
        if isinstance(v, UploadFile):
            files.setdefault("image" if k in ("image", "image[]") else k, []).append(v)
        elif k in EDIT_FIELDS:
            fields[k] = v
    images, masks = files.pop("image", []), files.pop("mask", [])
    if files:
        raise _bad(f"unknown file field(s) {', '.join(sorted(files))}; send 'image' and optionally 'mask'", sorted(files)[0])
    if len(images) != 1:
        raise _bad("send exactly one file field 'image' (this server edits one image per request)", "image")
    if len(masks) > 1:
        raise _bad("send at most one file field 'mask'", "mask")
    prompt = (field_str(fields, "prompt", required=True, max_len=MAX_PROMPT_CHARS) or "").strip()
    if not prompt:
        raise _bad("prompt is empty; say what to change, e.g. \"make the door blue\"", "prompt")
    if (field_str(fields, "response_format", max_len=16) or "b64_json") != "b64_json":
        raise _bad("only response_format b64_json is supported: the server keeps no image files", "response_format",
                   "unsupported_value")
    for name in ("quality", "background", "input_fidelity"):  # gpt-image's own knobs: refused, never ignored
        if fields.get(name) not in (None, "", "auto"):
            raise _bad(f"{name} is not supported by this server's generators (only auto)", name, "unsupported_parameter")
    if (field_str(fields, "output_format", max_len=16) or "png") != "png":
        raise _bad("only output_format png is supported", "output_format", "unsupported_value")
    n = field_int(fields, "n", 1, 1, MAX_GENERATED)
    size = field_str(fields, "size", max_len=16)
    width, height = _size(size)
    seed = field_int(fields, "seed", 0, 0, 2**31 - 1) if "seed" in fields else None
    steps = field_int(fields, "steps", 0, 1, 500) if "steps" in fields else None
    strength = field_float(fields, "strength", 0.0, 0.01, 1.0) if "strength" in fields else None
    max_bytes, max_pixels = st.settings.max_image_bytes, st.settings.max_image_pixels
    image = await read_upload(images[0], max_bytes)
    check_image(image, max_bytes=max_bytes, max_pixels=max_pixels, name="image")
    mask = None
    if masks:
        mask = await read_upload(masks[0], max_bytes)
        check_image(mask, max_bytes=max_bytes, max_pixels=max_pixels, name="mask")
    gen = _generator(st.engine, field_str(fields, "model", max_len=200))
    return await _generate_n(st, n, seed, size, prompt=prompt, image=image, mask=mask, steps=steps, width=width,
                             height=height, strength=strength, model=gen.name)


# --- embeddings ------------------------------------------------------------------------------------
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

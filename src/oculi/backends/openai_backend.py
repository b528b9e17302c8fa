"""The ``openai`` backend type: any OpenAI-compatible server (vLLM, Ollama, llama.cpp server, TGI,
LM Studio, another oculi).

``oculi.toml``::

    [models.local-vlm]
    backend = "openai"
    base_url = "http://127.0.0.1:11434/v1"   # Ollama; vLLM: http://host:8000/v1
    model = "qwen2.5vl:3b"
    api_key_env = "OLLAMA_API_KEY"           # the NAME of an environment variable, never the key
    timeout = 120                            # seconds per request
    max_retries = 2                          # connection errors, 429 and 5xx, with backoff
    concurrency = 4                          # requests in flight at once from this process
    embed_model = "nomic-embed-text"         # optional: /v1/embeddings for text
    images_per_message = 1                   # optional: for servers/models that take one image per message

Images go as ``data:`` URLs (PNG), one ``image_url`` part each, in the messages they belong to, so
a multi-turn conversation reaches the server whole. Servers that take one image per message
(some Ollama models) answer with an error, which is passed on in one line. Replies stream
through ``chat_stream`` (server-sent events). A server that is down, or answers an error, gives
one ``BackendError`` line naming the URL and what it said. Uses ``httpx`` (no ``openai`` package
needed).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
from PIL import Image
from pydantic import Field

from oculi.backends.base import Backend, BackendOptions, ChatMessage, ChatOptions, ChatPart, ChatResult
from oculi.backends.vlm_common import answer_of, caption_prompt, image_data_url
from oculi.core.errors import BackendError, ModelConfigError
from oculi.core.types import Answer, Observation

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0


class OpenAIOptions(BackendOptions):
    """Options of an ``openai`` model (a ``[models.NAME]`` table with ``backend = "openai"``)."""

    base_url: str = Field(pattern=r"^https?://", description="the server's /v1 URL")
    model: str = Field(min_length=1, description="the model name the server knows")
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                    description="environment variable holding the API key (never the key itself)")
    timeout: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(2, ge=0, le=10)
    concurrency: int = Field(4, ge=1, le=256)
    embed_model: str | None = Field(None, description="a /v1/embeddings model for text vectors")
    image_embed_model: str | None = Field(None, description="a /v1/embeddings model that takes data: URLs (e.g. oculi-image-embed)")
    max_tokens: int = Field(512, ge=1, le=131072, description="reply length when a request gives none")
    images_per_message: int = Field(0, ge=0, le=64, description="split a user message with more images into several "
                                    "(some Ollama models take one image per message); 0: no limit")


class OpenAIBackend(Backend):
    """A model behind an OpenAI-compatible HTTP API: caption, ask, chat; embeddings when configured."""

    type_name: ClassVar[str] = "openai"
    Options: ClassVar[type[BackendOptions]] = OpenAIOptions
    capabilities: ClassVar[frozenset[str]] = frozenset({"describe", "answer", "chat", "embed_text", "embed_image"})
    description = "an OpenAI-compatible server (vLLM, Ollama, llama.cpp, TGI, another oculi): caption, ask, chat, embeddings"

    def __init__(self, name: str, options: OpenAIOptions, settings: Any) -> None:
        super().__init__(name, options, settings)
        self.options: OpenAIOptions = options
        caps = {"describe", "answer", "chat"}
        if options.embed_model:
            caps.add("embed_text")
        if options.image_embed_model:
            caps.add("embed_image")
        self.capabilities = frozenset(caps)
        self._sem = threading.BoundedSemaphore(options.concurrency)
        self._client: Any = None
        self._dims: dict[str, int] = {}

    @property
    def url(self) -> str:
        return self.options.base_url.rstrip("/")

    @property
    def model_id(self) -> str:
        return f"openai:{self.options.model}"

    # --- lifecycle -----------------------------------------------------------------------------
    def _key(self) -> str | None:
        env = self.options.api_key_env
        if env is None:
            return None
        key = os.environ.get(env)
        if not key:
            raise ModelConfigError(f"model {self.name!r}: api_key_env names {env}, which is not set in the environment")
        return key

    def _load(self) -> None:
        import httpx

        headers = {"User-Agent": "oculi"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(self.options.timeout, connect=10.0),
                                    limits=httpx.Limits(max_connections=self.options.concurrency))

    def _unload(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    def health(self) -> dict[str, Any]:
        """Whether the server answers ``GET /models`` and knows the model."""
        try:
            self.load()
            doc = self._json(self._request("GET", "/models", retries=0, timeout=10.0))
        except Exception as e:  # noqa: BLE001 - any failure is the answer
            return {"ok": False, "detail": str(e)}
        ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)]
        if ids and self.options.model not in ids:
            return {"ok": False, "detail": f"{self.url} answers but has no model {self.options.model!r}; it has: {', '.join(map(str, ids[:20]))}"}
        return {"ok": True, "detail": f"{self.url} answers ({len(ids)} models)"}

    # --- HTTP ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json_body: Any = None, retries: int | None = None,
                 timeout: float | None = None) -> Any:
        """One request with retries (connection errors, 408/409/429/5xx; exponential backoff with
        jitter, ``Retry-After`` honoured) under the concurrency limit; a ``BackendError`` line
        when it fails."""
        import httpx

        self.load()
        n = self.options.max_retries if retries is None else retries
        for attempt in range(n + 1):
            wait = min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt) * (0.5 + random.random() / 2)
            try:
                with self._sem:
                    r = self._client.request(method, path, json=json_body,
                                             timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
            except httpx.TimeoutException:
                err = f"model {self.name!r}: {self.url} did not answer within {timeout or self.options.timeout:g} s"
            except httpx.TransportError as e:
                err = f"model {self.name!r}: cannot reach {self.url} ({_reason(e)}); is the server running?"
            else:
                if r.status_code < 400:
                    return r
                err = f"model {self.name!r}: {self.url} answered {r.status_code}: {_server_message(r)}"
                if r.status_code not in RETRY_STATUS:
                    raise BackendError(err)
                after = r.headers.get("retry-after")
                if after and after.replace(".", "", 1).isdigit():
                    wait = min(MAX_BACKOFF_S * 4, float(after))
            if attempt < n:
                log.info("%s; retrying in %.1f s", err, wait)
                time.sleep(wait)
        raise BackendError(err + (f" (after {n + 1} tries)" if n else ""))

    def _stream(self, body: dict[str, Any]) -> Iterator[str]:
        """Server-sent events of a streamed chat completion: the content pieces."""
        import httpx

        self.load()
        with self._sem:
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as r:
                    if r.status_code >= 400:
                        r.read()
                        raise BackendError(f"model {self.name!r}: {self.url} answered {r.status_code}: {_server_message(r)}")
                    for line in r.iter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            return
                        try:
                            doc = json.loads(data)
                        except ValueError:
                            raise BackendError(f"model {self.name!r}: {self.url} streamed something that is not JSON: {data[:120]!r}") from None
                        if "error" in doc:
                            raise BackendError(f"model {self.name!r}: {self.url} stopped with an error: {_error_text(doc)}")
                        for ch in doc.get("choices") or []:
                            piece = (ch.get("delta") or {}).get("content")
                            if piece:
                                yield piece
            except httpx.TimeoutException:
                raise BackendError(f"model {self.name!r}: {self.url} did not answer within {self.options.timeout:g} s") from None
            except httpx.TransportError as e:
                raise BackendError(f"model {self.name!r}: cannot reach {self.url} ({_reason(e)}); is the server running?") from None

    def _json(self, r: Any) -> Any:
        try:
            doc = r.json()
        except ValueError:
            raise BackendError(f"model {self.name!r}: {self.url} answered {r.status_code} with something that is not JSON: "
                               f"{(r.text or '')[:120]!r}") from None
        if not isinstance(doc, dict):
            raise BackendError(f"model {self.name!r}: {self.url} answered {r.status_code} with JSON that is not an object")
        return doc

    # --- chat ------------------------------------------------------------------------------------
    def _split(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """User messages with more than ``images_per_message`` images as several consecutive user
        messages: the images in order, the text with the last group."""
        k = self.options.images_per_message
        if not k:
            return list(messages)
        out: list[ChatMessage] = []
        for m in messages:
            imgs = [p for p in m.parts if p.type == "image"]
            if m.role != "user" or len(imgs) <= k:
                out.append(m)
                continue
            texts = [p for p in m.parts if p.type != "image"]
            groups = [imgs[i:i + k] for i in range(0, len(imgs), k)]
            out += [ChatMessage("user", g) for g in groups[:-1]] + [ChatMessage("user", groups[-1] + texts)]
        return out

    def _body(self, messages: Sequence[ChatMessage], options: ChatOptions, *, stream: bool = False) -> dict[str, Any]:
        msgs = []
        for m in self._split(messages):
            content: list[dict[str, Any]] = []
            for p in m.parts:
                if p.type == "image" and p.image is not None:
                    content.append({"type": "image_url", "image_url": {"url": image_data_url(p.image)}})
                elif p.text:
                    content.append({"type": "text", "text": p.text})
            if m.role != "user" and all(c["type"] == "text" for c in content):  # plain strings: what every server takes
                msgs.append({"role": m.role, "content": "\n".join(c["text"] for c in content)})
            else:
                msgs.append({"role": m.role, "content": content})
        body: dict[str, Any] = {"model": self.options.model, "messages": msgs,
                                "max_tokens": options.max_tokens or self.options.max_tokens}
        if options.temperature is not None:
            body["temperature"] = options.temperature
        if options.stop:
            body["stop"] = list(options.stop)
        if options.response_format:
            body["response_format"] = options.response_format
        if stream:
            body["stream"] = True
        return body

    def chat(self, messages: Sequence[ChatMessage], options: ChatOptions | None = None) -> ChatResult:
        """The server's reply to the whole conversation (every image as a data: URL)."""
        doc = self._json(self._request("POST", "/chat/completions", json_body=self._body(messages, options or ChatOptions())))
        try:
            choice = doc["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise BackendError(f"model {self.name!r}: {self.url} answered without a choice: {str(doc)[:200]}") from None
        usage = doc.get("usage") or {}
        return ChatResult(text, usage.get("prompt_tokens"), usage.get("completion_tokens"), choice.get("finish_reason") or "stop")

    def chat_stream(self, messages: Sequence[ChatMessage], options: ChatOptions | None = None) -> Iterator[str]:
        """The reply as the server streams it (its chunks' content, passed through)."""
        yield from self._stream(self._body(messages, options or ChatOptions(), stream=True))

    def describe(self, image: Image.Image, observation: Observation | None = None, *, detailed: bool = False) -> str:
        msgs = [ChatMessage("user", [ChatPart("image", image=image), ChatPart("text", text=caption_prompt(detailed))])]
        return self.chat(msgs, ChatOptions()).text.strip()

    def answer(self, image: Image.Image, observation: Observation | None, question: str) -> Answer:
        msgs = [ChatMessage("user", [ChatPart("image", image=image), ChatPart("text", text=question)])]
        return answer_of(question, self.chat(msgs, ChatOptions()).text)

    # --- embeddings ----------------------------------------------------------------------------
    def _embed(self, model: str | None, inputs: list[str], kind: str) -> np.ndarray:
        if not model:
            raise ModelConfigError(f"model {self.name!r} has no {'embed_model' if kind == 'text' else 'image_embed_model'} configured")
        if not inputs:
            return np.zeros((0, self._dims.get(kind, 0)), np.float32)
        doc = self._json(self._request("POST", "/embeddings", json_body={"model": model, "input": inputs, "encoding_format": "float"}))
        try:
            rows = sorted(doc["data"], key=lambda d: d["index"])
            v = np.asarray([r["embedding"] for r in rows], dtype=np.float32)  # [N, D]
        except (KeyError, TypeError, ValueError):
            raise BackendError(f"model {self.name!r}: {self.url} answered /embeddings without float vectors") from None
        if v.shape[0] != len(inputs):
            raise BackendError(f"model {self.name!r}: {self.url} returned {v.shape[0]} vectors for {len(inputs)} inputs")
        self._dims[kind] = int(v.shape[1])
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors ``[N, D]`` from ``embed_model``, L2-normalised."""
        return self._embed(self.options.embed_model, list(texts), "text")

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Image vectors ``[N, D]`` from ``image_embed_model`` (inputs are data: URLs), L2-normalised."""
        return self._embed(self.options.image_embed_model, [image_data_url(im) for im in images], "image")

    def _dim(self, kind: str) -> int:
        if kind not in self._dims:  # one probe request: servers do not publish a model's size
            if kind == "text":
                self.embed_texts(["dimension probe"])
            else:
                self.embed_images([Image.new("RGB", (32, 32), (128, 128, 128))])
        return self._dims[kind]

    @property
    def text_dim(self) -> int:
        return self._dim("text")

    @property
    def image_dim(self) -> int:
        return self._dim("image")


def _reason(e: Exception) -> str:
    s = str(e) or type(e).__name__
    return "connection refused" if "refused" in s.lower() or "errno 111" in s.lower() else s


def _error_text(doc: Any) -> str:
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)[:300]
    return str(err or doc)[:300]


def _server_message(r: Any) -> str:
    """The error message of a server's answer (OpenAI's ``{"error": {"message"}}``, else the text)."""
    try:
        return _error_text(r.json())
    except ValueError:
        return (r.text or r.reason_phrase or "").strip()[:300] or "no message"

"""all-MiniLM-L6-v2 sentence embeddings (384-d) for questions, labels and search.

The ``text-encoder`` asset carries the sentence-transformers model folder (``model/``:
``model.safetensors``, ``tokenizer.json``, BERT config). The embedding is the model's
recipe: BERT (6 layers, hidden 384, 12 heads) → mean of the token states over the attention
mask → L2 normalisation; inputs are truncated to 256 word pieces.

Two runtimes compute the same function:

- ``"numpy"`` (default): the ``tokenizers`` fast tokenizer from ``tokenizer.json`` and the
  BERT forward pass written out in NumPy over the safetensors weights (``_NumpyBert``).
- ``"transformers"``: ``AutoTokenizer``/``AutoModel`` from the same folder
  (``local_files_only=True``), run by torch.

Measured on this machine (2 CPU cores shared with other jobs):

===================================  ================================  ==================
                                     transformers (torch 2.13)         numpy + tokenizers
===================================  ================================  ==================
import                               torch 2.2 s + transformers 1.9 s  0.2 s
load                                 2.7-3.6 s                         0.6 s
cold start to first embedding        9.8 s (heavily loaded machine)    1.6 s (same)
one query, CPU time, 1 thread        14 ms                             16 ms
1000 ImageNet labels, CPU, 1 thread  2.6 s                             4.2 s
===================================  ================================  ==================

transformers costs 6-10 s before the first embedding (far over the 1.5 s budget), which a
CLI call such as ``oculi ask`` would pay every time. onnxruntime was the other candidate,
but exporting the graph needs torch plus the ``onnx`` package (not a dependency). The NumPy
forward needs no export or cache and is as fast for the short texts oculi embeds one at a
time (questions, captions); bulk encoding is about 1.6x slower than torch (OpenBLAS GEMMs
and element-wise GELU), so embed large fixed vocabularies once and keep them. The two
runtimes agree to 3e-7 (cosine > 0.9999999).
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from oculi.config import Settings
from oculi.core.errors import BackendError, ModelAssetError

log = logging.getLogger(__name__)

MODEL_DIR = "model"
MAX_LENGTH = 256
BATCH_SIZE = 64
_LN_EPS = 1e-12
_HEADS = 12


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between rows of ``a`` and rows of ``b``.

    Args:
        a: ``[N, D]`` or ``[D]``.
        b: ``[M, D]`` or ``[D]``.

    Returns:
        ``[N, M]`` float32 (a 1-D input drops its axis; two 1-D inputs give a scalar array).
    """
    a2 = np.atleast_2d(np.asarray(a, dtype=np.float32))
    b2 = np.atleast_2d(np.asarray(b, dtype=np.float32))
    a2 = a2 / np.maximum(np.linalg.norm(a2, axis=1, keepdims=True), 1e-12)
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=1, keepdims=True), 1e-12)
    s = a2 @ b2.T  # [N, M]
    if np.ndim(a) == 1:
        s = s[0]
    if np.ndim(b) == 1:
        s = s[..., 0]
    return s.astype(np.float32)


def _gelu(h: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU of a float32 array, ``0.5 * h * (1 + erf(h / sqrt(2)))``.

    erf uses Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), computed in place on
    temporaries: twice as fast as the plain NumPy expression.
    """
    f32 = np.float32
    z = h * f32(1.0 / math.sqrt(2.0))
    a = np.abs(z)
    t = a * f32(0.3275911)
    t += 1.0
    np.reciprocal(t, out=t)
    p = t * f32(1.061405429)
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        p += f32(c)
        p *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a  # 1 - erf(|z|)
    np.subtract(1.0, p, out=p)
    np.copysign(p, z, out=p)  # erf(z)
    p += 1.0
    p *= 0.5
    p *= h
    return p


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + _LN_EPS) * w + b


class _NumpyBert:
    """The BERT encoder of all-MiniLM-L6-v2 in NumPy (float32), weights from safetensors."""

    def __init__(self, weights: Path) -> None:
        from safetensors.numpy import load_file

        w = load_file(str(weights))
        self.word = w["embeddings.word_embeddings.weight"]  # [30522, 384]
        self.pos = w["embeddings.position_embeddings.weight"]  # [512, 384]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]  # [384]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        i = 0
        while f"encoder.layer.{i}.attention.self.query.weight" in w:
            p = f"encoder.layer.{i}."
            q, k, v = (w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value"))
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    np.ascontiguousarray(np.concatenate([q, k, v]).T),  # [384, 1152]
                    qkv_b,  # [1152]
                    np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),  # [384, 384]
                    w[p + "attention.output.dense.bias"],
                    (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),  # [384, 1536]
                    w[p + "intermediate.dense.bias"],
                    np.ascontiguousarray(w[p + "output.dense.weight"].T),  # [1536, 384]
                    w[p + "output.dense.bias"],
                    (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )
            i += 1
        if not self.layers:
            raise ModelAssetError(f"{weights} holds no BERT encoder layers")

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states ``[B, T, 384]`` for token ids and attention mask ``[B, T]``."""
        B, T = ids.shape
        x = self.word[ids] + self.pos[:T][None] + self.type0  # [B, T, 384]
        x = _layer_norm(x, *self.emb_ln)
        d = x.shape[-1]
        hd = d // _HEADS
        bias = np.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(np.float32)  # [B, 1, 1, T]
        x = x.reshape(B * T, d)  # dense layers run as one 2-D GEMM each
        for wqkv, bqkv, wo, bo, ln1, w1, b1, w2, b2, ln2 in self.layers:
            qkv = x @ wqkv + bqkv  # [B*T, 1152]
            qkv = qkv.reshape(B, T, 3, _HEADS, hd).transpose(2, 0, 3, 1, 4)  # [3, B, H, T, hd]
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = q @ k.transpose(0, 1, 3, 2) * (1.0 / math.sqrt(hd)) + bias  # [B, H, T, T]
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            probs = scores / scores.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B * T, d)  # [B*T, 384]
            x = _layer_norm(x + ctx @ wo + bo, *ln1)
            h = x @ w1 + b1  # [B*T, 1536]
            h = _gelu(h)
            x = _layer_norm(x + h @ w2 + b2, *ln2)
        x = x.reshape(B, T, d)
        return x.astype(np.float32, copy=False)


def _mean_pool_normalise(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)  # [B, T, 1]
    pooled = (states * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)  # [B, 384]
    return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class MiniLMTextEncoder:
    """Sentence embedder (TextEmbedder protocol): ``[N, 384]`` float32, L2-normalised.

    Args:
        settings: Where the asset is.
        runtime: ``"numpy"`` (default, fast start) or ``"transformers"``.

    Example:
        >>> enc = MiniLMTextEncoder(Settings())  # doctest: +SKIP
        >>> e = enc.embed_texts(["a photo of a cat", "a kitten", "a truck"])  # doctest: +SKIP
        >>> similarity(e[0], e[1:])  # doctest: +SKIP
        array([0.63, 0.17], dtype=float32)
    """

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, settings: Settings, runtime: str = "numpy") -> None:
        if runtime not in ("numpy", "transformers"):
            raise ValueError(f"runtime must be 'numpy' or 'transformers', got {runtime!r}")
        self.settings = settings
        self.runtime = runtime
        self._tokenizer: Any = None
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Verify the asset and load tokenizer and weights (idempotent, thread-safe).

        Raises:
            ModelAssetError: the asset is missing, corrupt or unreadable.
        """
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            from oculi.assets.manager import require_asset

            folder = require_asset("text-encoder", self.settings) / MODEL_DIR
            try:
                if self.runtime == "numpy":
                    from threadpoolctl import threadpool_limits
                    from tokenizers import Tokenizer

                    # NumPy's OpenBLAS at its default (a thread per core) spins its helpers on
                    # these small GEMMs: on the 2-core machine, with other work running, one
                    # sentence took 47-374 ms of CPU against 15 ms at one thread (process-wide)
                    threadpool_limits(1, user_api="blas")
                    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
                    tok.enable_truncation(max_length=MAX_LENGTH)
                    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in a batch
                    model: Any = _NumpyBert(folder / "model.safetensors")
                else:
                    from transformers import AutoModel, AutoTokenizer

                    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                    model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
            except ModelAssetError:
                raise
            except Exception as exc:
                raise ModelAssetError(f"cannot load all-MiniLM-L6-v2 from {folder}: {exc}; run `oculi models pull`") from exc
            self._tokenizer = tok
            self._model = model

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self.runtime == "numpy":
            encs = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encs], dtype=np.int64)  # [B, T]
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)  # [B, T]
            return _mean_pool_normalise(self._model(ids, mask), mask)  # [B, 384]
        import torch

        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            states = self._model(**batch).last_hidden_state  # [B, T, 384]
        return _mean_pool_normalise(states.numpy(), batch["attention_mask"].numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Strings (empty strings are allowed and embed like ``""``).

        Returns:
            ``[N, 384]`` float32, L2-normalised, in input order.
        """
        if isinstance(texts, str):
            raise TypeError("embed_texts takes a sequence of strings, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self.load()
        texts = [str(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        try:
            for start in range(0, len(order), BATCH_SIZE):
                idx = order[start : start + BATCH_SIZE]
                out[idx] = self._encode_batch([texts[i] for i in idx])
        except Exception as exc:
            raise BackendError(f"the text encoder failed: {exc}") from exc
        return out

    def embed_text(self, text: str) -> np.ndarray:
        """Embed one text: ``[384]`` float32."""
        return self.embed_texts([text])[0]

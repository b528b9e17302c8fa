"""Device and dtype for the torch-based backends (``transformers``, ``diffusers``)."""

from __future__ import annotations

from typing import Any, Literal

from oculi.core.errors import ModelConfigError


def resolve_torch_device(model: str, device: str, dtype: str, *,
                         cuda_default: Literal["bfloat16", "float16"]) -> tuple[str, Any]:
    """``(device, torch dtype)`` for a model's ``device`` and ``dtype`` options.

    ``auto`` picks CUDA when torch sees a GPU, else the CPU; the ``auto`` dtype is float32 on the
    CPU and ``cuda_default`` on a GPU (bfloat16 falls back to float16 where the GPU lacks it).

    Raises:
        ModelConfigError: a CUDA device was asked for and torch sees none.
    """
    import torch

    dev = device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    elif dev.startswith("cuda") and not torch.cuda.is_available():
        raise ModelConfigError(f"model {model!r}: device {dev!r} was asked for, but torch sees no CUDA GPU; set device = \"cpu\"")
    if dtype != "auto":
        return dev, getattr(torch, dtype)
    if not dev.startswith("cuda"):
        return dev, torch.float32
    if cuda_default == "bfloat16" and torch.cuda.is_bf16_supported():
        return dev, torch.bfloat16
    return dev, torch.float16

"""The torch modules ``oculi train`` fits; ``oculi.perception.heads`` runs them in NumPy."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
    """Standardise the input, then ``(Linear → ReLU → Dropout)* → Linear``.

    ``hidden=()`` is multinomial logistic regression. The state dict (``mean``, ``std``,
    ``layers.{i}.weight``/``bias``) is what ``oculi.perception.heads.MLP`` reads.

    Args:
        mean, std: Per-feature statistics of the training inputs (``[D]``).
        n_out: Outputs (classes, answers).
        hidden: Hidden layer widths.
        dropout: Dropout after each hidden layer (training only).
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, n_out: int, hidden: Sequence[int] = (), dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))
        dims = [int(len(mean)), *map(int, hidden), int(n_out)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, D] → [B, n_out]
        h = (x - self.mean) / self.std
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.drop(torch.relu(h))
        return h

    def tensors(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays under the names the NumPy runner reads."""
        return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self.state_dict().items()}


class Projection(nn.Module):
    """A linear map from text vectors into the visual feature space, with a learnt temperature.

    The score of a text ``t`` (``[Dt]``, L2-normalised) and an image ``x`` (``[Dv]``,
    L2-normalised) is ``(W t) · x`` — an inner product in the image space, so a collection's
    stored image vectors are searched with the projected query as they are (nothing re-indexed).
    """

    def __init__(self, dim_text: int, dim_image: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_text, dim_image, bias=False)
        nn.init.normal_(self.proj.weight, std=dim_text ** -0.5)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # [B, Dt] → [B, Dv]
        return self.proj(t)

    def logits(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # [B, Dt], [B, Dv] → [B, B]
        q = nn.functional.normalize(self.proj(t), dim=-1)
        return self.log_scale.exp().clamp(max=100.0) * q @ x.T


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (floored) of ``x`` ``[N, D]``."""
    return x.mean(axis=0).astype(np.float32), np.maximum(x.std(axis=0), 1e-3).astype(np.float32)

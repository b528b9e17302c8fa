"""Load and run TensorFlow.js graph models with torch.

A TFJS "graph-model" is a ``model.json`` whose ``modelTopology.node`` is a TensorFlow
``GraphDef`` in JSON and whose ``weightsManifest`` lists the constant tensors packed into one
or more ``.bin`` shards (optionally quantised to float16 / uint8 / uint16).

``load_graph_model`` parses both; ``GraphModel.run`` executes the subgraph needed for the
requested outputs in topological order. Values keep TensorFlow's NHWC semantics (so Reshape,
Concat, StridedSlice, Mean etc. need no axis remapping), while convolutions and pooling run on
``x.permute(0, 3, 1, 2)``: an NHWC-contiguous tensor viewed as NCHW is torch's
``channels_last`` layout, so the permutes are free views and oneDNN runs channels-last kernels.
Each requested output set is compiled once into a plan of closures with weights already in
torch layout; intermediate tensors are released after their last use.

``run(..., channels_first=True)`` computes the same function with 4-D values stored NCHW
inside the graph (inputs and outputs keep TF's NHWC meaning): convolutions, pooling, ``Mean``
over H and W, ``ConcatV2`` on channels, ``ResizeBilinear`` and element-wise ops work on NCHW
values directly, and any other op gets its input permuted back. That is the layout to trace
for ONNX export: the NHWC plan exports a ``Transpose`` around every convolution, which
onnxruntime turns into layout reorders, and its ``ReduceMean`` over H, W of an NHWC tensor
is a strided reduction. On the CenterNet detector (one thread, this machine) the NHWC export
spent 43 % of its 67 ms in convolutions, 22 % in ``ReduceMean`` and 20 % in
transposes/reorders; the NCHW export runs the same convolutions without the rest.

TF ``SAME`` padding is reproduced exactly: ``pad_total = max((ceil(in/s)-1)*s + (k-1)*d + 1 - in,
0)``, ``pad_before = pad_total // 2`` (so stride 2 on even input pads 0 before, 1 after).
``ResizeBilinear`` follows TF's three coordinate modes (legacy / align_corners /
half_pixel_centers), which differ from ``F.interpolate``.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from oculi.core.errors import ModelAssetError

_NP = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}
_TF_TORCH = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_INT64": torch.int64,
             "DT_BOOL": torch.bool, "DT_HALF": torch.float16}
Ref = tuple[str, int]  # (node name, output index)


@dataclass(frozen=True)
class Node:
    """One GraphDef node: ``inputs`` are ``(name, output_index)``; control inputs are dropped."""

    name: str
    op: str
    inputs: tuple[Ref, ...]
    attr: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        """Decode attribute ``key`` from its protobuf-JSON form (``s`` is base64)."""
        v = self.attr.get(key)
        if not isinstance(v, dict):
            return default
        if "list" in v:
            lst = v["list"]
            if "s" in lst:
                return [base64.b64decode(s).decode() for s in lst["s"]]
            if "f" in lst:
                return [float(f) for f in lst["f"]]
            return [int(i) for i in lst.get("i", [])]
        for k, conv in (("s", lambda s: base64.b64decode(s).decode()), ("i", int), ("f", float),
                        ("b", bool), ("type", str)):
            if k in v:
                return conv(v[k])
        return default


def _ref(s: str) -> Ref:
    name, _, idx = s.partition(":")
    return (name, int(idx) if idx.isdigit() else 0)


def _decode_weights(manifest: list[dict], root: Path) -> dict[str, np.ndarray]:
    """Decode every weight group of the manifest; quantised values are dequantised to float32."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        try:
            buf = b"".join((root / p).read_bytes() for p in group["paths"])
        except OSError as e:
            raise ModelAssetError(f"cannot read TFJS weight shard: {e}") from e
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n, q, dtype = math.prod(shape), w.get("quantization"), w["dtype"]
            if dtype not in _NP or (q and q.get("dtype") not in _QUANT):
                raise ModelAssetError(f"unsupported TFJS weight dtype for {w['name']!r}: {dtype} {q}")
            src = np.dtype(_QUANT[q["dtype"]] if q else _NP[dtype])
            if off + n * src.itemsize > len(buf):
                raise ModelAssetError(f"TFJS weights are truncated at {w['name']!r}")
            arr = np.frombuffer(buf, src, n, off)
            off += n * src.itemsize
            if q and q["dtype"] != "float16":  # affine: value = q * scale + min
                arr = arr.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            arr = np.round(arr) if dtype == "int32" and q else arr
            out[w["name"]] = arr.astype(_NP[dtype]).reshape(shape)
    return out


# --- op builders: (node, const inputs or None) -> fn(*input tensors) -------------------------
def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(node: Node, x: torch.Tensor, kh: int, kw: int) -> list[int]:
    """``[top, bottom, left, right]`` for NHWC ``x`` per the node's padding attr."""
    s, d, mode = node.get("strides", [1] * 4), node.get("dilations", [1] * 4), node.get("padding")
    if mode == "SAME":
        return [*_same_pads(x.shape[1], kh, s[1], d[1]), *_same_pads(x.shape[2], kw, s[2], d[2])]
    if mode == "EXPLICIT":
        return node.get("explicit_paddings")[2:6]
    return [0, 0, 0, 0]


def _nchw(x: torch.Tensor, p: list[int], value: float = 0.0) -> tuple[torch.Tensor, Any]:
    """NHWC ``x`` -> NCHW view plus the symmetric padding torch should add itself."""
    if p[0] != p[1] or p[2] != p[3]:  # asymmetric: pad in NHWC so layout stays channels-last
        return F.pad(x, (0, 0, p[2], p[3], p[0], p[1]), value=value).permute(0, 3, 1, 2), 0
    return x.permute(0, 3, 1, 2), (p[0], p[2])


_ACTS: dict[str, Callable[[torch.Tensor, Node], torch.Tensor]] = {
    "Relu": lambda y, n: y.relu_(), "Relu6": lambda y, n: y.clamp_(0.0, 6.0),
    "Sigmoid": lambda y, n: y.sigmoid_(), "Tanh": lambda y, n: y.tanh_(),
    "Elu": lambda y, n: F.elu(y, inplace=True),
    "LeakyRelu": lambda y, n: F.leaky_relu(y, n.get("leakyrelu_alpha", 0.2), inplace=True),
}


@dataclass(frozen=True)
class _ConvSpec:
    """A convolution node in torch terms: weights (BN folded), strides, and the fused tail."""

    weight: torch.Tensor  # [out, in/groups, kh, kw], channels-last memory
    bias: torch.Tensor | None
    post: Callable[[torch.Tensor], torch.Tensor]  # PReLU / activation on the NCHW result
    stride: tuple[int, int]
    dilation: tuple[int, int]
    depthwise: bool
    in_channels: int  # per group
    kernel: tuple[int, int]


def _conv_spec(node: Node, c: list) -> _ConvSpec:
    if node.get("data_format", "NHWC") != "NHWC" or c[1] is None:
        raise ModelAssetError(f"node {node.name!r} ({node.op}): only NHWC with constant filters")
    w = c[1].float()  # TF filter: [kh, kw, in, out] (depthwise: [kh, kw, in, multiplier])
    kh, kw, ci, co = w.shape
    dw = "Depthwise" in node.op
    weight = w.permute(2, 3, 0, 1).reshape(ci * co, 1, kh, kw) if dw else w.permute(3, 2, 0, 1)
    bias, act, prelu = None, None, None
    head, *tail = node.get("fused_ops", []) or [None]
    if head == "FusedBatchNorm":  # args: scale, offset, mean, variance
        scale = c[2].float() / torch.sqrt(c[5].float() + node.get("epsilon", 1e-3))
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = c[3].float() - c[4].float() * scale
    elif head == "BiasAdd":
        bias = c[2].float()
    elif head is not None:
        raise ModelAssetError(f"unsupported fused op {head!r} in node {node.name!r}")
    for f in tail:
        if f == "Prelu" and c[3] is not None:  # args: bias, alpha
            prelu = c[3].float().reshape(-1, 1, 1)
        elif f in _ACTS:
            act = _ACTS[f]
        else:
            raise ModelAssetError(f"unsupported fused op {f!r} in node {node.name!r}")

    def post(y: torch.Tensor) -> torch.Tensor:
        if prelu is not None:
            y = torch.where(y > 0, y, y * prelu)
        return act(y, node) if act else y

    s, d = node.get("strides", [1] * 4), node.get("dilations", [1] * 4)
    return _ConvSpec(weight.contiguous(memory_format=torch.channels_last), bias, post, (s[1], s[2]), (d[1], d[2]),
                     dw, ci, (kh, kw))


def _conv(node: Node, c: list) -> Callable:
    k = _conv_spec(node, c)

    def fn(x: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:  # [N,H,W,C] -> [N,H',W',C']
        xc, pad = _nchw(x, _pads(node, x, *k.kernel))
        groups = x.shape[3] if k.depthwise else x.shape[3] // k.in_channels
        return k.post(F.conv2d(xc, k.weight, k.bias, k.stride, pad, k.dilation, groups)).permute(0, 2, 3, 1)

    return fn


def _pool(node: Node, c: list) -> Callable:
    _, kh, kw, _ = node.get("ksize")
    s = node.get("strides")
    is_max = node.op == "MaxPool"

    def fn(x: torch.Tensor) -> torch.Tensor:  # [N,H,W,C] -> [N,H',W',C]
        p = _pads(node, x, kh, kw)
        if is_max:
            xc, pad = _nchw(x, p, -math.inf)
            return F.max_pool2d(xc, (kh, kw), (s[1], s[2]), pad or 0).permute(0, 2, 3, 1)
        xp = F.pad(x, (0, 0, p[2], p[3], p[0], p[1])).permute(0, 3, 1, 2)
        ones = F.pad(torch.ones_like(x[..., :1]), (0, 0, p[2], p[3], p[0], p[1])).permute(0, 3, 1, 2)
        k, st = (kh, kw), (s[1], s[2])  # TF SAME average excludes padding from the count
        y = F.avg_pool2d(xp, k, st, divisor_override=1) / F.avg_pool2d(ones, k, st, divisor_override=1)
        return y.permute(0, 2, 3, 1)

    return fn


def _resize_matrix(n_in: int, n_out: int, align: bool, half: bool) -> torch.Tensor:
    """``[n_out, n_in]`` interpolation weights for TF's bilinear coordinate mode."""
    scale = (n_in - 1) / (n_out - 1) if align and n_out > 1 else n_in / n_out
    i = torch.arange(n_out, dtype=torch.float64)
    src = (i + 0.5) * scale - 0.5 if half else i * scale
    lo = torch.floor(src)
    lerp = src - lo
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((i.long(), lo.clamp(0, n_in - 1).long()), 1 - lerp, accumulate=True)
    m.index_put_((i.long(), (lo + 1).clamp(0, n_in - 1).long()), lerp, accumulate=True)
    return m.float()


def _resize(node: Node, c: list) -> Callable:
    align, half = node.get("align_corners", False), node.get("half_pixel_centers", False)
    cache: dict[tuple, tuple] = {}

    def fn(x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:  # [N,H,W,C] -> [N,h,w,C]
        (n, h, w, ch), (oh, ow) = x.shape, (int(v) for v in size.tolist())
        if (h, w, oh, ow) not in cache:
            cache[h, w, oh, ow] = (_resize_matrix(h, oh, align, half), _resize_matrix(w, ow, align, half))
        ry, rx = cache[h, w, oh, ow]  # two small matmuls beat gather + lerp by ~2x
        y = torch.matmul(ry, x.reshape(n, h, w * ch)).reshape(n * oh, w, ch)  # [N*oh, W, C]
        return torch.matmul(rx, y).reshape(n, oh, ow, ch)

    return fn


def _strided_slice(node: Node, c: list) -> Callable:
    bm, em, sm, nm, el = (node.get(k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask",
                                                   "new_axis_mask", "ellipsis_mask"))

    def fn(x: torch.Tensor, b: torch.Tensor, e: torch.Tensor, st: torch.Tensor) -> torch.Tensor:
        idx: list[Any] = []
        for i, (bi, ei, si) in enumerate(zip(b.tolist(), e.tolist(), st.tolist())):
            if si < 0:
                raise ModelAssetError(f"negative StridedSlice stride in node {node.name!r}")
            bit = 1 << i
            if el & bit:
                idx.append(Ellipsis)
            elif nm & bit:
                idx.append(None)
            elif sm & bit:
                idx.append(int(bi))
            else:
                idx.append(slice(None if bm & bit else bi, None if em & bit else ei, si))
        return x[tuple(idx)]

    return fn


def _gather(node: Node, c: list) -> Callable:
    def fn(x: torch.Tensor, ind: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
        a = int(axis) % x.dim()
        y = x.index_select(a, ind.reshape(-1).long())
        return y.reshape(*x.shape[:a], *ind.shape, *x.shape[a + 1:])

    return fn


def _hard_swish(node: Node, inplace: bool) -> Callable:
    """``hardswish(x) * scale``; the multiply is left out when the scale was folded into the
    convolutions that consume the result (``_fold_hard_swish_scales``)."""
    if node.get("scale", None) == 1.0:
        return lambda x, s: F.hardswish(x, inplace=inplace)
    if inplace:
        return lambda x, s: F.hardswish(x, inplace=True).mul_(s)
    return lambda x, s: F.hardswish(x) * s


def _simple(f: Callable) -> Callable:
    return lambda node, c: (lambda *xs: f(node, *xs))


_BUILDERS: dict[str, Callable[[Node, list], Callable]] = {
    **{op: _conv for op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")},
    "MaxPool": _pool, "AvgPool": _pool, "ResizeBilinear": _resize,
    "StridedSlice": _strided_slice, "GatherV2": _gather,
    **{op: _simple(lambda n, a, b: a + b) for op in ("Add", "AddV2", "BiasAdd")},
    "Sub": _simple(lambda n, a, b: a - b), "Mul": _simple(lambda n, a, b: a * b),
    "RealDiv": _simple(lambda n, a, b: a / b), "Maximum": _simple(lambda n, a, b: torch.maximum(a, b)),
    "Minimum": _simple(lambda n, a, b: torch.minimum(a, b)),
    "FloorDiv": _simple(lambda n, a, b: torch.div(a, b, rounding_mode="floor")),
    "FloorMod": _simple(lambda n, a, b: torch.remainder(a, b)),
    "Equal": _simple(lambda n, a, b: a == b), "Greater": _simple(lambda n, a, b: a > b),
    "Less": _simple(lambda n, a, b: a < b),
    "Relu": _simple(lambda n, x: torch.relu(x)), "Relu6": _simple(lambda n, x: x.clamp(0.0, 6.0)),
    "Sigmoid": _simple(lambda n, x: torch.sigmoid(x)), "Tanh": _simple(lambda n, x: torch.tanh(x)),
    "Exp": _simple(lambda n, x: torch.exp(x)), "Neg": _simple(lambda n, x: -x),
    "Sqrt": _simple(lambda n, x: torch.sqrt(x)), "Rsqrt": _simple(lambda n, x: torch.rsqrt(x)),
    "Identity": _simple(lambda n, x, *_: x),
    "Cast": _simple(lambda n, x: x.to(_TF_TORCH[n.get("DstT")])),
    "Mean": _simple(lambda n, x, ax: x.mean(dim=[int(a) for a in ax.reshape(-1).tolist()],
                                            keepdim=n.get("keep_dims", False))),
    "Reshape": _simple(lambda n, x, shape: x.reshape([int(v) for v in shape.tolist()])),
    "ExpandDims": _simple(lambda n, x, dim: x.unsqueeze(int(dim))),
    "Squeeze": _simple(lambda n, x: x.squeeze(tuple(n.get("squeeze_dims"))) if n.get("squeeze_dims") else x.squeeze()),
    "ConcatV2": _simple(lambda n, *xs: torch.cat(xs[:-1], dim=int(xs[-1]))),
    "Pack": _simple(lambda n, *xs: torch.stack(xs, dim=n.get("axis", 0))),
    "Transpose": _simple(lambda n, x, perm: x.permute(*[int(p) for p in perm.tolist()])),
    "_HardSwish": lambda node, c: _hard_swish(node, inplace=False),  # made by _fuse_hard_swish
    "Softmax": _simple(lambda n, x: torch.softmax(x, dim=-1)),
    "TopKV2": _simple(lambda n, x, k: (lambda v, i: (v, i.to(torch.int32)))(*torch.topk(x, int(k), -1, True, True))),
}


# --- channels-first (NCHW) variants: (node, consts) -> fn on NCHW values ---------------------
_TO_CF, _TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
_CF_AXIS = (0, 2, 3, 1)  # NHWC axis -> NCHW axis
_ELEMENTWISE = frozenset({"Add", "AddV2", "BiasAdd", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "Relu",
                          "Relu6", "Sigmoid", "Tanh", "Exp", "Neg", "Sqrt", "Rsqrt", "Identity", "Cast",
                          "_HardSwish"})


def _cf_pads(node: Node, x: torch.Tensor, kh: int, kw: int, value: float = 0.0) -> tuple[torch.Tensor, Any]:
    """NCHW ``x`` padded per the node's attr: ``(x, torch padding)``; asymmetric pads are applied."""
    p = _pads(node, x.permute(*_TO_NHWC), kh, kw)
    if p[0] != p[1] or p[2] != p[3]:
        return F.pad(x, (p[2], p[3], p[0], p[1]), value=value), 0
    return x, (p[0], p[2])


def _cf_conv(node: Node, c: list) -> Callable:
    k = _conv_spec(node, c)

    def fn(x: torch.Tensor, *_: torch.Tensor) -> torch.Tensor:  # [N,C,H,W] -> [N,C',H',W']
        groups = x.shape[1] if k.depthwise else x.shape[1] // k.in_channels
        x, pad = _cf_pads(node, x, *k.kernel)
        return k.post(F.conv2d(x, k.weight, k.bias, k.stride, pad, k.dilation, groups))

    return fn


def _cf_maxpool(node: Node, c: list) -> Callable:
    _, kh, kw, _ = node.get("ksize")
    s = node.get("strides")

    def fn(x: torch.Tensor) -> torch.Tensor:
        x, pad = _cf_pads(node, x, kh, kw, -math.inf)
        return F.max_pool2d(x, (kh, kw), (s[1], s[2]), pad)

    return fn


def _cf_mean(node: Node, c: list) -> Callable | None:
    if c[1] is None or not node.get("keep_dims", False):
        return None
    axes = sorted(_CF_AXIS[int(a) % 4] for a in c[1].reshape(-1).tolist())
    if axes == [2, 3]:  # exports as GlobalAveragePool, which onnxruntime runs in its blocked layout
        return lambda x, _ax: F.adaptive_avg_pool2d(x, 1)
    return lambda x, _ax: x.mean(dim=axes, keepdim=True)


def _cf_concat(node: Node, c: list) -> Callable | None:
    if c[-1] is None:
        return None
    axis = _CF_AXIS[int(c[-1].reshape(-1)[0]) % 4]
    return lambda *xs: torch.cat(xs[:-1], dim=axis)


def _cf_resize(node: Node, c: list) -> Callable:
    align, half = node.get("align_corners", False), node.get("half_pixel_centers", False)
    cache: dict[tuple, tuple] = {}

    def fn(x: torch.Tensor, size: torch.Tensor) -> torch.Tensor:  # [N,C,H,W] -> [N,C,h,w]
        (h, w), (oh, ow) = x.shape[2:], (int(v) for v in size.tolist())
        if (h, w, oh, ow) not in cache:
            cache[h, w, oh, ow] = (_resize_matrix(h, oh, align, half), _resize_matrix(w, ow, align, half).T.contiguous())
        ry, rxt = cache[h, w, oh, ow]
        return torch.matmul(torch.matmul(ry, x), rxt)  # [oh,H] @ [N,C,H,W] @ [W,ow]

    return fn


_CONV_OPS = ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
_CF_ALWAYS = frozenset({*_CONV_OPS, "MaxPool", "ResizeBilinear"})  # their data input is always a 4-D image
# each returns None when the node's constants do not allow the NCHW form
_CF_BUILDERS: dict[str, Callable[[Node, list], Callable | None]] = {
    **{op: _cf_conv for op in _CONV_OPS},
    "MaxPool": _cf_maxpool, "Mean": _cf_mean, "ConcatV2": _cf_concat, "ResizeBilinear": _cf_resize,
}


def _adapt(fn: Callable, perms: list[tuple[int, ...] | None]) -> Callable:
    """``fn`` with its inputs permuted first where ``perms[k]`` is set."""
    def run(*xs: torch.Tensor) -> torch.Tensor:
        return fn(*(x.permute(*p) if p is not None else x for x, p in zip(xs, perms)))

    return run


# elementwise ops that may overwrite their first input when it dies at that step
_INPLACE: dict[str, Callable] = {
    "Add": torch.Tensor.add_, "AddV2": torch.Tensor.add_, "BiasAdd": torch.Tensor.add_,
    "Mul": torch.Tensor.mul_, "Sub": torch.Tensor.sub_, "RealDiv": torch.Tensor.div_,
    "Relu": torch.Tensor.relu_, "Relu6": lambda x: x.clamp_(0.0, 6.0), "Sigmoid": torch.Tensor.sigmoid_,
}
_ALIASING = {"Const", "Placeholder", "Identity", "Reshape", "ExpandDims", "Squeeze", "StridedSlice",
             "Transpose", "Cast"}  # their result may share storage with their input (or be a caller's)


def _inplace(f_: Callable, fn: Callable, args: list[int]) -> Callable:
    def run(*xs: torch.Tensor) -> torch.Tensor:
        shape = torch.broadcast_shapes(*(x.shape for x in xs))
        for k in args:  # Add/Mul commute; Sub/RealDiv only ever get k == 0
            if xs[k].shape == shape:
                return f_(xs[k], *xs[:k], *xs[k + 1:])
        return fn(*xs)

    return run


class GraphModel:
    """A parsed TFJS graph model: nodes, constant tensors and cached execution plans.

    Attributes:
        nodes: Graph nodes by name.
        consts: Constant tensors by node name (float32 / int32 / bool).
        inputs: Names of the Placeholder nodes.
    """

    def __init__(self, nodes: dict[str, Node], consts: dict[str, torch.Tensor]) -> None:
        self.nodes, self.consts = nodes, consts
        self.inputs = [n.name for n in nodes.values() if n.op == "Placeholder"]
        self._plans: dict[tuple[str, ...], tuple[list, list[Ref]]] = {}

    def _order(self, targets: Sequence[str]) -> list[str]:
        """Names of the nodes the targets depend on, inputs before users (iterative DFS)."""
        order, state, stack = [], {}, [(t, False) for t in reversed(targets)]
        while stack:
            name, done = stack.pop()
            if done:
                order.append(name)
                continue
            if name in state:
                continue
            if name not in self.nodes:
                raise ModelAssetError(f"graph has no node named {name!r}")
            state[name] = 1
            stack.append((name, True))
            stack.extend((i, False) for i, _ in reversed(self.nodes[name].inputs) if i not in state)
        return order

    def _node_fn(self, node: Node, cf: dict[str, bool], channels_first: bool) -> tuple[Callable, bool]:
        """The node's function and whether its output is stored NCHW (see ``run``)."""
        consts = [self.consts.get(i) for i, _ in node.inputs]
        if node.op not in _BUILDERS:
            raise ModelAssetError(f"unsupported TFJS op {node.op!r} (node {node.name!r})")
        if channels_first:
            n_data = len(node.inputs) - 1 if node.op == "ConcatV2" else 1 if node.op in _CF_BUILDERS else len(node.inputs)
            in_cf = [cf.get(i, False) for i, _ in node.inputs[:n_data]]
            small = all(t.numel() <= 1 for t in consts if t is not None)
            fn: Callable | None = None
            if node.op in _CF_ALWAYS or (node.op in _CF_BUILDERS and all(in_cf)):
                fn = _CF_BUILDERS[node.op](node, consts)
            if fn is not None:  # NCHW op: permute its (NHWC, 4-D) data inputs that are not NCHW yet
                perms = [_TO_CF if k < n_data and not in_cf[k] else None for k in range(len(node.inputs))]
                return (_adapt(fn, perms) if any(perms) else fn), True
            if node.op in _ELEMENTWISE and any(in_cf) and small and all(
                    cf.get(i, False) for i, _ in node.inputs if i not in self.consts):
                return _BUILDERS[node.op](node, consts), True
        fn = _BUILDERS[node.op](node, consts)
        perms = [_TO_NHWC if cf.get(i, False) else None for i, _ in node.inputs]
        return (_adapt(fn, perms) if any(perms) else fn), False

    def _compile(self, outputs: tuple[str, ...], channels_first: bool = False) -> tuple[list, list[Ref]]:
        """Plan: ``(name, fn, inputs, values to free after, output is NCHW)`` per node, in order."""
        refs = [_ref(o) for o in outputs]
        keep = {r[0] for r in refs} | set(self.consts)
        order = [n for n in self._order([r[0] for r in refs]) if self.nodes[n].op not in ("Const", "Placeholder")]
        last = {i: pos for pos, n in enumerate(order) for i, _ in self.nodes[n].inputs if i not in keep}
        viewed = {i for n in order if self.nodes[n].op in _ALIASING for i, _ in self.nodes[n].inputs}
        steps = []
        cf: dict[str, bool] = {}
        for pos, name in enumerate(order):
            node = self.nodes[name]
            fn, cf[name] = self._node_fn(node, cf, channels_first)
            names = [i for i, _ in node.inputs]
            dying = [k for k, i in enumerate(names) if last.get(i) == pos and names.count(i) == 1
                     and self.nodes[i].op not in _ALIASING and i not in viewed]
            dying = [k for k in dying if k == 0 or node.op in ("Add", "AddV2", "Mul")]
            if node.op == "_HardSwish" and dying == [0]:
                fn = _hard_swish(node, inplace=True)
            elif node.op in _INPLACE and dying:
                fn = _inplace(_INPLACE[node.op], fn, dying)
            frees = [i for i in dict.fromkeys(names) if last.get(i) == pos]
            steps.append((name, fn, node.inputs, frees, cf[name]))
        return steps, refs

    def run(self, inputs: dict[str, torch.Tensor], outputs: Sequence[str], *,
            channels_first: bool = False) -> dict[str, torch.Tensor]:
        """Evaluate ``outputs`` (``"name"`` or ``"name:k"``) given the Placeholder ``inputs``.

        Inputs are never modified. Call under ``torch.inference_mode()`` for speed.

        Args:
            inputs: Placeholder values (TF layout, NHWC for images).
            outputs: The values wanted.
            channels_first: Store 4-D values NCHW inside the graph (see the module notes);
                inputs and outputs keep their NHWC meaning either way.

        Raises:
            ModelAssetError: for an op this executor does not implement (named), a missing
                input or an unknown node name.
        """
        key = (*outputs, f"<channels_first={channels_first}>")
        if key not in self._plans:
            self._plans[key] = self._compile(tuple(outputs), channels_first)
        steps, refs = self._plans[key]
        env: dict[str, tuple] = {k: (v,) for k, v in self.consts.items()}
        env.update({k: (v,) for k, v in inputs.items()})
        stored_cf: dict[str, bool] = {}
        for name, fn, ins, frees, out_cf in steps:
            try:
                args = [env[i][k] for i, k in ins]
            except KeyError as e:
                raise ModelAssetError(f"graph input {e.args[0]!r} was not given") from e
            y = fn(*args)
            env[name] = y if isinstance(y, tuple) else (y,)
            stored_cf[name] = out_cf
            for f in frees:
                del env[f]
        return {o: env[n][k].permute(*_TO_NHWC).contiguous() if stored_cf.get(n) else env[n][k]
                for o, (n, k) in zip(outputs, refs)}


def _fuse_hard_swish(nodes: dict[str, Node], consts: dict[str, torch.Tensor]) -> dict[str, Node]:
    """Rewrite TF's hard-swish ``(x * c) * relu6(x + 3)`` into one ``_HardSwish(x, 6c)`` node.

    Only chains whose intermediate values have no other consumer are fused (4 passes -> 1).
    """
    users = Counter(i for n in nodes.values() for i, _ in n.inputs)

    def split(node: Node | None) -> tuple[Ref | None, float | None]:  # (x, scalar const)
        if node is None or len(node.inputs) != 2 or users[node.name] != 1:
            return None, None
        for x, (c, _) in (node.inputs, node.inputs[::-1]):
            t = consts.get(c)
            if t is not None and t.numel() == 1 and t.is_floating_point():
                return x, float(t)
        return None, None

    out = dict(nodes)
    for n in nodes.values():
        for (r, _), (a, _) in ((n.inputs, n.inputs[::-1]) if n.op == "Mul" and len(n.inputs) == 2 else ()):
            relu6, mul = nodes.get(r), nodes.get(a)
            if relu6 is None or relu6.op != "Relu6" or users[r] != 1 or mul is None or mul.op != "Mul":
                continue
            add = nodes.get(relu6.inputs[0][0])
            (x, three), (x2, c) = split(add if add and add.op in ("Add", "AddV2") else None), split(mul)
            if x is not None and x == x2 and three == 3.0 and c is not None:
                scale = f"{n.name}/_hard_swish_scale"
                consts[scale] = torch.tensor(6.0 * c)
                out[scale] = Node(scale, "Const", (), {})
                out[n.name] = Node(n.name, "_HardSwish", (x, (scale, 0)), {"scale": {"f": 6.0 * c}})
                break
    return _fold_hard_swish_scales(out, consts)


def _fold_hard_swish_scales(nodes: dict[str, Node], consts: dict[str, torch.Tensor]) -> dict[str, Node]:
    """Move a ``_HardSwish`` scale into the filters of the convolutions it feeds.

    TFJS stores hard-swish's 1/6 as float16, so the fused scale is 1.00012, not 1; a separate
    multiply by it costs little in torch but, in the ONNX export, splits onnxruntime's blocked
    convolution chain with a reorder on each side (20 of them in CenterNet). ``conv(s * h, W)
    = conv(h, s * W)``, so when every consumer is a convolution on that input whose filter has
    no other user, the filters are scaled instead (same function, float32 rounding apart).
    """
    users: dict[str, list[Node]] = {}
    for n in nodes.values():
        for i, _ in n.inputs:
            users.setdefault(i, []).append(n)
    out = dict(nodes)
    for n in nodes.values():
        scale = n.get("scale")
        cons = users.get(n.name, [])
        if n.op != "_HardSwish" or scale in (None, 1.0) or not cons:
            continue
        if not all(c.op in _CONV_OPS and c.inputs[0] == (n.name, 0) and len(users.get(c.inputs[1][0], [])) == 1
                   and c.inputs[1][0] in consts for c in cons):
            continue
        for c in cons:
            consts[c.inputs[1][0]] = consts[c.inputs[1][0]] * scale
        consts[n.inputs[1][0]] = torch.tensor(1.0)
        out[n.name] = Node(n.name, n.op, n.inputs, {"scale": {"f": 1.0}})
    return out


def load_graph_model(json_path: str | Path) -> GraphModel:
    """Parse a TFJS graph-model ``model.json`` and decode its weight shards next to it.

    Raises:
        ModelAssetError: when the file is unreadable, not a graph model, or its weights are bad.
    """
    path = Path(json_path)
    try:
        doc = json.loads(path.read_text())
        raw_nodes = doc["modelTopology"]["node"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelAssetError(f"{path} is not a readable TFJS graph model: {e}") from e
    nodes = {n["name"]: Node(n["name"], n["op"], tuple(_ref(i) for i in n.get("input", []) if not i.startswith("^")),
                             n.get("attr", {})) for n in raw_nodes}
    weights = _decode_weights(doc.get("weightsManifest", []), path.parent)
    consts = {}
    for n in nodes.values():
        if n.op == "Const":
            if n.name not in weights:  # tfjs-converter moves every Const value into the manifest
                raise ModelAssetError(f"constant {n.name!r} has no entry in the weights manifest")
            consts[n.name] = torch.from_numpy(np.ascontiguousarray(weights[n.name]))
    return GraphModel(_fuse_hard_swish(nodes, consts), consts)

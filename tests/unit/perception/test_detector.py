"""Tests of the TFJS graph executor (tiny graphs built here) and the CenterNet detector.

The executor tests compare against numpy references written from TensorFlow's definitions
(SAME padding puts the smaller half before; ResizeBilinear's three coordinate modes). The
detector tests need the installed ``detector`` asset and are marked ``slow``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oculi.config import Settings
from oculi.core.errors import ModelAssetError
from oculi.perception.detector import COCO_CLASSES, CenterNetDetector, decode, letterbox, nms
from oculi.perception.tfjs import load_graph_model

# --- building tiny TFJS graph models -------------------------------------------------------


def _s(v: str) -> dict:
    return {"s": base64.b64encode(v.encode()).decode()}


def _ints(v: list[int]) -> dict:
    return {"list": {"i": [str(i) for i in v]}}


def _node(name: str, op: str, inputs: list[str] = (), **attr: dict) -> dict:
    return {"name": name, "op": op, "input": list(inputs), "attr": dict(attr)}


def _write_model(tmp_path: Path, nodes: list[dict], weights: dict[str, tuple[np.ndarray, str]]) -> Path:
    """Write ``model.json`` + ``w.bin``; ``weights`` maps name -> (array, "float32" | "int32" |
    "float16" | "uint8"), the last two stored quantised like tfjs-converter does."""
    entries, chunks = [], []
    for name, (arr, kind) in weights.items():
        e: dict = {"name": name, "shape": list(arr.shape), "dtype": "int32" if kind == "int32" else "float32"}
        if kind == "float16":
            e["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            chunks.append(arr.astype(np.float16).tobytes())
        elif kind == "uint8":
            lo, hi = float(arr.min()), float(arr.max())
            scale = (hi - lo) / 255 or 1.0
            e["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
            chunks.append(np.round((arr - lo) / scale).astype(np.uint8).tobytes())
        else:
            chunks.append(arr.astype(np.int32 if kind == "int32" else np.float32).tobytes())
        entries.append(e)
        nodes = [_node(name, "Const")] + nodes
    (tmp_path / "w.bin").write_bytes(b"".join(chunks))
    doc = {"format": "graph-model", "modelTopology": {"node": nodes},
           "weightsManifest": [{"paths": ["w.bin"], "weights": entries}]}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    return path


def _placeholder(name: str = "x") -> dict:
    return _node(name, "Placeholder")


def _tf_same(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _ref_conv(x: np.ndarray, w: np.ndarray, s: int, depthwise: bool = False) -> np.ndarray:
    """TF Conv2D / DepthwiseConv2dNative, NHWC, SAME padding, by definition (float64)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    (t, b), (l, r) = _tf_same(h, kh, s), _tf_same(wd, kw, s)
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    oh, ow = -(-h // s), -(-wd // s)
    co = c * w.shape[3] if depthwise else w.shape[3]
    out = np.zeros((n, oh, ow, co))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * s : i * s + kh, j * s : j * s + kw, :]  # [N, kh, kw, C]
            if depthwise:
                out[:, i, j] = np.einsum("nhwc,hwcm->ncm", patch, w).reshape(n, -1)
            else:
                out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w)
    return out


def _ref_resize(x: np.ndarray, oh: int, ow: int, align: bool, half: bool) -> np.ndarray:
    """TF ResizeBilinear by its CPU kernel's formulas (float64)."""

    def coords(n_in: int, n_out: int):
        scale = (n_in - 1) / (n_out - 1) if align and n_out > 1 else n_in / n_out
        res = []
        for i in range(n_out):
            src = (i + 0.5) * scale - 0.5 if half else i * scale
            lo = np.floor(src)
            res.append((int(max(lo, 0)), int(min(np.ceil(src), n_in - 1)), src - lo))
        return res

    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i, (y0, y1, ly) in enumerate(coords(x.shape[1], oh)):
        for j, (x0, x1, lx) in enumerate(coords(x.shape[2], ow)):
            top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * lx
            bot = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * lx
            out[:, i, j] = top + (bot - top) * ly
    return out


CONV_ATTR = dict(padding=_s("SAME"), data_format=_s("NHWC"), dilations=_ints([1, 1, 1, 1]))

# --- executor tests ------------------------------------------------------------------------


@pytest.mark.parametrize("cf", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("hw", [(6, 7), (7, 6), (8, 8)])
def test_conv2d_same_stride2_matches_tf_definition(tmp_path: Path, hw: tuple[int, int], cf: bool) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    conv = _node("y", "Conv2D", ["x", "w"], strides=_ints([1, 2, 2, 1]), **CONV_ATTR)
    path = _write_model(tmp_path, [_placeholder(), conv], {"w": (w, "float32")})
    x = rng.normal(size=(1, *hw, 2)).astype(np.float32)
    y = load_graph_model(path).run({"x": torch.from_numpy(x)}, ["y"], channels_first=cf)["y"]
    ref = _ref_conv(x, w, 2)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y.numpy(), ref, atol=1e-4)


@pytest.mark.parametrize("cf", [False, True], ids=["nhwc", "nchw"])
def test_fused_depthwise_and_fused_conv_with_bias_and_activation(tmp_path: Path, cf: bool) -> None:
    rng = np.random.default_rng(1)
    dw = rng.normal(size=(5, 5, 3, 2)).astype(np.float32)  # channel multiplier 2
    b1 = rng.normal(size=6).astype(np.float32)
    pw = rng.normal(size=(1, 1, 6, 4)).astype(np.float32)
    b2 = rng.normal(size=4).astype(np.float32)
    nodes = [
        _placeholder(),
        _node("d", "FusedDepthwiseConv2dNative", ["x", "dw", "b1"], strides=_ints([1, 2, 2, 1]),
              fused_ops={"list": {"s": [_s("BiasAdd")["s"], _s("Relu6")["s"]]}}, num_args={"i": "1"}, **CONV_ATTR),
        _node("p", "_FusedConv2D", ["d", "pw", "b2"], strides=_ints([1, 1, 1, 1]),
              fused_ops={"list": {"s": [_s("BiasAdd")["s"], _s("Relu")["s"]]}}, num_args={"i": "1"}, **CONV_ATTR),
    ]
    path = _write_model(tmp_path, nodes, {"dw": (dw, "float32"), "b1": (b1, "float32"), "pw": (pw, "float32"),
                                          "b2": (b2, "float32")})
    x = rng.normal(size=(1, 9, 10, 3)).astype(np.float32) * 3
    y = load_graph_model(path).run({"x": torch.from_numpy(x)}, ["p"], channels_first=cf)["p"].numpy()
    d = np.clip(_ref_conv(x, dw, 2, depthwise=True) + b1, 0, 6)
    ref = np.maximum(_ref_conv(d, pw, 1) + b2, 0)
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_quantised_and_int32_weights_decode(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    f16 = rng.normal(size=(3, 4)).astype(np.float32)
    u8 = rng.uniform(-2, 5, size=(7,)).astype(np.float32)
    i32 = np.array([[1, -2, 3]], np.int32)
    path = _write_model(tmp_path, [], {"f16": (f16, "float16"), "u8": (u8, "uint8"), "i32": (i32, "int32"),
                                       "f32": (np.float32([1.5]), "float32")})
    c = load_graph_model(path).consts
    assert c["f16"].dtype == torch.float32 and c["f16"].shape == (3, 4)
    np.testing.assert_array_equal(c["f16"].numpy(), f16.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(c["u8"].numpy(), u8, atol=(u8.max() - u8.min()) / 255 / 2 + 1e-6)
    assert c["i32"].dtype == torch.int32 and c["i32"].tolist() == [[1, -2, 3]]
    assert c["f32"].tolist() == [1.5]


def test_truncated_weights_raise_model_asset_error(tmp_path: Path) -> None:
    path = _write_model(tmp_path, [], {"w": (np.ones((4, 4), np.float32), "float32")})
    (tmp_path / "w.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ModelAssetError, match="truncated"):
        load_graph_model(path)


@pytest.mark.parametrize("cf", [False, True], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("align,half", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("size", [(8, 10), (3, 5)])
def test_resize_bilinear_matches_tf_modes(tmp_path: Path, align: bool, half: bool, size: tuple[int, int],
                                          cf: bool) -> None:
    nodes = [_placeholder(), _node("y", "ResizeBilinear", ["x", "size"], align_corners={"b": align},
                                   half_pixel_centers={"b": half})]
    path = _write_model(tmp_path, nodes, {"size": (np.array(size, np.int32), "int32")})
    x = np.random.default_rng(3).normal(size=(2, 4, 5, 3)).astype(np.float32)
    y = load_graph_model(path).run({"x": torch.from_numpy(x)}, ["y"], channels_first=cf)["y"].numpy()
    np.testing.assert_allclose(y, _ref_resize(x, *size, align, half), atol=1e-5)


@pytest.mark.parametrize("cf", [False, True], ids=["nhwc", "nchw"])
def test_maxpool_same_and_detection_tail_ops(tmp_path: Path, cf: bool) -> None:
    """MaxPool/Equal/Cast/Reshape/TopKV2/FloorDiv/FloorMod/GatherV2/StridedSlice/ConcatV2."""
    i32 = lambda *v: (np.array(v, np.int32), "int32")  # noqa: E731
    nodes = [
        _placeholder(),
        _node("mp", "MaxPool", ["x"], ksize=_ints([1, 3, 3, 1]), strides=_ints([1, 1, 1, 1]), padding=_s("SAME"),
              data_format=_s("NHWC")),
        _node("eq", "Equal", ["x", "mp"]),
        _node("cast", "Cast", ["eq"], DstT={"type": "DT_FLOAT"}),
        _node("peaks", "Mul", ["x", "cast"]),
        _node("flat", "Reshape", ["peaks", "shape"]),
        _node("topk", "TopKV2", ["flat", "k"], sorted={"b": True}),
        _node("cls", "FloorMod", ["topk:1", "nc"]),
        _node("cell", "FloorDiv", ["topk:1", "nc"]),
        _node("g", "GatherV2", ["table", "cls", "axis"]),
        _node("mid", "StridedSlice", ["x", "b", "e", "s"], begin_mask={"i": "1"}, end_mask={"i": "1"},
              shrink_axis_mask={"i": "8"}),
        _node("cat", "ConcatV2", ["topk", "g", "cax"]),
    ]
    weights = {"shape": i32(1, -1), "k": i32(3), "nc": i32(2), "axis": i32(0), "cax": i32(1),
               "table": (np.float32([10, 20]), "float32"), "b": i32(0, 1, 0, 1), "e": i32(1, 3, 4, 2),
               "s": i32(1, 1, 2, 1)}
    model = load_graph_model(_write_model(tmp_path, nodes, weights))
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 0, 0, 1], x[0, 2, 3, 0], x[0, 1, 1, 0], x[0, 0, 2, 0] = 0.9, 0.8, 0.5, 0.7  # (1,1) is not a peak
    out = model.run({"x": torch.from_numpy(x)}, ["topk", "topk:1", "cls", "cell", "g", "mid", "cat", "mp"],
                    channels_first=cf)
    np.testing.assert_allclose(out["topk"].numpy(), [[0.9, 0.8, 0.7]], atol=1e-6)
    idx = [0 * 8 + 0 * 2 + 1, 2 * 8 + 3 * 2 + 0, 0 * 8 + 2 * 2 + 0]  # flat NHWC index = (y*W + x)*C + c
    assert out["topk:1"].tolist() == [idx] and out["topk:1"].dtype == torch.int32
    assert out["cls"].tolist() == [[1, 0, 0]] and out["cell"].tolist() == [[i // 2 for i in idx]]
    assert out["g"].tolist() == [[20.0, 10.0, 10.0]]
    np.testing.assert_array_equal(out["mid"].numpy(), x[:, 1:3, 0:4:2, 1])
    assert out["cat"].shape == (1, 6)
    mp = out["mp"].numpy()
    assert mp[0, 0, 0, 0] == 0.5 and mp[0, 3, 3, 0] == 0.8  # corners see only their 2x2 (SAME)


def test_only_needed_subgraph_runs_and_unsupported_op_is_named(tmp_path: Path) -> None:
    nodes = [_placeholder(), _node("ok", "Relu", ["x"]), _node("bad", "FancyOp", ["x"]),
             _node("twice", "Add", ["ok", "ok"]), _node("alias", "Identity", ["ok"]),
             _node("neg", "Sigmoid", ["alias"])]
    model = load_graph_model(_write_model(tmp_path, nodes, {}))
    x = torch.tensor([[-1.0, 2.0]])
    out = model.run({"x": x}, ["twice", "neg", "ok"])
    assert out["twice"].tolist() == [[0.0, 4.0]] and out["ok"].tolist() == [[0.0, 2.0]]  # no in-place clobbering
    assert torch.allclose(out["neg"], torch.sigmoid(torch.tensor([[0.0, 2.0]])))
    assert x.tolist() == [[-1.0, 2.0]]
    with pytest.raises(ModelAssetError, match="FancyOp"):
        model.run({"x": x}, ["bad"])
    with pytest.raises(ModelAssetError, match="nope"):
        model.run({"x": x}, ["nope"])


def test_in_place_reuse_never_clobbers_a_live_alias(tmp_path: Path) -> None:
    nodes = [_placeholder(), _node("a", "Relu", ["x"]), _node("b", "Identity", ["a"]),
             _node("c", "Sigmoid", ["a"]), _node("d", "Add", ["b", "c"]), _node("e", "Relu6", ["d"])]
    model = load_graph_model(_write_model(tmp_path, nodes, {}))
    x = torch.tensor([-1.0, 0.5, 3.0])
    a = torch.relu(x)
    torch.testing.assert_close(model.run({"x": x}, ["e"])["e"], torch.clamp(a + torch.sigmoid(a), 0, 6))


def test_hard_swish_chain_is_fused_and_exact(tmp_path: Path) -> None:
    nodes = [_placeholder(), _node("a", "Mul", ["c6", "x"]), _node("s", "Add", ["x", "three"]),
             _node("r", "Relu6", ["s"]), _node("y", "Mul", ["a", "r"])]
    model = load_graph_model(_write_model(tmp_path, nodes, {"c6": (np.float32(1 / 6), "float16"),
                                                            "three": (np.float32(3), "float16")}))
    assert model.nodes["y"].op == "_HardSwish"
    x = torch.linspace(-5, 5, 41)
    c = float(np.float32(np.float16(1 / 6)))
    torch.testing.assert_close(model.run({"x": x}, ["y"])["y"], x * c * torch.clamp(x + 3, 0, 6))


# --- detector pieces without the model ---------------------------------------------------------


def test_coco_classes() -> None:
    assert len(COCO_CLASSES) == 80 and len(set(COCO_CLASSES)) == 80
    assert COCO_CLASSES[0] == "person" and COCO_CLASSES[41] == "cup" and COCO_CLASSES[60] == "dining table"
    assert all(c == c.lower() for c in COCO_CLASSES)


def test_decode_peaks_and_box_layout() -> None:
    kp = np.zeros((128, 128, 80), np.float32)
    wh = np.zeros((128, 128, 4), np.float32)
    kp[10, 20, 41] = 0.9
    kp[10, 21, 41] = 0.5  # neighbour of a higher peak: suppressed
    kp[100, 5, 0] = 0.4
    kp[50, 50, 3] = 0.2  # below threshold
    wh[10, 20] = [8, 4, 12, 16]
    det = decode(kp, wh, threshold=0.3)
    assert det.shape == (2, 6)
    np.testing.assert_allclose(det[0], [20 * 4 - 8, 10 * 4 - 4, 20 * 4 + 12, 10 * 4 + 16, 0.9, 41], rtol=1e-6)
    assert det[1, 5] == 0 and det[1, 4] == pytest.approx(0.4)
    assert decode(np.zeros_like(kp), wh, 0.3).shape == (0, 6)


@pytest.mark.parametrize("power", [8.0, 200.0])  # dense path (many candidates) and sparse path
def test_decode_finds_exactly_the_3x3_maxima(power: float) -> None:
    rng = np.random.default_rng(5)
    kp = rng.random((128, 128, 80)).astype(np.float32) ** power
    wh = rng.random((128, 128, 4)).astype(np.float32)
    pad = np.pad(kp, ((1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    local = np.max([pad[i : i + 128, j : j + 128] for i in range(3) for j in range(3)], axis=0)
    ref = np.sort(kp[(kp >= 0.3) & (kp >= local)])[::-1]
    det = decode(kp, wh, 0.3, max_peaks=10**7)
    np.testing.assert_array_equal(det[:, 4], ref)
    top = decode(kp, wh, 0.3)
    np.testing.assert_array_equal(top[:, 4], ref[:100])


def test_nms_suppresses_overlaps_only() -> None:
    boxes = np.float32([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.5]])
    scores = np.float32([0.8, 0.9, 0.7, 0.1])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes[:0], scores[:0]).tolist() == []


def test_letterbox_geometry() -> None:
    img = Image.new("RGB", (640, 480), (200, 100, 50))
    px, (sx, sy, dx, dy) = letterbox(img)
    assert px.shape == (512, 512, 3) and px.dtype == np.float32
    assert (sx, dx, dy) == (0.8, 0, 64) and sy == pytest.approx(0.8)
    assert px[0, 0].tolist() == [0, 0, 0] and px[256, 256].tolist() == [200, 100, 50]
    assert letterbox(img.convert("L"))[0].shape == (512, 512, 3)


# --- the real model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> CenterNetDetector:
    det = CenterNetDetector(Settings())
    try:
        det.load()
    except ModelAssetError as e:
        pytest.skip(f"detector asset not installed: {e}")
    return det


def _photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)())


@pytest.mark.slow
def test_astronaut_is_one_person(detector: CenterNetDetector) -> None:
    img = _photo("astronaut")
    objs = detector.detect(img)
    assert [o.label for o in objs] == ["person"]
    box = objs[0].box
    cx, cy = box.center
    assert 0.25 * img.width < cx < 0.6 * img.width and 0.3 * img.height < cy < 0.75 * img.height
    assert box.width > 0.5 * img.width and box.height > 0.8 * img.height


@pytest.mark.slow
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_results_are_well_formed(detector: CenterNetDetector, name: str) -> None:
    img = _photo(name)
    objs = detector.detect(img)
    assert [o.score for o in objs] == sorted((o.score for o in objs), reverse=True)
    for o in objs:
        assert o.label in COCO_CLASSES and 0.0 <= o.score <= 1.0
        assert o.score >= detector.settings.detector_threshold
        assert 0 <= o.box.x1 < o.box.x2 <= img.width and 0 <= o.box.y1 < o.box.y2 <= img.height


@pytest.mark.slow
def test_coffee_has_a_cup_and_chelsea_a_cat(detector: CenterNetDetector) -> None:
    cups = [o for o in detector.detect(_photo("coffee")) if o.label == "cup"]
    assert cups and cups[0].score > 0.4
    assert detector.detect(_photo("chelsea"))[0].label == "cat"


@pytest.mark.slow
def test_blank_image_has_no_objects(detector: CenterNetDetector) -> None:
    assert detector.detect(Image.new("RGB", (640, 480), (128, 128, 128))) == []


@pytest.mark.slow
def test_channels_first_plan_matches_nhwc_on_squeeze_excite_concat_and_hard_swish(tmp_path: Path) -> None:
    """MobileNetV3's blocks: conv -> hard-swish -> depthwise conv, squeeze-excite (Mean over H, W,
    1x1 convs, hard-sigmoid, broadcast Mul), a residual Add, upsampling and a channel concat.
    The NCHW plan computes the same function, and the hard-swish scale is folded into the
    depthwise filter that consumes it."""
    rng = np.random.default_rng(5)
    f32 = lambda *shape: (rng.normal(size=shape).astype(np.float32) * 0.5, "float32")  # noqa: E731
    fused = lambda *ops: {"list": {"s": [_s(o)["s"] for o in ops]}}  # noqa: E731
    one = _ints([1, 1, 1, 1])
    nodes = [
        _placeholder(),
        _node("c1", "_FusedConv2D", ["x", "w1", "b1"], strides=one, fused_ops=fused("BiasAdd"), **CONV_ATTR),
        _node("hs_a", "Mul", ["sixth", "c1"]), _node("hs_s", "Add", ["c1", "three"]),
        _node("hs_r", "Relu6", ["hs_s"]), _node("hs", "Mul", ["hs_a", "hs_r"]),
        _node("dw", "DepthwiseConv2dNative", ["hs", "wd"], strides=_ints([1, 2, 2, 1]), **CONV_ATTR),
        _node("m", "Mean", ["dw", "axes"], keep_dims={"b": True}),
        _node("se1", "_FusedConv2D", ["m", "w2", "b2"], strides=one, fused_ops=fused("BiasAdd", "Relu"), **CONV_ATTR),
        _node("se2", "_FusedConv2D", ["se1", "w3", "b3"], strides=one, fused_ops=fused("BiasAdd"), **CONV_ATTR),
        _node("hsig", "Add", ["se2", "three"]), _node("hsig6", "Relu6", ["hsig"]),
        _node("gate", "Mul", ["hsig6", "sixth"]), _node("se", "Mul", ["dw", "gate"]),
        _node("res", "Add", ["se", "dw"]),
        _node("up", "ResizeBilinear", ["res", "size"], align_corners={"b": False}, half_pixel_centers={"b": False}),
        _node("cat", "ConcatV2", ["up", "c1", "cax"]), _node("out", "Sigmoid", ["cat"]),
        _node("flat", "Reshape", ["cat", "shape"]),
    ]
    weights = {"w1": f32(3, 3, 3, 4), "b1": f32(4), "wd": f32(3, 3, 4, 1), "w2": f32(1, 1, 4, 2), "b2": f32(2),
               "w3": f32(1, 1, 2, 4), "b3": f32(4), "sixth": (np.float32(1 / 6), "float16"),
               "three": (np.float32(3), "float32"), "axes": (np.array([1, 2], np.int32), "int32"),
               "size": (np.array([8, 10], np.int32), "int32"), "cax": (np.array([3], np.int32), "int32"),
               "shape": (np.array([1, -1], np.int32), "int32")}
    model = load_graph_model(_write_model(tmp_path, nodes, weights))
    assert model.nodes["hs"].op == "_HardSwish" and model.nodes["hs"].get("scale") == 1.0  # folded into "wd"
    x = torch.from_numpy(rng.normal(size=(1, 8, 10, 3)).astype(np.float32))
    nhwc = model.run({"x": x}, ["out", "flat", "m"])
    nchw = model.run({"x": x}, ["out", "flat", "m"], channels_first=True)
    for k in nhwc:
        assert nchw[k].shape == nhwc[k].shape
        torch.testing.assert_close(nchw[k], nhwc[k], atol=1e-5, rtol=1e-5)
    # and the NHWC plan itself is TF's function: hard-swish with the float16 1/6, by definition
    c = float(np.float32(np.float16(1 / 6)))
    c1 = _ref_conv(x.numpy(), weights["w1"][0], 1) + weights["b1"][0]
    hs = c1 * c * np.clip(c1 + 3, 0, 6)
    dw = _ref_conv(hs, weights["wd"][0], 2, depthwise=True)
    np.testing.assert_allclose(nhwc["m"].numpy(), dw.mean(axis=(1, 2), keepdims=True), atol=1e-5)


def test_detect_batch_equals_detect(detector: CenterNetDetector) -> None:
    imgs = [_photo("coffee"), _photo("astronaut")]
    assert detector.detect_batch(imgs) == [detector.detect(im) for im in imgs]
    assert detector.detect_batch([]) == []
    detector.load()  # idempotent
    assert detector.name == "centernet-mbv3"


@pytest.mark.slow
def test_decode_matches_the_graphs_own_detections(detector: CenterNetDetector) -> None:
    """Our numpy decode reproduces ``tower_0/detections`` (layout x1,y1,x2,y2,score,class)."""
    from oculi.assets.manager import require_asset
    from oculi.perception.detector import MODEL_JSON

    graph = load_graph_model(require_asset("detector", detector.settings) / MODEL_JSON)
    px, _ = letterbox(_photo("coffee"))
    with torch.inference_mode():
        out = graph.run({"tower_0/images": torch.from_numpy(px[None])},
                        ["tower_0/keypoints", "tower_0/wh", "tower_0/detections"])
    ref = out["tower_0/detections"][0].numpy()
    ref = ref[ref[:, 4] >= 0.1]
    ours = decode(out["tower_0/keypoints"][0].numpy(), out["tower_0/wh"][0].numpy(), 0.1)
    assert len(ours) == len(ref) > 0
    np.testing.assert_allclose(ours, ref, atol=1e-3)


@pytest.mark.slow
def test_torch_and_onnx_runtimes_agree(detector: CenterNetDetector) -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") is None and not any(
        p.name.startswith("centernet") for p in (detector.settings.home / "cache").glob("*.onnx")
    ):
        pytest.skip("onnx is not installed and no exported graph is cached")
    dets = {rt: CenterNetDetector(detector.settings, runtime=rt) for rt in ("torch", "onnx")}
    img = _photo("coffee")
    a, b = (dets[rt].detect(img) for rt in ("torch", "onnx"))
    assert [o.label for o in a] == [o.label for o in b]
    for x, y in zip(a, b):
        assert x.score == pytest.approx(y.score, abs=1e-4)
        assert x.box.to_list() == pytest.approx(y.box.to_list(), abs=0.5)


@pytest.mark.slow
def test_torch_runtime_caches_its_trace_and_recovers_from_a_bad_cache(
    detector: CenterNetDetector, tmp_path: Path
) -> None:
    (tmp_path / "assets").symlink_to(detector.settings.assets_dir, target_is_directory=True)
    settings = Settings(home=tmp_path)
    img = _photo("coffee")
    first = CenterNetDetector(settings, runtime="torch")
    expected = first.detect(img)
    (script,) = (tmp_path / "cache").glob("centernet-mbv3-*.pt")
    again = CenterNetDetector(settings, runtime="torch")
    assert again.detect(img) == expected and again.runtime == "torch"
    script.write_bytes(b"not a TorchScript archive")
    healed = CenterNetDetector(settings, runtime="torch")
    assert healed.detect(img) == expected
    assert script.stat().st_size > 1_000_000  # traced and written again


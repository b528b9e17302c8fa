"""Reading text with PP-OCRv4 (RapidOCR's ONNX models and pre/post-processing).

``RapidOCRReader`` builds ``rapidocr_onnxruntime.RapidOCR`` from the ``ocr`` asset's model
files and drives its detector and recogniser itself, because captions call it on every image
and most photos contain no text:

1. **Probe** (images whose longer side exceeds ``PROBE_SIDE``): the DB text detector runs on
   a copy with the longer side at ``PROBE_SIDE`` (416) px; if its probability map has no
   text-like blob (``> 0.3`` over at least ``PROBE_MIN_AREA`` px), the image has no
   readable text and ``[]`` is returned. A 416 px probe still fires on a 192x96 px page of
   small print pasted into a 640x480 photo, where a 320 px probe did not.
2. **Detection** at the working scale: the longer side reduced to at most ``DET_MAX_SIDE``
   (960) px, small images enlarged to at least ``DET_MIN_SIDE`` px. Box scores use the
   polygon mean (``score_mode="slow"``): with RapidOCR's default rectangle mean, slightly
   curved lines of a photographed page (scikit-image ``page()``, line 4) fall under the box
   threshold and vanish. Dilation of the binary map is off so tightly spaced lines do not
   merge.
3. **Recognition** on crops taken from the full-resolution image; crops shorter than the
   recogniser's 48 px input are enlarged with bicubic filtering first. This is the cheap
   mitigation for PP-OCRv4 dropping English spaces: on ``page()`` (text ~10 px high) the
   recogniser's own bilinear upscaling gives "background.Thesemarkers", "histogram of
   greyvalues"; bicubic crops give "background. These markers", "histogram of grey
   values".
4. **Word spaces**: the recogniser still often merges English words ("QCPASSED",
   "OPEN24HOURS"). The character positions (CTC columns) are mapped back to the crop and a
   space is inserted where a blank column run of the crop (``_word_gaps``) lies between two
   characters. On 150 synthetic lines (35 system fonts, 12-48 px, some blurred or
   inverted) exact lines rose from 82 to 133; 1 line got a spurious space, 14 still miss
   one (italic text, whose slanted letters leave no blank columns, is the usual case).
5. Results under ``MIN_SCORE`` (and single characters under ``MIN_SCORE_SINGLE``) are
   dropped; text is NFKC-normalised (full-width "（" becomes "(").
6. Lines are put in reading order: boxes are grouped into rows (each box's vertical centre
   inside the other's vertical extent, little horizontal overlap), rows top to bottom,
   boxes left to right within a row.

The 180° angle classifier is off (``use_cls=False``): it costs a pass per line and only
helps with upside-down text.

Measured on this machine (2 CPU cores shared with other jobs; onnxruntime 1.32). "CPU" is
the process CPU time with one thread, a proxy for one idle core; "wall" is 2 threads while
other jobs kept the load average near 2:

=====================================  =========  ==========  ==================================
image                                  CPU 1 thr  wall 2 thr  output
=====================================  =========  ==========  ==================================
640x480 photo, no text (chelsea)       46 ms      44 ms       ``[]`` (probe only)
skimage ``coffee()`` 600x400           42 ms      39 ms       ``[]``
skimage ``astronaut()`` 512x512        60 ms      -           ``[]``
skimage ``text()`` 448x172             25 ms      38 ms       ``[]`` (handwritten maths)
skimage ``page()`` 384x191, 7 lines    727 ms     790 ms      6 prose lines exact, see tests
=====================================  =========  ==========  ==================================

Recognition dominates on text (about 100 ms per line of ~50 characters). RapidOCR's
defaults (``limit_type="min"``, 736 px) enlarge a 640x480 photo to 981x736: 0.8-1.1 s on
the same photo, and they miss page() line 4.
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from typing import TYPE_CHECKING, Any

import numpy as np

from oculi.config import Settings
from oculi.core.errors import BackendError, ModelAssetError
from oculi.core.types import Box, TextLine

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

DET_MODEL = "models/ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "models/ch_PP-OCRv4_rec_infer.onnx"
CLS_MODEL = "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"

PROBE_SIDE = 416  # longer side of the "is there any text?" pass
PROBE_SKIP_BELOW = 480  # images no longer than this go straight to detection
PROBE_THRESH = 0.3  # DB probability counted as text
PROBE_MIN_AREA = 12  # pixels (at probe scale) a text blob needs
DET_MAX_SIDE = 960
DET_MIN_SIDE = 320
REC_HEIGHT = 48  # the recogniser's input height
REC_BATCH = 6
MIN_SCORE = 0.5
MIN_SCORE_SINGLE = 0.8  # single-character results are mostly noise unless very sure
GAP_MIN_HEIGHT = 0.25  # a word gap is at least this fraction of the ink height ...
GAP_MIN_MEDIAN = 2.0  # ... and this many times the line's median blank run
ROW_X_OVERLAP = 0.3  # boxes overlapping more than this (of the narrower width) horizontally are not one row


def _to_bgr(image: "Image.Image") -> np.ndarray:
    import cv2

    if image.mode != "RGB":
        image = image.convert("RGB")
    return cv2.cvtColor(np.asarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGR)  # [H, W, 3]


def _resize(img: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if abs(scale - 1.0) < 1e-6:
        return img
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)


def _quad_crop(img: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Perspective-crop a text quad (tl, tr, br, bl) out of ``img``; tall crops are rotated."""
    import cv2

    quad = quad.astype(np.float32)
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    m = cv2.getPerspectiveTransform(quad, dst)
    crop = cv2.warpPerspective(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if h / w >= 1.5:
        crop = np.rot90(crop)
    if crop.shape[0] < REC_HEIGHT:  # enlarge small text with bicubic filtering (keeps word gaps)
        f = REC_HEIGHT / crop.shape[0]
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * f)), REC_HEIGHT), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(crop)


def _word_gaps(crop: np.ndarray) -> list[tuple[int, int]]:
    """Blank column runs of a line crop wide enough to be gaps between words.

    The crop is binarised (Otsu; the minority class is ink, so light-on-dark text works);
    a run of ink-free columns counts when it is at least ``GAP_MIN_HEIGHT`` of the ink
    height and ``GAP_MIN_MEDIAN`` times the median blank run of the line (letter gaps of
    wide or monospaced fonts stay below that).

    Returns:
        ``(start, end)`` column ranges in crop pixels.
    """
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    _, bw = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = bw == 0
    if ink.mean() > 0.5:
        ink = ~ink
    rows = np.flatnonzero(ink.mean(axis=1) > 0.02)
    if rows.size == 0:
        return []
    height = rows[-1] - rows[0] + 1
    cols = ink[rows[0] : rows[-1] + 1].any(axis=0)  # [W] column has ink
    xs = np.flatnonzero(cols)
    if xs.size < 2:
        return []
    inner = cols[xs[0] : xs[-1] + 1]
    edges = np.diff(inner.astype(np.int8))
    starts = np.flatnonzero(edges == -1) + 1 + xs[0]  # first blank column of each run
    ends = np.flatnonzero(edges == 1) + 1 + xs[0]  # first inked column after it
    if starts.size == 0:
        return []
    widths = ends - starts
    limit = max(GAP_MIN_HEIGHT * height, GAP_MIN_MEDIAN * float(np.median(widths)))
    return [(int(a), int(b)) for a, b, w in zip(starts, ends, widths) if w >= limit]


def _is_cjk(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def _insert_word_spaces(chars: list[str], xs: np.ndarray, gaps: list[tuple[int, int]]) -> str:
    """Join recognised characters, adding a space where a word gap lies between two of them.

    Args:
        chars: Decoded characters.
        xs: Each character's x position in crop pixels (from its CTC column).
        gaps: Word gaps from ``_word_gaps``.
    """
    if not gaps or len(chars) < 2:
        return "".join(chars)
    mids = [(a + b) / 2.0 for a, b in gaps]
    out = [chars[0]]
    for i in range(1, len(chars)):
        prev, cur = chars[i - 1], chars[i]
        if prev != " " and cur != " " and not (_is_cjk(prev) or _is_cjk(cur)):
            if any(xs[i - 1] < m < xs[i] for m in mids):
                out.append(" ")
        out.append(cur)
    return "".join(out)


def _same_row(a: Box, b: Box) -> bool:
    """Two boxes are on one row when each one's vertical centre lies within the other's
    vertical extent and they do not overlap much horizontally (skewed lines of a paragraph
    overlap vertically but are stacked, not side by side)."""
    acy, bcy = a.center[1], b.center[1]
    if not (b.y1 <= acy <= b.y2 and a.y1 <= bcy <= a.y2):
        return False
    x_overlap = min(a.x2, b.x2) - max(a.x1, b.x1)
    return x_overlap <= ROW_X_OVERLAP * max(1e-6, min(a.width, b.width))


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Sort text lines: rows top to bottom, left to right within a row.

    A line joins the first row (in top-to-bottom order) holding a line it shares a row with
    (``_same_row``); otherwise it starts a new row.
    """
    rows: list[list[TextLine]] = []
    for ln in sorted(lines, key=lambda t: (t.box.center[1], t.box.x1)):
        for row in rows:
            if any(_same_row(ln.box, t.box) for t in row):
                row.append(ln)
                break
        else:
            rows.append([ln])
    rows.sort(key=lambda r: min(t.box.center[1] for t in r))
    return [t for row in rows for t in sorted(row, key=lambda t: t.box.x1)]


class RapidOCRReader:
    """PP-OCRv4 text reader (Reader protocol).

    Args:
        settings: Where the asset is and the thread count.
        use_cls: Run the 180° text-angle classifier on each line (off: faster).

    Example:
        >>> reader = RapidOCRReader(Settings())  # doctest: +SKIP
        >>> reader.read_text(page)  # doctest: +SKIP
        'Region-based segmentation\\nLet us first determine markers of the coins and the\\n...'
    """

    name = "pp-ocrv4"

    def __init__(self, settings: Settings, use_cls: bool = False) -> None:
        self.settings = settings
        self.use_cls = use_cls
        self._engine: Any = None
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()  # the RapidOCR objects keep per-call state

    def load(self) -> None:
        """Verify the asset and build the ONNX sessions (idempotent, thread-safe).

        Raises:
            ModelAssetError: the asset is missing or corrupt, or rapidocr cannot be imported.
        """
        if self._engine is not None:
            return
        with self._lock:
            if self._engine is not None:
                return
            from oculi.assets.manager import require_asset

            root = require_asset("ocr", self.settings)
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:  # its runtime needs (pyclipper, shapely, ...) are missing
                raise ModelAssetError(f"rapidocr_onnxruntime cannot be imported ({exc}); run `oculi models pull`") from exc
            threads = self.settings.threads if self.settings.threads > 0 else -1
            engine = RapidOCR(
                det_model_path=str(root / DET_MODEL),
                rec_model_path=str(root / REC_MODEL),
                cls_model_path=str(root / CLS_MODEL),
                intra_op_num_threads=threads,
                det_limit_type="max",
                det_limit_side_len=DET_MAX_SIDE,
                det_use_dilation=False,
                det_score_mode="slow",
                det_box_thresh=0.5,
                det_unclip_ratio=1.6,
                text_score=MIN_SCORE,
                print_verbose=False,
            )
            # RapidOCR's config updater only applies some keys; set the detector's explicitly
            pp = engine.text_det.postprocess_op
            pp.score_mode, pp.dilation_kernel, pp.box_thresh, pp.unclip_ratio = "slow", None, 0.5, 1.6
            # RapidOCR builds its sessions with spinning threads; rebuild them like oculi's others
            from oculi.perception.onnx_session import create_session

            t = max(self.settings.threads, 0)
            engine.text_det.infer.session = create_session(root / DET_MODEL, t)
            engine.text_rec.session.session = create_session(root / REC_MODEL, t)
            engine.text_cls.infer.session = create_session(root / CLS_MODEL, t)
            self._engine = engine

    # --- stages -------------------------------------------------------------------------
    def _prob_map(self, img: np.ndarray) -> np.ndarray:
        """The DB text-probability map of ``img`` (resized to multiples of 32): ``[h, w]``."""
        import cv2

        h, w = img.shape[:2]
        nh, nw = max(32, int(round(h / 32)) * 32), max(32, int(round(w / 32)) * 32)
        x = cv2.resize(img, (nw, nh)).astype(np.float32) * (1.0 / 127.5) - 1.0  # [nh, nw, 3]
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])  # [1, 3, nh, nw]
        return self._engine.text_det.infer(x)[0][0, 0]  # [nh, nw]

    def _has_text(self, img: np.ndarray) -> bool:
        import cv2

        small = _resize(img, PROBE_SIDE / max(img.shape[:2]))
        mask = (self._prob_map(small) > PROBE_THRESH).astype(np.uint8)
        if int(mask.sum()) < PROBE_MIN_AREA:
            return False
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        return bool(n > 1 and stats[1:, cv2.CC_STAT_AREA].max() >= PROBE_MIN_AREA)

    def _detect(self, img: np.ndarray) -> tuple[list[np.ndarray], float]:
        """Text quads in ``img`` coordinates, and the scale detection ran at."""
        long_side = max(img.shape[:2])
        scale = min(1.0, DET_MAX_SIDE / long_side)
        if long_side < DET_MIN_SIDE:
            scale = min(4.0, DET_MIN_SIDE / long_side)
        work = _resize(img, scale)
        quads, _ = self._engine.text_det(work)
        if quads is None or len(quads) == 0:
            return [], scale
        return [np.asarray(q, dtype=np.float32) / scale for q in quads], scale

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """CTC-decode each crop, keeping the column of every character to restore spaces.

        Mirrors ``rapidocr``'s ``TextRecognizer`` (crops sorted by aspect ratio, batches of
        ``REC_BATCH`` padded to the widest) and its score (mean probability of the emitted
        characters), plus word-gap spaces (``_insert_word_spaces``).
        """
        rec = self._engine.text_rec
        charset = rec.postprocess_op.character  # index 0 is the CTC blank
        img_h = rec.rec_image_shape[1]
        base_ratio = rec.rec_image_shape[2] / img_h
        ratios = [c.shape[1] / float(c.shape[0]) for c in crops]
        order = np.argsort(ratios)
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(crops), REC_BATCH):
            idx = order[start : start + REC_BATCH]
            max_ratio = max([base_ratio] + [ratios[i] for i in idx])
            batch = np.stack([rec.resize_norm_img(crops[i], max_ratio) for i in idx]).astype(np.float32)  # [b, 3, 48, W]
            preds = rec.session(batch)[0]  # [b, T, C] softmax
            width, steps = batch.shape[-1], preds.shape[1]
            for j, i in enumerate(idx):
                best = preds[j].argmax(axis=1)  # [T]
                keep = np.ones(steps, dtype=bool)
                keep[1:] = best[1:] != best[:-1]
                keep &= best != 0
                cols = np.flatnonzero(keep)
                if cols.size == 0:
                    continue
                chars = [charset[k] for k in best[cols]]
                score = float(preds[j][cols, best[cols]].mean())
                content_w = min(float(np.ceil(img_h * ratios[i])), float(width))  # crop width after resize
                xs = (cols + 0.5) * (width / steps) * (crops[i].shape[1] / content_w)  # [n] crop pixels
                out[i] = (_insert_word_spaces(chars, xs, _word_gaps(crops[i])), score)
        return out

    def read(self, image: "Image.Image") -> list[TextLine]:
        """Read the text lines of an image.

        Returns:
            ``TextLine``s in reading order with axis-aligned boxes (image pixels) and the
            recogniser's mean character confidence; ``[]`` when there is no readable text.
        """
        self.load()
        img = _to_bgr(image)  # [H, W, 3]
        H, W = img.shape[:2]
        if min(H, W) < 8:
            return []
        with self._run_lock:
            try:
                if max(H, W) > PROBE_SKIP_BELOW and not self._has_text(img):
                    return []
                quads, _ = self._detect(img)
                if not quads:
                    return []
                crops = [_quad_crop(img, q) for q in quads]
                if self.use_cls:
                    crops, _, _ = self._engine.text_cls(crops)
                results = self._recognise(crops)
            except Exception as exc:
                raise BackendError(f"OCR failed: {exc}") from exc
        lines: list[TextLine] = []
        for quad, res in zip(quads, results):
            text = " ".join(unicodedata.normalize("NFKC", res[0]).split())
            score = float(res[1])
            if not text or score < MIN_SCORE or (len(text) == 1 and score < MIN_SCORE_SINGLE):
                continue
            box = Box(float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))
            lines.append(TextLine(text=text, score=min(1.0, max(0.0, score)), box=box.clip(W, H)))
        return reading_order(lines)

    def read_text(self, image: "Image.Image") -> str:
        """All text of an image, one line per ``TextLine``, in reading order."""
        return "\n".join(t.text for t in self.read(image))

"""Reading footage with PyAV: files and streams, sampled frames with the video's own timestamps.

``open_video`` returns a ``VideoSource``; ``VideoSource.sample(rate, start=...)`` yields
``SampledFrame``\\ s at (about) ``rate`` frames per second of *footage time* — the frame's
presentation timestamp minus the stream's start, never the wall clock — each with the frame
downscaled for analysis (longer side ``ANALYSIS_MAX_SIDE``) as RGB.

Every frame is decoded (inter-coded video cannot skip frames), but only sampled ones are
converted to RGB. Decoding runs in a thread ahead of the caller with a bounded queue, so on two
cores the decoder and the detector overlap and memory stays flat.

Damage: a packet the decoder rejects, or a jump in the timestamps longer than
``GAP_FRAMES`` frame intervals, is recorded as a ``Problem`` stretch (footage seconds) and the
reading goes on at the next decodable frame.

Streams (``rtsp://``, ``http(s)://``, ``udp://`` ...) reconnect after a drop, up to
``max_reconnects`` times in a row with a growing pause; footage time carries on from the
stream's own timestamps when they continue, and from the last frame when they restart.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import stat as stat_mod
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from PIL import Image

from oculi.core.errors import InputError

log = logging.getLogger(__name__)

ANALYSIS_MAX_SIDE = 640  # frames are analysed at most this large (the detector letterboxes to 512)
GAP_FRAMES = 5  # a timestamp jump longer than this many frame intervals is a missing stretch
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".ts", ".mts", ".m2ts", ".mpg",
                            ".mpeg", ".flv", ".wmv", ".3gp", ".ogv", ".h264", ".h265", ".hevc"})
QUEUE_FRAMES = 8  # decoded-and-sampled frames buffered ahead of the consumer
MAX_READ_ERRORS = 500  # read errors in a row after which a file is given up at that point
FINGERPRINT_CHUNK = 1 << 20
FINGERPRINT_SAMPLES = 16


@dataclass
class Problem:
    """A stretch of footage that could not be read: ``start``/``end`` in footage seconds."""

    start: float
    end: float
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "error": self.error}


@dataclass
class SampledFrame:
    """One sampled frame.

    Attributes:
        t: Footage seconds (presentation time minus the stream's start, plus reconnect offsets).
        index: Frame number (``round(t * fps)``), stable across runs.
        image: RGB ``[h, w, 3]`` uint8 at analysis size.
        scale: Video pixels per analysis pixel (boxes found on ``image`` times ``scale``).
    """

    t: float
    index: int
    image: np.ndarray
    scale: float

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)


@dataclass
class VideoInfo:
    uri: str
    kind: str  # "file" | "stream"
    width: int
    height: int
    fps: float
    duration: float | None
    codec: str
    creation_time: float | None  # epoch seconds from the container's metadata, if any
    size: int = 0
    mtime_ns: int = 0


def is_stream(source: str) -> bool:
    scheme = urlsplit(source).scheme.lower()
    return scheme in STREAM_SCHEMES


def redact_url(url: str) -> str:
    """The URL without user name and password (kept out of the store, logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def fingerprint(path: str | Path) -> str:
    """Content fingerprint of a video file: SHA-256 over its size, first and last MiB and 16
    evenly spaced 64 KiB samples. Reading all of an hours-long file would cost as much as
    decoding it; a change anywhere a muxer writes (header, index, ends) changes this."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(f"oculi-video-v1:{size}:".encode())
    with open(p, "rb") as f:
        h.update(f.read(FINGERPRINT_CHUNK))
        if size > 2 * FINGERPRINT_CHUNK:
            for i in range(1, FINGERPRINT_SAMPLES + 1):
                f.seek(int(size * i / (FINGERPRINT_SAMPLES + 1)))
                h.update(f.read(FINGERPRINT_CHUNK // 16))
            f.seek(max(0, size - FINGERPRINT_CHUNK))
            h.update(f.read(FINGERPRINT_CHUNK))
    return h.hexdigest()


def _creation_time(meta: dict[str, Any]) -> float | None:
    v = meta.get("creation_time") or meta.get("date")
    if not isinstance(v, str):
        return None
    s = v.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None  # a naive creation time is ambiguous; --start decides
    ts = dt.timestamp()
    return ts if ts > 86400 * 365 else None  # 1970 placeholders


def _analysis_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    s = max(w, h)
    if s <= max_side:
        return w - w % 2, h - h % 2
    f = max_side / s
    return max(2, int(round(w * f / 2)) * 2), max(2, int(round(h * f / 2)) * 2)


class VideoSource:
    """A video file or stream opened with PyAV. Not thread-safe; one reader at a time."""

    def __init__(self, uri: str, *, max_reconnects: int = 5, open_timeout: float = 15.0,
                 analysis_max_side: int = ANALYSIS_MAX_SIDE) -> None:
        self.uri = uri
        self.stream_mode = is_stream(uri)
        self.max_reconnects = max_reconnects
        self.open_timeout = open_timeout
        self.analysis_max_side = analysis_max_side
        self.problems: list[Problem] = []
        self.reconnects = 0
        self.info = self._probe()

    # --- opening ------------------------------------------------------------------------------
    def _open(self) -> Any:
        import av

        opts = {"rtsp_transport": "tcp"} if urlsplit(self.uri).scheme.lower().startswith("rtsp") else {}
        try:
            return av.open(self.uri, options=opts, timeout=(self.open_timeout, self.open_timeout))
        except FileNotFoundError:
            raise InputError(f"{self._shown()}: no such file") from None
        except PermissionError:
            raise InputError(f"{self._shown()}: permission denied") from None
        except (av.error.FFmpegError, OSError) as e:
            raise InputError(f"{self._shown()}: cannot be opened as video ({_short(e, self.uri)})") from None

    def _shown(self) -> str:
        return redact_url(self.uri) if self.stream_mode else self.uri

    def _probe(self) -> VideoInfo:
        if not self.stream_mode:
            try:
                mode = os.stat(self.uri).st_mode
            except FileNotFoundError:
                raise InputError(f"{self.uri}: no such file") from None
            except OSError as e:
                raise InputError(f"{self.uri}: cannot be read ({e.strerror or e})") from None
            if stat_mod.S_ISDIR(mode):
                raise InputError(f"{self.uri}: is a folder, not a video file")
            if not stat_mod.S_ISREG(mode):  # a FIFO or a device would block or never end
                raise InputError(f"{self.uri}: not a regular file (a pipe or a device); save the video to a file or give a stream URL")
        c = self._open()
        try:
            if not c.streams.video:
                raise InputError(f"{self._shown()}: has no video stream")
            st = c.streams.video[0]
            cc = st.codec_context
            w, h = int(cc.width or 0), int(cc.height or 0)
            if w <= 0 or h <= 0:
                raise InputError(f"{self._shown()}: video stream has no frame size (corrupt header?)")
            rate = st.average_rate or st.guessed_rate or st.base_rate
            fps = float(rate) if rate else 25.0
            if not (0.1 <= fps <= 1000):
                fps = 25.0
            duration = None
            if st.duration and st.time_base:
                duration = float(st.duration * st.time_base)
            elif c.duration:
                duration = c.duration / 1_000_000
            meta = dict(c.metadata or {})
            meta.update(dict(st.metadata or {}))
            size = mtime = 0
            if not self.stream_mode:
                stat = os.stat(self.uri)
                size, mtime = stat.st_size, stat.st_mtime_ns
            return VideoInfo(uri=self._shown() if self.stream_mode else os.path.abspath(self.uri),
                             kind="stream" if self.stream_mode else "file", width=w, height=h, fps=fps,
                             duration=None if self.stream_mode else duration, codec=cc.name,
                             creation_time=_creation_time(meta), size=size, mtime_ns=mtime)
        finally:
            c.close()

    # --- reading -----------------------------------------------------------------------------
    def sample(self, rate: float, *, start: float = 0.0, should_stop: Callable[[], bool] | None = None) -> Iterator[SampledFrame]:
        """Frames at about ``rate`` per second of footage, from footage time ``start`` on.

        The schedule is fixed by footage time (``k / rate``), so a resumed run samples exactly the
        frames an uninterrupted one would have. Problems found go to ``self.problems``.
        """
        if not rate > 0:
            raise InputError("the sampling rate must be positive")
        q: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        stop = threading.Event()

        def produce() -> None:
            try:
                for fr in self._decode_sampled(rate, start, stop):
                    while not stop.is_set():
                        try:
                            q.put(fr, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put(None)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                q.put(e)

        th = threading.Thread(target=produce, name="oculi-decode", daemon=True)
        th.start()
        try:
            while True:
                if should_stop is not None and should_stop():
                    return
                try:
                    item = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while th.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    th.join(timeout=0.1)

    def _packets(self, c: Any, st: Any, damaged: Callable[[BaseException], None]) -> Iterator[Any]:
        """The stream's packets; in a file, a read error (damaged bytes the demuxer cannot parse)
        is reported through ``damaged`` and reading carries on after it, up to
        ``MAX_READ_ERRORS`` errors in a row."""
        import av

        bad = 0
        while True:
            try:
                for pkt in c.demux(st):
                    bad = 0
                    yield pkt
                return
            except (av.error.EOFError, StopIteration):
                return
            except av.error.FFmpegError as e:
                if self.stream_mode or bad >= MAX_READ_ERRORS:
                    raise
                bad += 1
                damaged(e)

    def _decode_sampled(self, rate: float, start: float, stop: threading.Event) -> Iterator[SampledFrame]:
        import av

        step = 1.0 / rate
        next_k = max(0, int(np.ceil(start * rate - 1e-6)))
        fps = self.info.fps
        aw, ah = _analysis_size(self.info.width, self.info.height, self.analysis_max_side)
        scale = self.info.width / aw
        offset = 0.0  # added to stream time after a reconnect with restarted timestamps
        last_t: float | None = None
        failures = 0
        live = self.stream_mode and self.info.duration is None  # a finite file over HTTP is read like a file
        base_pts: int | None = None  # the first connection's clock: a reconnection's timestamps continue it
        while not stop.is_set():
            try:
                c = self._open()
            except InputError as e:
                if not self.stream_mode or last_t is None and failures >= self.max_reconnects:
                    raise
                if failures >= self.max_reconnects:  # the stream is gone: end the footage there
                    self.problems.append(Problem(last_t, last_t, f"stream could not be reopened after {failures} tries ({e})"))
                    return
                failures += 1
                time.sleep(min(8.0, 0.25 * 2 ** failures))
                continue
            st = c.streams.video[0]
            st.thread_type = "AUTO"
            tb = float(st.time_base) if st.time_base else 1.0 / 90000
            if base_pts is None:  # a file without a start time starts at 0 (a seek must not move time zero)
                base_pts = st.start_time if st.start_time is not None or live else 0
            resume_at = start if last_t is None else last_t
            if not live and resume_at > 0:
                try:
                    c.seek(int(resume_at / tb) + (base_pts or 0), stream=st, backward=True, any_frame=False)
                except av.error.FFmpegError as e:
                    log.info("seek to %.1fs failed (%s); decoding from the start", resume_at, _short(e, self.uri))
            restarted: float | None = None  # stream time of the first frame after a reconnect
            error_at: float | None = None
            err_msg = ""
            ended_cleanly = False

            def damaged(e: BaseException) -> None:
                nonlocal error_at, err_msg
                if error_at is None:
                    error_at, err_msg = (last_t if last_t is not None else 0.0), _short(e, self.uri)

            try:
                for pkt in self._packets(c, st, damaged):
                    if stop.is_set():
                        return
                    try:
                        frames = pkt.decode()
                    except av.error.FFmpegError as e:
                        damaged(e)
                        continue
                    for frame in frames:
                        if frame.pts is None:
                            continue
                        if base_pts is None:
                            base_pts = frame.pts
                        raw = (frame.pts - base_pts) * tb
                        if live and restarted is None and last_t is not None:
                            restarted = raw
                            if raw + offset <= last_t:  # timestamps restarted: carry on from the last frame
                                offset = last_t + 1.0 / fps - raw
                        t = raw + offset
                        if last_t is not None and t <= last_t - 1e-6:
                            continue  # out of order or repeated after a seek/reconnect
                        if error_at is not None:
                            self.problems.append(Problem(error_at, t, f"undecodable data skipped ({err_msg})"))
                            error_at = None
                        elif last_t is not None and t - last_t > GAP_FRAMES / fps:
                            self.problems.append(Problem(last_t, t, "missing or corrupt stretch skipped (timestamp gap)"))
                        last_t = t
                        failures = 0
                        if t + 1e-6 < next_k * step or t + 1e-6 < start:
                            continue
                        img = frame.reformat(width=aw, height=ah, format="rgb24").to_ndarray()
                        yield SampledFrame(t=t, index=int(round(t * fps)), image=img, scale=scale)
                        next_k = int(np.floor(t * rate + 1e-6)) + 1
                ended_cleanly = True
            except av.error.FFmpegError as e:
                if not self.stream_mode:
                    self.problems.append(Problem(last_t or 0.0, self.info.duration or (last_t or 0.0),
                                                 f"reading stopped ({_short(e, self.uri)})"))
                    return
                log.warning("stream %s dropped (%s)", self._shown(), _short(e, self.uri))
            finally:
                c.close()
            if error_at is not None:
                self.problems.append(Problem(error_at, last_t if last_t is not None else error_at,
                                             f"undecodable data at the end ({err_msg})"))
            if not self.stream_mode or (ended_cleanly and not live):
                return
            # a live stream ended or a stream dropped: reconnect
            failures += 1
            if failures > self.max_reconnects:
                log.warning("stream %s: giving up after %d reconnects", self._shown(), self.max_reconnects)
                return
            self.reconnects += 1
            log.info("stream %s: reconnecting (%d)%s", self._shown(), failures, " after its end" if ended_cleanly else "")
            time.sleep(min(8.0, 0.25 * 2 ** failures))


def _short(e: BaseException, uri: str | None = None) -> str:
    s = str(e).strip() or type(e).__name__
    if uri and is_stream(uri):  # FFmpeg errors repeat the URL: never show its credentials
        s = s.replace(uri, redact_url(uri))
    return s[:200]


def open_video(uri: str | Path, **kw: Any) -> VideoSource:
    """Open a video file or stream URL for reading.

    Raises:
        InputError: missing file, not a video, no video stream, or a stream that cannot be
            reached (the URL is shown without credentials).
    """
    return VideoSource(str(uri), **kw)

"""Reading footage with PyAV: footage timestamps, sampling, resuming, damage, streams.

Every clip is written by the test with PyAV (tiny frames, a few seconds), and the stream is
served by a loopback HTTP server started here.
"""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from oculi.core.errors import InputError
from oculi.tasks.footage.video import fingerprint, open_video, redact_url

W, H, FPS = 160, 96, 10


def frame(i: int) -> np.ndarray:
    """Frame ``i`` (< 100) shows its own number as the brightness of the top band (40 + 2 i)."""
    a = np.full((H, W, 3), 40, np.uint8)
    a[:32] = 40 + 2 * i
    a[60:90, (i * 3) % (W - 20):(i * 3) % (W - 20) + 20] = (200, 40, 40)
    return a


def write_clip(path: Path, seconds: float = 8.0, fmt: str | None = None, gop: int = 10) -> Path:
    out = av.open(str(path), "w", format=fmt)
    st = out.add_stream("libx264", rate=FPS)
    st.width, st.height, st.pix_fmt = W, H, "yuv420p"
    st.options = {"preset": "ultrafast", "g": str(gop), "crf": "18"}
    for i in range(int(seconds * FPS)):
        for p in st.encode(av.VideoFrame.from_ndarray(frame(i), format="rgb24")):
            out.mux(p)
    for p in st.encode():
        out.mux(p)
    out.close()
    return path


def band(img: np.ndarray) -> int:
    return int(round((float(img[: img.shape[0] // 4].mean()) - 40) / 2))


def test_sampling_uses_the_videos_own_timestamps_and_resumes_exactly(tmp_path: Path) -> None:
    vs = open_video(write_clip(tmp_path / "clip.mp4"))
    assert (vs.info.width, vs.info.height, vs.info.fps, vs.info.kind) == (W, H, 10.0, "file")
    assert vs.info.duration == pytest.approx(8.0, abs=0.15)
    frames = list(vs.sample(2.0))
    assert [f.t for f in frames] == pytest.approx([i * 0.5 for i in range(16)])
    assert [f.index for f in frames] == [i * 5 for i in range(16)]
    assert all(abs(band(f.image) - i * 5) <= 1 for i, f in enumerate(frames))  # the right pixels, not just the right times
    # resuming after the frame at 3.0 s samples exactly what an uninterrupted run samples next
    again = list(open_video(tmp_path / "clip.mp4").sample(2.0, start=3.0 + 1e-3))
    assert [f.t for f in again] == pytest.approx([f.t for f in frames[7:]])
    assert [band(f.image) for f in again] == [band(f.image) for f in frames[7:]]
    assert not vs.problems


@pytest.mark.parametrize("suffix, fmt, garbage", [
    ("ts", "mpegts", "random"), ("ts", "mpegts", "zeros"), ("mkv", "matroska", "random"), ("mp4", None, "random"),
])
def test_a_corrupt_stretch_is_skipped_and_reported(tmp_path: Path, suffix: str, fmt: str | None, garbage: str) -> None:
    path = write_clip(tmp_path / f"clip.{suffix}", seconds=10.0, fmt=fmt)
    data = bytearray(path.read_bytes())
    n = len(data)
    a, b = int(n * 0.4), int(n * 0.55)
    data[a:b] = bytes(b - a) if garbage == "zeros" else np.random.default_rng(1).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    vs = open_video(path)
    frames = list(vs.sample(2.0))
    assert vs.problems, "the damaged stretch must be reported"
    p = vs.problems[0]
    assert 2.0 <= p.start < p.end <= 8.0 and p.error
    assert frames[-1].t >= 9.0  # reading went on after the damage
    times = [f.t for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.parametrize("content, message", [
    (b"", "cannot be opened as video"),
    (b"this is a text file, not a video\n" * 100, "cannot be opened as video"),
])
def test_bad_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_video(p)
    with pytest.raises(InputError, match="no such file"):
        open_video(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="folder"):
        open_video(tmp_path)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        open_video(fifo)


def test_truncated_file_reads_what_is_there(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mkv", seconds=8.0, fmt="matroska")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames = list(open_video(path).sample(2.0))
    assert 1.0 <= frames[-1].t <= 6.0 and frames[0].t == 0.0


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    a = write_clip(tmp_path / "a.mp4", seconds=3)
    b = tmp_path / "b.mp4"
    b.write_bytes(a.read_bytes())
    assert fingerprint(a) == fingerprint(b)
    data = bytearray(b.read_bytes())
    data[len(data) // 2] ^= 0xFF
    b.write_bytes(bytes(data))
    assert fingerprint(a) != fingerprint(b)
    assert redact_url("rtsp://admin:secret@10.0.0.5:554/live?ch=1") == "rtsp://10.0.0.5:554/live?ch=1"


class _LiveStream(http.server.BaseHTTPRequestHandler):
    """Serves an MPEG-TS like a live camera: no length; the first reading connection drops half
    way; the reconnection gets the stream from later on (time went on meanwhile)."""

    data = b""
    requests = 0

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        cls.requests += 1
        n = len(cls.data) // 188
        if cls.requests == 1:  # the probe
            part = cls.data
        elif cls.requests == 2:
            part = cls.data[: (n * 4 // 10) * 188]
        elif cls.requests == 3:
            part = cls.data[(n * 6 // 10) * 188:]
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.end_headers()
        try:
            self.wfile.write(part)
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *a: object) -> None:
        pass


def test_a_dropped_stream_reconnects_and_keeps_its_timeline(tmp_path: Path) -> None:
    _LiveStream.data = write_clip(tmp_path / "live.ts", seconds=10.0, fmt="mpegts", gop=5).read_bytes()
    _LiveStream.requests = 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _LiveStream)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        vs = open_video(f"http://user:pw@127.0.0.1:{srv.server_address[1]}/cam", max_reconnects=1)
        assert vs.info.kind == "stream" and "pw" not in vs.info.uri
        frames = list(vs.sample(2.0))
    finally:
        srv.shutdown()
    assert vs.reconnects >= 1 and _LiveStream.requests >= 3
    times = [f.t for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    # the stream's own timestamps carried on: frames from before the drop and from after the gap
    assert min(times) < 3.0 and max(times) > 7.0
    assert not any(3.8 < t < 6.0 for t in times)  # the part never received is not invented
    assert all(abs(band(f.image) - f.index) <= 1 for f in frames)  # each time stamp is its own frame's

"""A full disk, for real: small tmpfs filesystems mounted in a private user+mount namespace.

``unshare --user --map-root-user --mount`` lets an unprivileged user mount a tmpfs that only
its own processes see, so ``oculi index`` runs against a filesystem that really fills up (no
injected ``ENOSPC``). ``tests/diskfull_driver.py`` runs the CLI there and reports back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.search_fakes import PALETTE, write_png

REPO = Path(__file__).resolve().parents[3]
N_IMAGES = 150


def _can_mount_tmpfs(tmp: Path) -> bool:
    if not shutil.which("unshare"):
        return False
    d = tmp / "probe"
    d.mkdir()
    p = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {d}"],
                       capture_output=True, timeout=30)
    return p.returncode == 0


@pytest.fixture(scope="module")
def diskfull(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("diskfull")
    if not _can_mount_tmpfs(tmp):
        pytest.skip("cannot mount a tmpfs in a user namespace here (unshare -rm)")
    images = tmp / "images"
    for i in range(N_IMAGES):
        write_png(images / f"img{i:03d}.png", list(PALETTE)[i % len(PALETTE)], size=(320, 240), pattern=i + 1,
                  labels=[("tabby", 0.8)], text=[f"word{i}"])
    small, larger, work = tmp / "small", tmp / "larger", tmp / "work"
    for d in (small, larger, work):
        d.mkdir()
    script = (f"mount -t tmpfs -o size=5m tmpfs {small} && mount -t tmpfs -o size=12m tmpfs {larger} && "
              f"exec {sys.executable} -m tests.diskfull_driver {small} {larger} {images} {work}")
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO,
                       timeout=600, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO / 'src'}:{REPO}",
                                         "HOME": str(tmp)})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def _one_clear_line(stderr: str, path_part: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: the disk holding ") and path_part in line and "free" in line, line
    assert "lance" not in line.lower() and ".rs:" not in line and "Traceback" not in line


def test_full_disk_stops_before_perceiving_what_cannot_be_saved(diskfull: dict) -> None:
    a = diskfull["a"]
    assert a["rc"] == 6  # StoreFullError
    _one_clear_line(a["stderr"], "/home/collections/a")
    assert 0 < a["items"] < N_IMAGES
    assert a["perceived"] == a["items"]  # every image perceived was saved: no work thrown away
    again = diskfull["a_again"]
    assert again["rc"] == 6
    _one_clear_line(again["stderr"], "/home/collections/a")
    assert again["items"] - a["items"] == again["perceived"]  # a rerun perceives only what it can save


def test_disk_filled_by_someone_else_mid_run_is_one_line_and_leaves_no_temporary_files(diskfull: dict) -> None:
    b = diskfull["b"]
    assert b["rc"] == 6
    _one_clear_line(b["stderr"], "/home/collections/b")
    assert b["leftovers"] == []
    again = diskfull["b_again"]  # space freed: the same command completes the job
    assert again["rc"] == 0, again["stderr"]
    assert again["items"] == N_IMAGES and again["leftovers"] == []
    assert diskfull["check"]["rc"] == 0 and diskfull["check"]["doc"]["ok"] is True

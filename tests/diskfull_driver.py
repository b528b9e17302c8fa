"""Run ``oculi index`` against a real, small, full filesystem and report what happened (JSON).

Run by ``tests/unit/store/test_disk_full.py`` inside ``unshare --user --map-root-user --mount``
after mounting a small tmpfs at ``FS`` (an unprivileged user may mount one in its own
namespace), so the disk really fills up: no mocked ``ENOSPC``.

Usage: ``python -m tests.diskfull_driver SMALL_FS LARGER_FS IMAGES WORK`` (``WORK``: a folder
outside both filesystems, for the log of what was perceived).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.search_fakes import fake_env

REPO = Path(__file__).resolve().parents[1]


def cli(env: dict[str, str], *args: str, timeout: float = 300) -> dict[str, object]:
    p = subprocess.run([sys.executable, "-m", "tests.run_cli_with_fakes", *args], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=timeout)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


def perceived(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def leftovers(root: Path) -> list[str]:
    from oculi.store.integrity import find_leftovers

    return [str(p) for p in find_leftovers(root)] if root.exists() else []


def items(home: Path, name: str) -> int:
    from oculi.store.lance import LanceStore

    return LanceStore(home / "collections").open_collection(name).count()


def fill(path: Path) -> None:
    """Write zeros until the filesystem is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


def main(fs: Path, fs_b: Path, images: Path, work: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    log = work / "perceived.log"
    path = f"{REPO / 'src'}{os.pathsep}{REPO}"
    env = {**fake_env(fs / "home"), "PYTHONPATH": path, "OCULI_FAKE_LOG": str(log)}
    home = fs / "home"

    # A: the free-space check stops the run before perceiving what could not be saved
    a = cli(env, "index", str(images), "-c", "a")
    out["a"] = {**a, "perceived": perceived(log), "items": items(home, "a"), "free": shutil.disk_usage(fs).free}
    before = perceived(log)
    a2 = cli(env, "index", str(images), "-c", "a")
    out["a_again"] = {**a2, "perceived": perceived(log) - before, "items": items(home, "a")}

    # B: the disk fills up while a write is under way (another program takes the space)
    fs = fs_b
    home = fs / "home"
    env = {**fake_env(home), "PYTHONPATH": path, "OCULI_FAKE_LOG": str(log)}
    log.unlink(missing_ok=True)
    envb = {**env, "OCULI_FAKE_DELAY": "0.03", "OCULI_TEST_FLUSH_ITEMS": "8"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.run_cli_with_fakes", "index", str(images), "-c", "b"],
                            env=envb, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while perceived(log) < 16 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    filler = fs / "filler.bin"
    fill(filler)
    stdout, stderr = proc.communicate(timeout=300)
    out["b"] = {"rc": proc.returncode, "stdout": stdout, "stderr": stderr, "leftovers": leftovers(home)}
    filler.unlink()
    b2 = cli(env, "index", str(images), "-c", "b")
    out["b_again"] = {**b2, "items": items(home, "b"), "leftovers": leftovers(home)}
    chk = cli(env, "collections", "check", "b", "--json")
    out["check"] = {"rc": chk["rc"], "doc": json.loads(chk["stdout"] or "{}")}
    return out


if __name__ == "__main__":
    print(json.dumps(main(*(Path(a) for a in sys.argv[1:5]))))

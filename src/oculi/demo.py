"""The demo: the built-in model on scikit-image's sample photos.

Writes each sample as a PNG, then prints a caption, a few answered questions, the detected
objects and the text read for each, and saves annotated copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oculi.core.types import SCHEMA_VERSION

SAMPLES: dict[str, tuple[str, ...]] = {
    "astronaut": ("How many people are in the photo?", "Is there a cat?", "What is this?"),
    "coffee": ("Is there a cup?", "What colour is the cup?", "Where is the cup?"),
    "chelsea": ("What animal is this?", "Is there a dog?", "How many cats are there?"),
    "rocket": ("Is there a rocket?", "How many people are there?"),
    "motorcycle": ("Is there a motorcycle?", "What colour is the motorcycle?"),
    "text": ("What does the text say?",),
    "page": ("What does the page say?",),
    "camera": ("How many people are in the photo?", "What is this?"),
    "clock": ("Is there a clock?",),
    "coins": ("What is this?",),
    "horse": ("What animal is this?",),
}


def sample_images(out_dir: Path) -> list[Path]:
    """Write the scikit-image samples as PNG files and return their paths."""
    import numpy as np
    from PIL import Image
    from skimage import data

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLES:
        p = out_dir / f"{name}.png"
        if not p.exists():
            arr = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
            if arr.dtype == bool:
                arr = (~arr).astype(np.uint8) * 255  # horse: a black silhouette on white
            Image.fromarray(arr).save(p)
        paths.append(p)
    return paths


def run_demo(engine: Any, out: Path, *, as_json: bool = False) -> dict:
    from rich.console import Console

    from oculi.draw import annotate_image

    console = Console()
    images = sample_images(out / "samples")
    annotated = out / "annotated"
    annotated.mkdir(parents=True, exist_ok=True)
    docs = []
    for path in images:
        li = engine.load_image(path)
        cap = engine.caption(li)
        obs = cap.observation
        answers = [engine.ask(li, q) for q in SAMPLES[path.stem]]
        ann = annotated / f"{path.stem}.png"
        annotate_image(li.image, obs.objects, obs.text).save(ann)
        docs.append({"image": str(path), "caption": cap.caption, "answers": [a.to_dict() for a in answers],
                     "objects": [o.to_dict() for o in obs.objects], "text": obs.full_text, "annotated": str(ann)})
        if not as_json:
            console.rule(f"[bold]{path.stem}")
            console.print(f"[bold]caption[/]  {cap.caption}", highlight=False)
            for a in answers:
                console.print(f"[bold]Q[/] {a.question}  [bold]A[/] {a.answer} [dim]({a.confidence:.2f})[/]", highlight=False)
            objs = ", ".join(f"{o.label} {o.score:.2f}" for o in obs.objects) or "none"
            console.print(f"[bold]objects[/]  {objs}", highlight=False)
            console.print(f"[bold]text[/]     {obs.full_text.replace(chr(10), ' / ') or 'none'}", highlight=False)
            console.print(f"[dim]annotated → {ann}[/]")
    doc = {"schema_version": SCHEMA_VERSION, "samples": docs}
    if as_json:
        import json
        import sys

        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc

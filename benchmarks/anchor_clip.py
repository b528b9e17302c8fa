"""The speed anchor: a whole-process CLIP ViT-B/32 image indexer, run on the same photos.

Absolute rates drift between machines and with whatever else the machine is doing, so the
index benchmark runs this anchor in the same run and reports oculi's rate as a multiple of
it. The anchor is what a plain CLIP indexer does per photo: read and decode the file (PIL,
EXIF orientation applied), ``CLIPImageProcessor`` (shorter side 224, bicubic, centre crop,
CLIP normalisation), then ``CLIPVisionModelWithProjection`` with the published ViT-B/32
configuration (12 layers, width 768, patch 32, 512-d projection) in fp32, batches of 16,
torch at its default threads. The weights are random (no pretrained CLIP can be fetched
here; the cost of a forward pass does not depend on the values).

Run alone: ``python benchmarks/anchor_clip.py PHOTO_DIR`` prints one JSON line
(``images``, ``wall_s``, ``cpu_s``, ``images_per_s``). ``run_anchor`` runs it in a fresh
process and returns that dict; the process's own start-up and model build are not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

BATCH = 16
B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
           image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def index_folder(folder: Path) -> dict:
    import numpy as np
    import torch
    from PIL import Image, ImageOps
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    try:  # the PIL processor (what CLIPImageProcessor falls back to without torchvision), quietly
        from transformers import CLIPImageProcessorPil as Processor
    except ImportError:
        from transformers import CLIPImageProcessor as Processor

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**B32)).eval()
    processor = Processor()
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    with torch.inference_mode():  # warm-up: first-call allocations are not indexing
        model(pixel_values=torch.zeros(1, 3, 224, 224))
    t0, c0 = time.perf_counter(), _cpu()
    out = []
    for start in range(0, len(paths), BATCH):
        imgs = []
        for p in paths[start : start + BATCH]:
            with Image.open(p) as im:
                imgs.append(ImageOps.exif_transpose(im).convert("RGB"))
        pixels = processor(images=imgs, return_tensors="pt")["pixel_values"]  # [B, 3, 224, 224]
        with torch.inference_mode():
            emb = model(pixel_values=pixels).image_embeds  # [B, 512]
        out.append(torch.nn.functional.normalize(emb, dim=-1).numpy())
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    n = int(sum(len(e) for e in out)) if out else 0
    assert np.concatenate(out).shape == (n, 512)
    return {"images": n, "wall_s": wall, "cpu_s": cpu, "images_per_s": n / wall if wall > 0 else 0.0,
            "torch_threads": torch.get_num_threads()}


def run_anchor(folder: Path) -> dict:
    """Run the anchor on ``folder`` in a fresh process; returns its JSON result."""
    res = subprocess.run([sys.executable, __file__, str(folder)], check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(index_folder(Path(sys.argv[1]))))

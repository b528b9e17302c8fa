"""Derive oculi's noun hierarchy table from WordNet 3.0 (run once; the output is committed).

Input: the WordNet 3.0 database files that Debian's ``wordnet-base`` package installs under
``/usr/share/wordnet`` (``data.noun``, ``index.noun``, ``noun.exc``). oculi never needs the
package at run time: this script writes ``src/oculi/data/wordnet_nouns.json`` (the synsets that
are the 1000 ImageNet classes, the 80 COCO classes and all their hypernyms, with their lemmas)
and copies WordNet's licence to ``src/oculi/data/WORDNET_LICENSE``.

ImageNet class ids (``n03877845``) are WordNet noun offsets, so each class is looked up
directly. COCO names are ambiguous words ("mouse", "remote", "orange"), so each COCO class is
pinned to one sense below, checked against that sense's lemmas.

Run: ``apt-get install wordnet-base && python scripts/derive_wordnet.py [--wordnet DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "oculi" / "data"
OUT = DATA / "wordnet_nouns.json"
LICENSE_OUT = DATA / "WORDNET_LICENSE"
FORMAT_VERSION = 1

# COCO class → (WordNet 3.0 noun offset, a lemma that sense must carry). "stop sign" has no
# synset of its own (WordNet's "street sign" is broader: not every street sign is a stop sign),
# so it is left out.
COCO_SYNSETS: dict[str, tuple[str, str]] = {
    "person": ("00007846", "person"), "bicycle": ("02834778", "bicycle"),
    "car": ("02958343", "car"), "motorcycle": ("03790512", "motorcycle"),
    "airplane": ("02691156", "airplane"), "bus": ("02924116", "bus"),
    "train": ("04468005", "train"), "truck": ("04490091", "truck"), "boat": ("02858304", "boat"),
    "traffic light": ("06874185", "traffic_light"), "fire hydrant": ("03346898", "fire_hydrant"),
    "parking meter": ("03891332", "parking_meter"),
    "bench": ("02828884", "bench"), "bird": ("01503061", "bird"), "cat": ("02121620", "cat"),
    "dog": ("02084071", "dog"), "horse": ("02374451", "horse"), "sheep": ("02411705", "sheep"),
    "cow": ("02402425", "cattle"), "elephant": ("02503517", "elephant"), "bear": ("02131653", "bear"),
    "zebra": ("02391049", "zebra"), "giraffe": ("02439033", "giraffe"),
    "backpack": ("02769748", "backpack"), "umbrella": ("04507155", "umbrella"),
    "handbag": ("02774152", "handbag"), "tie": ("03815615", "necktie"),
    "suitcase": ("02773838", "suitcase"), "frisbee": ("03397947", "Frisbee"),
    "skis": ("04228054", "ski"), "snowboard": ("04251791", "snowboard"),
    "sports ball": ("02778669", "ball"), "kite": ("03621473", "kite"),
    "baseball bat": ("02799175", "baseball_bat"), "baseball glove": ("02800213", "baseball_glove"),
    "skateboard": ("04225987", "skateboard"), "surfboard": ("04363559", "surfboard"),
    "tennis racket": ("04409806", "tennis_racket"), "bottle": ("02876657", "bottle"),
    "wine glass": ("04592099", "wineglass"), "cup": ("03147509", "cup"), "fork": ("03383948", "fork"),
    "knife": ("03623556", "knife"), "spoon": ("04284002", "spoon"), "bowl": ("02880940", "bowl"),
    "banana": ("07753592", "banana"), "apple": ("07739125", "apple"),
    "sandwich": ("07695965", "sandwich"), "orange": ("07747607", "orange"),
    "broccoli": ("07714990", "broccoli"), "carrot": ("07730207", "carrot"),
    "hot dog": ("07697537", "hotdog"), "pizza": ("07873807", "pizza"), "donut": ("07639069", "doughnut"),
    "cake": ("07628870", "cake"), "chair": ("03001627", "chair"), "couch": ("04256520", "couch"),
    "potted plant": ("11536230", "pot_plant"), "bed": ("02818832", "bed"),
    "dining table": ("03201208", "dining_table"), "toilet": ("04446521", "toilet"),
    "tv": ("04405907", "tv"), "laptop": ("03642806", "laptop"), "mouse": ("03793489", "computer_mouse"),
    "remote": ("04074963", "remote"), "keyboard": ("03614007", "keyboard"),
    "cell phone": ("02992529", "cellphone"), "microwave": ("03761084", "microwave"),
    "oven": ("03862676", "oven"), "toaster": ("04442312", "toaster"), "sink": ("04223580", "sink"),
    "refrigerator": ("04070727", "refrigerator"), "book": ("02870092", "book"),
    "clock": ("03046257", "clock"), "vase": ("04522168", "vase"), "scissors": ("04148054", "scissors"),
    "teddy bear": ("04399382", "teddy_bear"), "hair drier": ("03483316", "hair_drier"),
    "toothbrush": ("04453156", "toothbrush"),
}

_DATA_LINE = re.compile(r"^(\d{8}) \d\d [nNsS] ([0-9a-f]{2}) ")


def _lemma(raw: str) -> str:
    """``Felis_catus`` → ``Felis catus``; ``mouse(a)`` → ``mouse`` (adjective markers dropped).

    Case is kept: it tells ImageNet's "Cardigan" (the corgi) from its "cardigan" (the sweater),
    and ImageNet's class names are exactly these first lemmas."""
    return re.sub(r"\([a-z]+\)$", "", raw).replace("_", " ")


def read_data_noun(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """offset → (lemmas as written, hypernym offsets incl. instance hypernyms)."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or not line.strip():
            continue  # the licence header
        fields = line.split(" | ", 1)[0].split()
        offset, w_cnt = fields[0], int(fields[3], 16)
        words = [fields[4 + 2 * i] for i in range(w_cnt)]
        i = 4 + 2 * w_cnt
        p_cnt = int(fields[i])
        hypers = []
        for j in range(p_cnt):
            sym, target, pos = fields[i + 1 + 4 * j : i + 4 + 4 * j]
            if sym in ("@", "@i") and pos == "n":
                hypers.append(target)
        out[offset] = (words, hypers)
    return out


def read_index_noun(path: Path) -> dict[str, list[str]]:
    """lemma (lower case, spaces) → synset offsets, most frequent sense first."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or not line.strip():
            continue
        f = line.split()
        n = int(f[2])
        out[f[0].replace("_", " ")] = f[-n:]
    return out


def read_exceptions(path: Path) -> dict[str, str]:
    """Irregular plural → base form ("geese" → "goose")."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        f = line.split()
        if len(f) >= 2:
            out.setdefault(f[0].replace("_", " "), f[1].replace("_", " "))
    return out


def licence_text(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line.startswith("  "):
            break
        lines.append(re.sub(r"^\s+\d+ ?", "", line).rstrip())
    return "\n".join(lines).strip() + "\n"


def derive(wn: Path) -> dict:
    data = read_data_noun(wn / "data.noun")
    index = read_index_noun(wn / "index.noun")
    exc = read_exceptions(wn / "noun.exc")
    tsv = (DATA / "imagenet_classes.tsv").read_text(encoding="utf-8")
    imagenet = [line.split("\t", 1)[0][1:] for line in tsv.splitlines() if line.strip()]
    if len(imagenet) != 1000:
        raise SystemExit(f"imagenet_classes.tsv lists {len(imagenet)} classes, expected 1000")
    for off in imagenet:
        if off not in data:
            raise SystemExit(f"ImageNet class n{off} is not a WordNet 3.0 noun synset")
    coco = {}
    for name, (off, lemma) in COCO_SYNSETS.items():
        words = [w.lower() for w in data[off][0]]
        if lemma.lower() not in words:
            raise SystemExit(f"COCO {name!r}: synset {off} has lemmas {words}, not {lemma!r}")
        coco[name] = off
    # the closure: every class and all its hypernyms
    keep: set[str] = set()
    todo = list(imagenet) + list(coco.values())
    while todo:
        off = todo.pop()
        if off in keep:
            continue
        keep.add(off)
        todo.extend(data[off][1])
    synsets = {
        off: {"lemmas": list(dict.fromkeys(_lemma(w) for w in data[off][0])), "hypernyms": data[off][1]}
        for off in sorted(keep)
    }
    # words → the kept senses they can mean, most frequent sense first
    words: dict[str, list[str]] = {}
    for off in sorted(keep):
        for lem in (x.lower() for x in synsets[off]["lemmas"]):
            senses = index.get(lem, [])
            words[lem] = [s for s in senses if s in keep] or [off]
    plurals = {p: base for p, base in sorted(exc.items()) if base in words and p != base}
    return {
        "format": "oculi-wordnet-nouns",
        "format_version": FORMAT_VERSION,
        "source": "WordNet 3.0 (Princeton University), Debian package wordnet-base; see WORDNET_LICENSE",
        "data_noun_sha256": hashlib.sha256((wn / "data.noun").read_bytes()).hexdigest(),
        "imagenet": imagenet,
        "coco": coco,
        "synsets": synsets,
        "words": dict(sorted(words.items())),
        "plurals": plurals,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"), help="WordNet 3.0 dict folder")
    args = ap.parse_args()
    if not (args.wordnet / "data.noun").exists():
        raise SystemExit(f"{args.wordnet}/data.noun not found: install Debian's wordnet-base (apt-get install wordnet-base)")
    table = derive(args.wordnet)
    OUT.write_text(json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n", encoding="utf-8")
    LICENSE_OUT.write_text(licence_text(args.wordnet / "data.noun"), encoding="utf-8")
    print(f"{OUT.relative_to(REPO)}: {len(table['synsets'])} synsets, {len(table['words'])} words, "
          f"{OUT.stat().st_size / 1024:.0f} KiB; licence in {LICENSE_OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()

"""Reading training and evaluation data in the formats people have, refusing what cannot be used.

- Folder per class (``oculi train classifier``): ``DIR/<class>/*.jpg``.
- Image-caption pairs (``oculi train adapter``, ``oculi eval captions``): a CSV with a header
  ``image,caption`` (paths relative to the CSV), or a COCO-captions JSON (``images`` with
  ``id``/``file_name``, ``annotations`` with ``image_id``/``caption``).
- Image-question-answer (``oculi train vqa``/``lora``, ``oculi eval vqa``): the easy-VQA layout
  (``questions.json`` = ``[[question, answer, image_id], ...]`` beside ``images/<id>.png``),
  VQAv2 (a questions JSON and an annotations JSON, ``--images DIR``), or JSON Lines
  ``{"image", "question", "answer"}``.

Every reader returns what it can use and a list of ``problems`` (one sentence each: what was
skipped and why); it raises ``InputError`` when nothing usable is left, naming the reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from oculi.core.errors import InputError, input_error_from_os
from oculi.imageio import IMAGE_SUFFIXES
from oculi.tasks.index.walk import walk_images

MIN_PER_CLASS = 2  # one to train on, one to test on


@dataclass
class ClassData:
    """Images and their class (indices into ``classes``), and what was skipped."""

    paths: list[str]
    labels: list[int]
    classes: list[str]
    problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(self.labels)
        return {name: c.get(i, 0) for i, name in enumerate(self.classes)}


@dataclass
class PairData:
    """Image-caption pairs (several captions may share an image), and what was skipped."""

    images: list[str]
    captions: list[str]
    problems: list[str] = field(default_factory=list)


@dataclass
class VQAItem:
    image: str
    question: str
    answers: tuple[str, ...]  # every annotator's answer (VQAv2: ten); one for easy-VQA / JSONL
    question_id: str = ""

    @property
    def answer(self) -> str:
        """The most frequent answer (VQAv2's ``multiple_choice_answer`` when given)."""
        return Counter(self.answers).most_common(1)[0][0]


@dataclass
class VQAData:
    items: list[VQAItem]
    problems: list[str] = field(default_factory=list)
    answer_list: list[str] | None = None  # the data set's own answer vocabulary, when it has one


def _read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise input_error_from_os(str(path), e) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path}: {what} is not UTF-8 text (a byte that is not UTF-8 on line {line}); "
                         "save it as UTF-8 and try again") from None


def _read_json(path: Path, what: str) -> Any:
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(f"{path}: {what} is not valid JSON ({e})") from None


# --- folder per class -------------------------------------------------------------------------------
def read_class_folders(root: str | Path, *, min_per_class: int = MIN_PER_CLASS) -> ClassData:
    """Images of ``root/<class>/`` (each class folder walked recursively).

    Empty class folders, classes with fewer than ``min_per_class`` images, image files right in
    ``root`` and unreadable entries are skipped with a problem line each.

    Raises:
        InputError: ``root`` is not a folder, or fewer than two usable classes are left.
    """
    r = Path(root)
    if not r.exists():
        raise InputError(f"{root}: no such folder")
    if not r.is_dir():
        raise InputError(f"{root}: not a folder; give a folder with one sub-folder per class")
    problems: list[str] = []
    try:
        entries = sorted(r.iterdir(), key=lambda p: p.name)
    except OSError as e:
        raise input_error_from_os(str(root), e) from None
    loose = [p.name for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        problems.append(f"{len(loose)} image(s) directly in {root} ({loose[0]}, ...) belong to no class and were left out; "
                        "put each image in a sub-folder named after its class")
    paths: list[str] = []
    labels: list[int] = []
    classes: list[str] = []
    for d in entries:
        if not d.is_dir() or d.name.startswith("."):
            continue
        walk = walk_images([d])
        problems += [f"{p['path']}: {p['problem']}" for p in walk.problems]
        files = sorted(f.path for f in walk.files)
        if not files:
            problems.append(f"class {d.name!r} has no images ({d}); left out")
            continue
        if len(files) < min_per_class:
            problems.append(f"class {d.name!r} has {len(files)} image; at least {min_per_class} are needed "
                            "(one to train on, one to test on); left out")
            continue
        idx = len(classes)
        classes.append(d.name)
        paths += files
        labels += [idx] * len(files)
    if len(classes) < 2:
        detail = "; ".join(problems[-3:]) if problems else "no sub-folders with images"
        raise InputError(f"{root}: a classifier needs at least two classes with {min_per_class}+ images each, "
                         f"found {len(classes)} ({detail})")
    return ClassData(paths, labels, classes, problems)


def stratified_split(labels: Sequence[int], test_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Indices of a train and a held-out split with every class in both (at least one each).

    Example:
        >>> tr, te = stratified_split([0, 0, 0, 0, 1, 1], 0.25)
        >>> sorted(tr + te) == list(range(6)), len(te)
        (True, 2)
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"the held-out fraction must lie between 0 and 1, got {test_fraction}")
    rng = random.Random(seed)
    by: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by.setdefault(int(y), []).append(i)
    train: list[int] = []
    test: list[int] = []
    for _, idx in sorted(by.items()):
        rng.shuffle(idx)
        n_test = min(len(idx) - 1, max(1, round(len(idx) * test_fraction))) if len(idx) > 1 else 0
        test += idx[:n_test]
        train += idx[n_test:]
    return sorted(train), sorted(test)


# --- image-caption pairs ------------------------------------------------------------------------------
def read_pairs(path: str | Path, *, images_dir: str | Path | None = None) -> PairData:
    """Image-caption pairs from a CSV (``image,caption``) or a COCO-captions JSON.

    Image paths are relative to ``images_dir`` (default: the file's folder). Rows naming a
    missing image or with an empty caption are skipped with a problem line each.

    Raises:
        InputError: unreadable or malformed file, not UTF-8, or no usable pair.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file" if not p.exists() else f"{path}: not a file")
    base = Path(images_dir) if images_dir is not None else p.parent
    if images_dir is not None and not base.is_dir():
        raise InputError(f"{images_dir}: no such folder")
    if p.suffix.lower() == ".json":
        rows, problems = _coco_rows(p)
    else:
        rows, problems = _csv_rows(p)
    images: list[str] = []
    captions: list[str] = []
    missing = 0
    for where, img, cap in rows:
        cap = " ".join(cap.split())
        if not cap:
            problems.append(f"{where}: empty caption; skipped")
            continue
        ip = Path(img) if os.path.isabs(img) else base / img
        if not ip.is_file():
            missing += 1
            if missing <= 20:
                problems.append(f"{where}: image {img!r} not found (looked at {ip}); skipped")
            continue
        images.append(str(ip.resolve()))
        captions.append(cap)
    if missing > 20:
        problems.append(f"... {missing - 20} more rows name images that are not there")
    if not images:
        raise InputError(f"{path}: no usable image-caption pair ({'; '.join(problems[:3]) or 'the file has no rows'})")
    return PairData(images, captions, problems)


def _csv_rows(p: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    text = _read_text(p, "the CSV file")
    try:
        reader = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise InputError(f"{p}: not a readable CSV file ({e})") from None
    if not reader:
        raise InputError(f"{p}: the CSV file is empty; it needs a header `image,caption` and one row per pair")
    header = [h.strip().lower() for h in reader[0]]
    if "image" not in header or "caption" not in header:
        raise InputError(f"{p}: the first line must be the header `image,caption` (found {','.join(reader[0])[:80]!r})")
    ii, ci = header.index("image"), header.index("caption")
    rows, problems = [], []
    for n, row in enumerate(reader[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) <= max(ii, ci):
            problems.append(f"{p.name}:{n}: {len(row)} column(s), expected image and caption; skipped")
            continue
        rows.append((f"{p.name}:{n}", row[ii].strip(), row[ci]))
    return rows, problems


def _coco_rows(p: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    doc = _read_json(p, "the COCO captions file")
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("annotations"), list):
        raise InputError(f"{p}: not a COCO captions file (it needs \"images\" and \"annotations\" lists)")
    files: dict[Any, str] = {}
    for im in doc["images"]:
        if isinstance(im, dict) and "id" in im and isinstance(im.get("file_name"), str):
            files[im["id"]] = im["file_name"]
    rows, problems = [], []
    for n, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not isinstance(a.get("caption"), str):
            problems.append(f"{p.name}: annotation {n} has no caption; skipped")
            continue
        fname = files.get(a.get("image_id"))
        if fname is None:
            problems.append(f"{p.name}: annotation {n} names image id {a.get('image_id')!r}, which \"images\" does not list; skipped")
            continue
        rows.append((f"{p.name}: annotation {n}", fname, a["caption"]))
    return rows, problems


def split_by_image(images: Sequence[str], test_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Pair indices of a train and a held-out split that share no image."""
    uniq = sorted(set(images))
    if len(uniq) < 4:
        raise InputError(f"{len(uniq)} distinct images; a train and a held-out split need at least 4")
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n_test = max(2, round(len(uniq) * test_fraction))
    held = set(uniq[:n_test])
    train = [i for i, im in enumerate(images) if im not in held]
    test = [i for i, im in enumerate(images) if im in held]
    return train, test


# --- image, question, answer ------------------------------------------------------------------------
def read_vqa(path: str | Path, *, split: str | None = None, annotations: str | Path | None = None,
             images_dir: str | Path | None = None) -> VQAData:
    """Image-question-answer items from the easy-VQA layout, VQAv2 JSON or JSON Lines.

    Args:
        path: An easy-VQA data folder (with ``train/``, ``test/``; pick one with ``split``) or
            split folder (``questions.json`` + ``images/``); a VQAv2 questions JSON (with
            ``annotations``); or a ``.jsonl`` file.
        split: For an easy-VQA data folder: ``train`` or ``test``.
        annotations: The VQAv2 annotations JSON.
        images_dir: Where the images are (VQAv2; JSON Lines: default the file's folder).

    Raises:
        InputError: an unknown layout, malformed files, or no usable item.
    """
    p = Path(path)
    if p.is_dir():
        return _easy_vqa(p, split)
    if not p.is_file():
        raise InputError(f"{path}: no such file or folder")
    if p.suffix.lower() == ".jsonl":
        return _vqa_jsonl(p, Path(images_dir) if images_dir else p.parent)
    if annotations is None:
        raise InputError(f"{path}: a VQAv2 questions file needs its annotations file (--annotations FILE) and --images DIR")
    if images_dir is None:
        raise InputError("VQAv2 data needs --images DIR (the folder of the COCO images)")
    return _vqav2(p, Path(annotations), Path(images_dir))


def _easy_vqa(d: Path, split: str | None) -> VQAData:
    answers_file = d / "answers.txt"
    if not (d / "questions.json").is_file():
        if split is None and (d / "train").is_dir() and (d / "test").is_dir():
            raise InputError(f"{d}: an easy-VQA data folder has train/ and test/; choose one with --split train|test")
        if split is not None and (d / split / "questions.json").is_file():
            answers_file = d / "answers.txt"
            d = d / split
        else:
            raise InputError(f"{d}: not the easy-VQA layout (questions.json beside images/, or train/ and test/ holding them)")
    elif split is not None:
        raise InputError(f"{d} is already one split; --split is for the folder holding train/ and test/")
    if not answers_file.is_file():
        answers_file = d.parent / "answers.txt"
    doc = _read_json(d / "questions.json", "questions.json")
    if not isinstance(doc, list):
        raise InputError(f"{d / 'questions.json'}: expected a list of [question, answer, image_id]")
    images = d / "images"
    items: list[VQAItem] = []
    problems: list[str] = []
    missing: set[str] = set()
    for n, row in enumerate(doc):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str)):
            problems.append(f"questions.json item {n}: not [question, answer, image_id]; skipped")
            continue
        img = images / f"{row[2]}.png"
        if not img.is_file():
            missing.add(str(img))
            continue
        items.append(VQAItem(str(img), row[0], (row[1],), str(n)))
    if missing:
        problems.append(f"{len(missing)} image(s) named by questions.json are missing ({sorted(missing)[0]}, ...); their questions skipped")
    if not items:
        raise InputError(f"{d}: no usable question ({'; '.join(problems[:2]) or 'questions.json is empty'})")
    answer_list = None
    if answers_file.is_file():
        answer_list = [a.strip() for a in _read_text(answers_file, "answers.txt").splitlines() if a.strip()]
    return VQAData(items, problems, answer_list)


def iter_json_lines(text: str, name: str, what: str = "") -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each JSON object line of ``text``; blank lines and lines
    starting with ``#`` are skipped; anything else that is not a JSON object is an ``InputError``
    naming ``name:line`` (``what`` says what an object must hold)."""
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            d = json.loads(s)
        except ValueError as e:
            raise InputError(f"{name}:{n}: not JSON ({e})") from None
        if not isinstance(d, dict):
            raise InputError(f"{name}:{n}: each line must be a JSON object{' with ' + what if what else ''}")
        yield n, d


def _vqa_jsonl(p: Path, base: Path) -> VQAData:
    items: list[VQAItem] = []
    problems: list[str] = []
    for n, d in iter_json_lines(_read_text(p, "the JSON Lines file"), str(p), "image, question and answer"):
        img, q, a = d.get("image"), d.get("question"), d.get("answer", d.get("answers"))
        if isinstance(a, str):
            a = [a]
        if not isinstance(img, str) or not isinstance(q, str) or not q.strip() or not isinstance(a, list) or not a:
            problems.append(f"{p.name}:{n}: needs \"image\", \"question\" and \"answer\"; skipped")
            continue
        ip = Path(img) if os.path.isabs(img) else base / img
        if not ip.is_file():
            problems.append(f"{p.name}:{n}: image {img!r} not found; skipped")
            continue
        items.append(VQAItem(str(ip), q.strip(), tuple(str(x) for x in a), str(d.get("id", n))))
    if not items:
        raise InputError(f"{p}: no usable question ({'; '.join(problems[:2]) or 'the file is empty'})")
    return VQAData(items, problems)


def _vqav2(qpath: Path, apath: Path, images: Path) -> VQAData:
    qdoc = _read_json(qpath, "the VQAv2 questions file")
    adoc = _read_json(apath, "the VQAv2 annotations file")
    if not isinstance(qdoc, dict) or not isinstance(qdoc.get("questions"), list):
        raise InputError(f"{qpath}: not a VQAv2 questions file (it needs a \"questions\" list)")
    if not isinstance(adoc, dict) or not isinstance(adoc.get("annotations"), list):
        raise InputError(f"{apath}: not a VQAv2 annotations file (it needs an \"annotations\" list)")
    if not images.is_dir():
        raise InputError(f"{images}: no such folder")
    ann = {a.get("question_id"): a for a in adoc["annotations"] if isinstance(a, dict)}
    by_id = _image_index(images)
    items: list[VQAItem] = []
    problems: list[str] = []
    no_image: set[Any] = set()
    for q in qdoc["questions"]:
        if not isinstance(q, dict) or not isinstance(q.get("question"), str):
            continue
        a = ann.get(q.get("question_id"))
        if a is None:
            problems.append(f"question {q.get('question_id')!r} has no annotation; skipped")
            continue
        img = by_id.get(str(q.get("image_id")))
        if img is None:
            no_image.add(q.get("image_id"))
            continue
        answers = tuple(str(x.get("answer", "")) for x in a.get("answers", []) if isinstance(x, dict)) or (str(a.get("multiple_choice_answer", "")),)
        items.append(VQAItem(img, q["question"], answers, str(q.get("question_id"))))
    if no_image:
        problems.append(f"{len(no_image)} image id(s) not found in {images} (e.g. {sorted(map(str, no_image))[0]}); their questions skipped")
    if not items:
        raise InputError(f"{qpath}: no usable question ({'; '.join(problems[:2]) or 'no questions'})")
    return VQAData(items, problems)


def _image_index(images: Path) -> dict[str, str]:
    """image id → path: ``123.jpg``, ``000000000123.jpg`` and ``COCO_val2014_000000000123.jpg`` all give ``123``."""
    out: dict[str, str] = {}
    for f in walk_images([images]).files:
        stem = Path(f.path).stem
        tail = stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            out.setdefault(str(int(tail)), f.path)
    return out

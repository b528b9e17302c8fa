"""Training data readers: what they take, and the clear refusals of what they cannot use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.core.errors import InputError
from oculi.tasks.train.data import read_class_folders, read_pairs, read_vqa, split_by_image, stratified_split
from tests.train_data import write_caption_pairs, write_defects


def test_class_folders_skip_empty_and_single_image_classes_with_reasons(tmp_path: Path) -> None:
    write_defects(tmp_path, per_class=3, kinds=("crack", "ok"))
    (tmp_path / "empty").mkdir()
    write_defects(tmp_path / "x", per_class=1, kinds=("lonely",))
    (tmp_path / "lonely").mkdir()
    (tmp_path / "x" / "lonely" / "lonely_0.png").rename(tmp_path / "lonely" / "one.png")
    (tmp_path / "loose.png").write_bytes((tmp_path / "ok" / "ok_0.png").read_bytes())
    data = read_class_folders(tmp_path)
    assert data.classes == ["crack", "ok"]
    assert data.counts() == {"crack": 3, "ok": 3}
    text = "\n".join(data.problems)
    assert "class 'empty' has no images" in text
    assert "class 'lonely' has 1 image; at least 2 are needed" in text
    assert "belong to no class" in text


def test_class_folders_refuse_one_class_a_file_and_a_missing_folder(tmp_path: Path) -> None:
    write_defects(tmp_path, per_class=2, kinds=("crack",))
    with pytest.raises(InputError, match="at least two classes"):
        read_class_folders(tmp_path)
    with pytest.raises(InputError, match="no such folder"):
        read_class_folders(tmp_path / "nope")
    with pytest.raises(InputError, match="not a folder"):
        read_class_folders(tmp_path / "crack" / "crack_0.png")


def test_splits_keep_every_class_on_both_sides_and_images_apart() -> None:
    labels = [0] * 10 + [1] * 2 + [2] * 5
    tr, te = stratified_split(labels, 0.2)
    assert set(tr).isdisjoint(te) and sorted(tr + te) == list(range(17))
    assert {labels[i] for i in te} == {0, 1, 2} == {labels[i] for i in tr}
    images = ["a", "a", "b", "c", "d", "d", "e"]
    tr, te = split_by_image(images, 0.4)
    assert {images[i] for i in tr}.isdisjoint({images[i] for i in te})


def test_caption_csv_skips_missing_images_and_refuses_bad_encodings(tmp_path: Path) -> None:
    csv_path = write_caption_pairs(tmp_path, per_combo=1)
    with open(csv_path, "a", encoding="utf-8") as f:
        f.write("images/gone.png,a missing picture\nimages/red_circle_0.png,\n")
    data = read_pairs(csv_path)
    assert len(data.images) == 30 and len(set(data.images)) == 15
    assert any("'images/gone.png' not found" in p for p in data.problems)
    assert any("empty caption" in p for p in data.problems)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("image,caption\nimages/red_circle_0.png,caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8 text.*line 2"):
        read_pairs(latin)
    noheader = tmp_path / "noheader.csv"
    noheader.write_text("images/red_circle_0.png,a red circle\n", encoding="utf-8")
    with pytest.raises(InputError, match="header `image,caption`"):
        read_pairs(noheader)
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("image,caption\nimages/gone.png,x\n", encoding="utf-8")
    with pytest.raises(InputError, match="no usable image-caption pair"):
        read_pairs(nothing)


def test_coco_captions_json(tmp_path: Path) -> None:
    write_caption_pairs(tmp_path, per_combo=1)
    doc = {"images": [{"id": 1, "file_name": "red_circle_0.png"}, {"id": 2, "file_name": "blue_square_0.png"}],
           "annotations": [{"image_id": 1, "caption": "a red circle"}, {"image_id": 2, "caption": "a blue square"},
                           {"image_id": 7, "caption": "an orphan"}]}
    (tmp_path / "captions.json").write_text(json.dumps(doc), encoding="utf-8")
    data = read_pairs(tmp_path / "captions.json", images_dir=tmp_path / "images")
    assert data.captions == ["a red circle", "a blue square"]
    assert any("image id 7" in p for p in data.problems)
    (tmp_path / "bad.json").write_text('{"images": 3}', encoding="utf-8")
    with pytest.raises(InputError, match="not a COCO captions file"):
        read_pairs(tmp_path / "bad.json")


def test_vqa_layouts(tmp_path: Path) -> None:
    write_caption_pairs(tmp_path, per_combo=1)
    # easy-VQA layout: questions.json beside images/<id>.png
    split = tmp_path / "easy" / "train"
    (split / "images").mkdir(parents=True)
    for i, name in enumerate(["red_circle_0", "blue_square_0"]):
        (split / "images" / f"{i}.png").write_bytes((tmp_path / "images" / f"{name}.png").read_bytes())
    (split / "questions.json").write_text(json.dumps([["what shape is this?", "circle", 0], ["what color is the shape?", "blue", 1],
                                                      ["is it red?", "yes", 5]]))
    (tmp_path / "easy" / "answers.txt").write_text("circle\nblue\nyes\nno\n")
    with pytest.raises(InputError, match="--split train"):
        (tmp_path / "easy" / "test").mkdir() or read_vqa(tmp_path / "easy")
    d = read_vqa(tmp_path / "easy", split="train")
    assert [(Path(i.image).name, i.answer) for i in d.items] == [("0.png", "circle"), ("1.png", "blue")]
    assert d.answer_list == ["circle", "blue", "yes", "no"] and "missing" in d.problems[0]
    # VQAv2: questions + annotations, COCO-style file names
    imgs = tmp_path / "coco"
    imgs.mkdir()
    (imgs / "COCO_val2014_000000000042.png").write_bytes((tmp_path / "images" / "red_circle_0.png").read_bytes())
    (tmp_path / "q.json").write_text(json.dumps({"questions": [{"image_id": 42, "question": "What colour?", "question_id": 1}]}))
    (tmp_path / "a.json").write_text(json.dumps({"annotations": [{"question_id": 1, "image_id": 42, "multiple_choice_answer": "red",
                                                                  "answers": [{"answer": "red"}] * 9 + [{"answer": "orange"}]}]}))
    d = read_vqa(tmp_path / "q.json", annotations=tmp_path / "a.json", images_dir=imgs)
    assert d.items[0].answer == "red" and len(d.items[0].answers) == 10
    with pytest.raises(InputError, match="annotations"):
        read_vqa(tmp_path / "q.json")
    # JSON Lines
    (tmp_path / "v.jsonl").write_text('{"image": "images/red_circle_0.png", "question": "What colour?", "answer": "red"}\n'
                                      '{"image": "images/nope.png", "question": "?", "answer": "x"}\n')
    d = read_vqa(tmp_path / "v.jsonl")
    assert len(d.items) == 1 and "not found" in d.problems[0]


def test_feature_extraction_skips_unreadable_images_and_caches(tmp_path: Path) -> None:
    from oculi.config import Settings
    from oculi.engine import Engine
    from oculi.tasks.train.features import COLOUR_SPACE, FeatureCache, colour_histogram, extract_image_features

    write_defects(tmp_path / "d", per_class=2, kinds=("rust",))
    good = sorted(str(p) for p in (tmp_path / "d" / "rust").iterdir())
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    paths = [good[0], str(tmp_path / "corrupt.png"), str(tmp_path / "gone.png"), str(tmp_path / "empty.jpg"), good[1]]
    eng = Engine(Settings(home=tmp_path / "home"))
    calls = []

    def hist(images):
        calls.append(len(images))
        return colour_histogram(images)

    cache = FeatureCache(tmp_path / "cache")
    f = extract_image_features(eng, paths, {"colour": (COLOUR_SPACE["model"], hist)}, cache=cache)
    assert f.ok == [0, 4] and f.arrays["colour"].shape == (2, 64)
    text = "\n".join(f.problems)
    assert "corrupt.png" in text and "gone.png" in text and "empty.jpg" in text and text.count("skipped") == 3
    again = extract_image_features(eng, paths, {"colour": (COLOUR_SPACE["model"], hist)}, cache=cache)
    assert sum(calls) == 2 and (again.arrays["colour"] == f.arrays["colour"]).all()  # the second run read the cache

"""Each detected object classified on its own crop: which objects, one batched call, real labels."""

from __future__ import annotations

import pytest
from PIL import Image

from oculi.core.labels import imagenet_to_coco
from oculi.core.types import Box, DetectedObject, Label, ObjectSource
from oculi.perception.crops import MAX_CROPS, label_objects, plan_crops


def _obj(label: str, box: tuple[float, float, float, float], source: ObjectSource = ObjectSource.DETECTOR) -> DetectedObject:
    return DetectedObject(label, 0.5, Box(*box), source=source)


def test_plan_takes_the_largest_boxes_and_skips_faces_and_tiny_ones():
    objs = [
        _obj("cup", (0, 0, 50, 50)),
        _obj("cat", (0, 0, 300, 200)),
        _obj("face", (10, 10, 90, 90), ObjectSource.FACES),
        _obj("spoon", (0, 0, 20, 8)),  # too thin
        _obj("dog", (100, 100, 200, 200)),
        _obj("bottle", (300, 300, 380, 460)),
        _obj("person", (0, 0, 640, 480)),  # fills the frame
    ]
    crop, whole = plan_crops(objs, 640, 480)
    assert whole == [6]
    assert MAX_CROPS == 3 and [objs[i].label for i in crop] == ["cat", "bottle", "dog"]  # the cup is the 4th


class _Recorder:
    """Stands in for the classifier where what is tested is the batching, not the model."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def classify(self, images, top_k=5):
        self.calls.append([im.size for im in images])
        return [[Label("tabby", 0.6)] for _ in images]


def test_every_crop_of_a_batch_goes_through_one_call_and_big_boxes_reuse_the_image_labels():
    imgs = [Image.new("RGB", (640, 480)), Image.new("RGB", (320, 240))]
    objs = [[_obj("cat", (10, 20, 110, 220)), _obj("cup", (0, 0, 640, 480))], [_obj("dog", (0, 0, 100, 60))]]
    rec = _Recorder()
    out = label_objects(imgs, objs, rec, image_labels=[[Label("espresso", 0.9)], [Label("beagle", 0.4)]])
    assert rec.calls == [[(100, 200), (100, 60)]]  # one call, the two crops at their own size
    assert out[0][0].labels == (Label("tabby", 0.6),) and out[0][1].labels == (Label("espresso", 0.9),)
    assert out[1][0].labels == (Label("tabby", 0.6),)
    assert label_objects(imgs, [[], []], rec) == [[], []] and len(rec.calls) == 1  # nothing to crop: no call
    off = label_objects(imgs, objs, rec, max_crops=0)  # Settings.object_crops = 0
    assert len(rec.calls) == 1 and off[0][0].labels == () and off[1][0].labels == ()


@pytest.mark.slow
def test_a_cat_beside_a_cup_gets_its_own_name(engine, tmp_path):
    """In a scene whose centre is a cup of espresso, the cat's own crop still says cat."""
    from oculi.scenes import write_vqa_images

    obs = engine.observe(write_vqa_images(tmp_path)["cat_and_cup"], ocr=False)
    assert imagenet_to_coco(obs.labels[0].name) == "cup"  # the whole frame looks like espresso
    cat = next(o for o in obs.objects if o.label == "cat")
    cup = next(o for o in obs.objects if o.label == "cup")
    assert cat.labels and imagenet_to_coco(cat.labels[0].name) == "cat"
    assert cup.labels and imagenet_to_coco(cup.labels[0].name) == "cup"
    assert obs.to_dict()["objects"][0]["labels"][0]["name"] == obs.objects[0].labels[0].name

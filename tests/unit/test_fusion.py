from __future__ import annotations

from oculi.core.types import Box, DetectedObject, Label
from oculi.perception.fusion import reconcile

DOG = DetectedObject("dog", 0.47, Box(50, 20, 400, 290))


def test_split_cat_classes_sum_to_overrule_a_wrong_dog():
    labels = [Label("tiger cat", 0.38), Label("Egyptian cat", 0.37), Label("tabby", 0.17)]
    out = reconcile([DOG], labels, 451, 300)
    assert out[0].label == "cat" and out[0].box == DOG.box


def test_weak_classifier_leaves_detection_alone():
    assert reconcile([DOG], [Label("tabby", 0.2)], 451, 300)[0].label == "dog"


def test_other_family_and_small_boxes_untouched():
    car = DetectedObject("car", 0.5, Box(0, 0, 400, 290))
    small_dog = DetectedObject("dog", 0.3, Box(0, 0, 20, 20))
    out = reconcile([car, small_dog], [Label("Egyptian cat", 0.9)], 451, 300)
    assert {o.label for o in out} == {"car", "dog"}


def test_an_object_is_judged_by_its_own_crop_labels_whatever_its_size():
    small_dog = DetectedObject("dog", 0.3, Box(0, 0, 60, 60), labels=(Label("tabby", 0.5), Label("tiger cat", 0.2)))
    big_dog = DetectedObject("dog", 0.6, Box(100, 0, 450, 300), labels=(Label("golden retriever", 0.7),))
    # the whole image looks like a cat, but the big dog's own crop is a dog: it stays a dog
    out = reconcile([small_dog, big_dog], [Label("Egyptian cat", 0.9)], 451, 300)
    assert [(o.label, o.box) for o in out] == [("cat", small_dog.box), ("dog", big_dog.box)]
    assert out[0].score == 0.7 and out[0].labels == small_dog.labels

from __future__ import annotations

import json

import numpy as np
import pytest

from oculi.core.types import Box, ColourShare, DetectedObject, ImageInfo, Label, Observation, TextLine


def test_box_validates_and_measures():
    b = Box(0, 0, 10, 20)
    assert b.area == 200 and b.center == (5, 10)
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 15, 10)) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        Box(10, 0, 0, 10)
    with pytest.raises(ValueError):
        Box(0, 0, float("nan"), 1)


def test_object_score_range():
    with pytest.raises(ValueError):
        DetectedObject("cat", 1.5, Box(0, 0, 1, 1))
    with pytest.raises(ValueError):
        DetectedObject("", 0.5, Box(0, 0, 1, 1))


def test_observation_roundtrip_json():
    obs = Observation(
        ImageInfo(640, 480, path="/x.png", sha256="ab", format="png", source_id="cam1", frame_index=3, timestamp=1.5),
        objects=(DetectedObject("person", 0.9, Box(1, 2, 3, 4), track_id=7), DetectedObject("cup", 0.4, Box(5, 6, 7, 8), colour="red")),
        labels=(Label("espresso", 0.8),),
        text=(TextLine("HELLO", 0.99, Box(0, 0, 50, 10)),),
        colours=(ColourShare("white", 0.5),),
        embedding=np.ones(4, dtype=np.float32) / 2,
        models={"detector": "x"},
    )
    d = json.loads(json.dumps(obs.to_dict(include_embedding=True)))
    back = Observation.from_dict(d)
    assert back == obs
    assert np.allclose(back.embedding, obs.embedding)
    assert d["counts"] == {"cup": 1, "person": 1}
    assert d["objects"][0]["track_id"] == 7 and "track_id" not in d["objects"][1]
    assert d["image"]["timestamp"] == 1.5
    assert "embedding" not in obs.to_dict()


def test_observation_queries():
    obs = Observation(ImageInfo(10, 10), objects=(DetectedObject("cup", 0.5, Box(0, 0, 1, 1)),) * 2)
    assert obs.count("cup") == 2 and obs.count("CUP") == 2 and obs.count("cat") == 0
    with pytest.raises(ValueError):
        Observation(ImageInfo(10, 10), embedding=np.ones((2, 2)))

"""The bounded coreset keeps its covering promise; regions are described from measured pixels."""

from __future__ import annotations

import numpy as np

from oculi.tasks.inspect.coreset import MemoryBank, greedy_k_center, min_sq_distances
from oculi.tasks.inspect.regions import find_regions, finding_line, position_words
from oculi.tasks.inspect.whiten import Whitening


def test_greedy_k_center_covers_every_point_within_its_radius() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    idx, r_sq = greedy_k_center(x, 100)
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    assert min_sq_distances(x, x[idx]).max() <= r_sq + 1e-3


def test_streaming_bank_grows_with_variety_not_with_repetition() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3000, 32)).astype(np.float32)
    bank = MemoryBank(32, ratio=0.1, seed_patches=3000, max_bank=10_000)
    bank.add(a)
    size_after_seed = len(bank.features())
    for _ in range(3):  # the same patches again (more good images of the same look): nothing new
        bank.add(a + rng.normal(scale=1e-3, size=a.shape).astype(np.float32))
    assert len(bank.features()) == size_after_seed
    bank.add(rng.normal(loc=8.0, size=(500, 32)).astype(np.float32))  # a new look: it is added
    feats = bank.features()
    assert len(feats) > size_after_seed
    proj_all = np.concatenate([a, rng.normal(loc=8.0, size=(1, 32)).astype(np.float32)]) @ bank.projection
    assert bank.patches_seen == 3000 * 4 + 500
    assert min_sq_distances(a @ bank.projection, feats @ bank.projection).max() <= bank.radius_sq * 1.05**2 + 1e-3
    assert proj_all.shape[1] == 128


def test_bank_never_exceeds_its_cap() -> None:
    rng = np.random.default_rng(2)
    bank = MemoryBank(8, ratio=0.5, seed_patches=1000, max_bank=300)
    for _ in range(4):
        bank.add(rng.normal(size=(1000, 8)).astype(np.float32) * 10)
    assert len(bank.features()) == 300 and bank.full


def test_whitening_makes_a_step_along_a_quiet_direction_count_and_survives_a_round_trip(tmp_path) -> None:
    """Good patches vary 100x more along one direction than along the other. Raw, a defect that moves
    a patch 10 quiet standard deviations is nearer the bank than some held-out good patches are
    (it would pass); whitened, it is farther than every one of them."""
    rng = np.random.default_rng(3)
    scales = np.array([10.0, 0.1], dtype=np.float32)
    good = (rng.normal(size=(1000, 2)) * scales).astype(np.float32)
    held = (rng.normal(size=(200, 2)) * scales).astype(np.float32)
    w = Whitening.fit(good, reg=1e-6)
    assert w is not None
    np.testing.assert_allclose(np.cov(w(good), rowvar=False), np.eye(2), atol=0.1)
    quiet = np.array([[0.0, 1.0]], dtype=np.float32)  # 10 sd along the quiet direction
    assert min_sq_distances(quiet, good)[0] < min_sq_distances(held, good).max()
    assert min_sq_distances(w(quiet), w(good))[0] > 3 * min_sq_distances(w(held), w(good)).max()
    loud = np.array([[35.0, 0.0]], dtype=np.float32)
    (tmp_path / "w.npy").write_bytes(w.to_bytes())
    back = Whitening.load(tmp_path / "w.npy")
    np.testing.assert_allclose(back(loud), w(loud), rtol=1e-6)
    bank = MemoryBank(2, ratio=0.2, seed_patches=1000, whiten=1e-6)
    bank.add(good)  # fills the seed pool: the whitening is fitted on it
    assert bank.whitening is not None and bank.features().std(0).min() > 0.5  # the bank lives in the whitened space
    assert Whitening.fit(np.ones((50, 2), dtype=np.float32)) is None  # nothing varies: nothing to whiten by


def _surface(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.clip(128 + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)


def test_a_dark_line_is_described_as_dark_linear_where_it_is() -> None:
    img = _surface()
    img[20:23, 10:60] = 20  # a dark horizontal line, upper left
    heat = np.zeros(img.shape[:2], np.float32)
    heat[12:31, 4:66] = 0.9
    [r] = find_regions(img, heat, 0.6)
    assert r.description == "dark linear anomaly" and r.position == "upper left"
    assert r.contrast < -50 and r.elongation > 3 and r.box == (4, 12, 66, 31)
    line = finding_line([r], 0.9, 0.6, False)
    assert line.startswith("dark linear anomaly, upper left, ") and line.endswith("score 0.90 vs threshold 0.60")


def test_a_bright_spot_is_bright_and_compact_and_no_tone_is_invented_for_a_plain_region() -> None:
    img = _surface()
    img[80:90, 120:130] = 250
    heat = np.zeros(img.shape[:2], np.float32)
    heat[75:95, 115:135] = 0.8
    heat[10:20, 70:90] = 0.7  # above threshold but nothing differs there in the image
    regions = find_regions(img, heat, 0.5)
    assert [r.position for r in regions] == ["lower right", "upper centre"]
    assert regions[0].description == "bright compact anomaly" and regions[0].contrast > 50
    assert regions[1].description in ("compact anomaly", "elongated anomaly")  # shape only: no tone measured


def test_position_words_cover_the_grid() -> None:
    assert position_words(5, 5, 90, 90) == "upper left"
    assert position_words(45, 45, 90, 90) == "centre"
    assert position_words(45, 85, 90, 90) == "middle right"
    assert position_words(89, 45, 90, 90) == "lower centre"


def test_threshold_from_few_held_out_scores_extrapolates_the_tail() -> None:
    """With 5 held-out good scores the empirical 99th percentile is about their maximum, which a
    sixth of good parts exceed; the calibrated threshold is the normal prediction bound, so on
    fresh good scores from the same distribution about 1 % are rejected. With many
    held-out scores it stays the empirical percentile's neighbour."""
    from oculi.tasks.inspect.fit import calibrated_threshold

    rng = np.random.default_rng(0)
    rejected_emp, rejected_cal = [], []
    for _ in range(200):
        val = rng.normal(10.0, 1.0, 5)
        fresh = rng.normal(10.0, 1.0, 200)
        emp, cal = float(np.percentile(val, 99)), calibrated_threshold(val, 99.0)
        assert cal >= emp
        rejected_emp.append(float((fresh > emp).mean()))
        rejected_cal.append(float((fresh > cal).mean()))
    assert np.mean(rejected_emp) > 0.1 and np.mean(rejected_cal) < 0.02
    many = rng.normal(10.0, 1.0, 5000)
    assert abs(calibrated_threshold(many, 99.0) - np.percentile(many, 99)) < 0.1
    assert calibrated_threshold([3.0], 99.0) == 3.0  # one score: nothing to fit

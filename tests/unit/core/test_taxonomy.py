"""The WordNet hypernym table: what the shipped table says about real ImageNet and COCO classes."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path

import pytest

from oculi.core.errors import ModelAssetError
from oculi.language.vocab import imagenet_lemmas
from oculi.core.taxonomy import TABLE_FILE, parse_table, taxonomy

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("label", "word", "category"),
    [
        ("palace", "building", "building"),
        ("daisy", "flower", "flower"),
        ("tabby", "animal", "animal"),
        ("tabby", "cats", "cat"),
        ("military uniform", "clothing", "clothing"),
        ("academic gown", "clothing", "clothing"),
        ("lab coat", "garment", "garment"),
        ("cardigan", "clothing", "clothing"),  # the sweater; "Cardigan" (capital C) is the corgi
        ("Cardigan", "dog", "dog"),
        ("espresso", "drink", "beverage"),
        ("sports car", "vehicle", "vehicle"),
        ("Granny Smith", "fruit", "fruit"),
    ],
)
def test_imagenet_classes_are_kinds_of_their_hypernyms(label, word, category):
    tax = taxonomy()
    assert tax.kind_of(label, tax.senses(word)) == category


def test_unrelated_classes_are_not_kinds():
    tax = taxonomy()
    assert tax.kind_of("palace", tax.senses("animal")) is None
    assert tax.kind_of("espresso", tax.senses("building")) is None
    assert tax.kind_of("tabby", tax.senses("dog")) is None


def test_every_imagenet_class_resolves_and_has_a_path_to_entity():
    tax = taxonomy()
    names = [lemmas[0] for lemmas in imagenet_lemmas()]
    assert len(tax.imagenet) == 1000
    for name in names:
        anc = tax.label_ancestors(name)
        assert anc, name
        if name not in ("crane", "maillot"):
            assert "00001740" in anc, name


def test_too_general_words_name_no_category():
    tax = taxonomy()
    for w in ("entity", "object", "whole", "artifact", "organism", "thing"):
        assert tax.senses(w) == (), w


def test_plurals_and_irregular_plurals():
    tax = taxonomy()
    assert tax.senses("flowers") == tax.senses("flower") != ()
    assert tax.senses("wolves") == tax.senses("wolf") != ()
    assert tax.senses("buses") == tax.senses("bus") != ()


def test_shared_first_lemma_is_only_what_both_classes_are():
    tax = taxonomy()
    # ImageNet has "crane" the bird and "crane" the machine: neither claim is safe
    assert tax.kind_of("crane", tax.senses("bird")) is None
    assert tax.kind_of("crane", tax.senses("device")) is None


def test_coco_of_picks_the_most_specific_coco_class():
    tax = taxonomy()
    assert tax.coco_of("tabby") == "cat"
    assert tax.coco_of("golden retriever") == "dog"
    assert tax.coco_of("sports car") == "car"
    assert tax.coco_of("kite") == "bird"  # ImageNet's kite is the bird of prey, not the toy
    assert tax.coco_of("palace") is None
    assert tax.coco_of("cat") == "cat"  # a COCO name is its own class


def test_every_coco_class_is_pinned_to_a_sense():
    from oculi.language.vocab import COCO_CLASSES

    tax = taxonomy()
    assert set(tax.coco) == set(COCO_CLASSES) - {"stop sign"}  # WordNet has no stop sign
    assert tax.kind_of("dog", tax.senses("animal")) == "animal"
    assert tax.kind_of("mouse", tax.senses("device")) == "device"  # the computer mouse


def test_damaged_table_is_refused():
    raw = resources.files("oculi.data").joinpath(TABLE_FILE).read_bytes()
    assert parse_table(raw).name("03877845") == "palace"
    with pytest.raises(ModelAssetError, match="damaged"):
        parse_table(raw.replace(b'"palace"', b'"palaces"'))


def test_licence_ships_with_the_table():
    text = resources.files("oculi.data").joinpath("WORDNET_LICENSE").read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in text


@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="Debian wordnet-base not installed")
def test_derivation_reproduces_the_shipped_table():
    spec = importlib.util.spec_from_file_location("derive_wordnet", REPO / "scripts" / "derive_wordnet.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shipped = json.loads(resources.files("oculi.data").joinpath(TABLE_FILE).read_bytes())
    assert mod.derive(Path("/usr/share/wordnet")) == shipped

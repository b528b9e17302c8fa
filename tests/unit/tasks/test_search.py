"""Search logic with a deterministic fake perceiver: parsing, filters, hybrid ranking, why, image
queries, duplicates and the retrieval evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from oculi.core.errors import InputError, NotFoundError
from oculi.library import Library
from oculi.store import Op, open_store
from oculi.tasks.evaluate import load_queries
from oculi.tasks.search import build_filter, parse_query, parse_time, parse_where
from tests.search_fakes import fake_engine, write_png


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("search")
    root = tmp / "photos"
    write_png(root / "cat.png", "grey", labels=[("tabby", 0.7), ("tiger cat", 0.2)], objects=[{"label": "cat", "score": 0.9}], pattern=1)
    write_png(root / "people" / "crowd.png", "brown", objects=[{"label": "person"}, {"label": "person"}, {"label": "dog", "score": 0.6}], pattern=2)
    write_png(root / "cars" / "red_car.png", "red", objects=[{"label": "car", "colour": "red", "score": 0.8}], pattern=3)
    write_png(root / "cars" / "blue_car.png", "blue", objects=[{"label": "car", "colour": "blue", "score": 0.85}], pattern=4)
    write_png(root / "coffee.png", "brown", labels=[("espresso", 0.9)], objects=[{"label": "cup", "colour": "white"}], pattern=5)
    write_png(root / "docs" / "poster.png", "white", text=["LIMITED EDITION", "Oculi Summer Sale 2024"], pattern=6)
    write_png(root / "rocket.png", "blue", labels=[("space shuttle", 0.5)], pattern=7)
    big = Image.open(root / "cat.png").resize((256, 192), Image.Resampling.NEAREST)
    big.save(root / "cat_big.jpg", quality=95)  # a near-duplicate of cat.png
    eng = fake_engine(tmp / "home")
    store = open_store(eng.settings)
    rep = Library(eng, store).index([root], "lib")
    assert rep.failed == [] and rep.added == 8
    return eng, store, root, rep


def names(res) -> list[str]:
    return [Path(r.path).name for r in res.results]


def test_parse_query_concepts() -> None:
    c = parse_query("Two RED cars, a cat and some people")
    assert c.objects == ("car", "cat", "person") and c.colours == ("red",)
    assert parse_query("espresso").labels == ("espresso",)
    assert parse_query("teddy bear").objects == ("teddy bear",)
    assert parse_query("coffee cup").words == ("coffee",)
    assert parse_query("the of a").concepts == ()


def test_parse_where_and_filters() -> None:
    conds = parse_where(["object=people", "colour=Gray, width>=640", "text~sale and path~*/docs/*"])
    got = [(c.field, c.op, c.value) for c in conds]
    assert got == [("object_terms", Op.HAS, "person"), ("colours", Op.HAS, "grey"), ("width", Op.GE, 640.0),
                   ("text", Op.CONTAINS, "sale"), ("path", Op.GLOB, "*/docs/*")]
    assert parse_where("object='red cars'")[0].value == "red car"
    assert parse_where("label=tabby cat")[0].value == "tabby"
    for bad in ("object", "nokey=1", "width=wide", "object>3", "colour="):
        with pytest.raises(InputError):
            parse_where(bad)
    f = build_filter(None, after="2021-06-01", before="2022", path_glob="holiday/*.jpg")
    assert [(c.field, c.op.value) for c in f.conditions] == [("time", ">="), ("time", "<"), ("path", "glob")]
    assert f.conditions[2].value == "*/holiday/*.jpg"
    with pytest.raises(InputError):
        build_filter(None, after="2022", before="2021")
    with pytest.raises(InputError, match="cannot read"):
        parse_time("last tuesday")
    assert parse_time("2021-06-01") == parse_time("2021-06-01T00:00:00Z") == 1622505600.0


def test_text_queries_rank_what_was_seen_first(lib) -> None:
    eng, store, root, _ = lib
    library = Library(eng, store)
    assert names(library.search("lib", text="a cat"))[0] in ("cat.png", "cat_big.jpg")
    assert names(library.search("lib", text="coffee"))[0] == "coffee.png"  # via the label gloss
    assert names(library.search("lib", text="a rocket"))[0] == "rocket.png"  # "space shuttle or rocket"
    assert names(library.search("lib", text="people"))[0] == "crowd.png"  # synonym → person
    res = library.search("lib", text="red car")
    assert names(res)[:2] == ["red_car.png", "blue_car.png"]
    top = res.results[0]
    assert "red car" in top.matched["objects"][0] and any(w.startswith("object: red car") for w in top.why)
    assert 0 < top.score <= 1 and set(top.scores) == {"semantic", "keyword", "exact"}


def test_ocr_text_query(lib) -> None:
    eng, store, _, _ = lib
    library = Library(eng, store)
    res = library.search("lib", text="limited edition")
    assert names(res)[0] == "poster.png"
    assert res.results[0].matched["text"] == ["limited edition"]
    assert any("LIMITED EDITION" in w for w in res.results[0].why)
    assert names(library.search("lib", text="summer sale"))[0] == "poster.png"


def test_filters_in_search(lib) -> None:
    eng, store, _, _ = lib
    library = Library(eng, store)
    assert names(library.search("lib", text="car", where="object=person")) == ["crowd.png"]
    assert set(names(library.search("lib", text="car", path_glob="cars/*"))) == {"red_car.png", "blue_car.png"}
    assert names(library.search("lib", text="car", where=["object=car", "colour=blue"])) == ["blue_car.png"]
    assert library.search("lib", text="car", before="1990-01-01").results == []
    assert library.search("lib", text="car", where="object=x' OR 1=1 --").results == []


def test_results_json_shape(lib) -> None:
    eng, store, _, rep = lib
    library = Library(eng, store)
    doc = library.search("lib", text="a cat", top_k=3).to_dict()
    assert doc["schema_version"] and doc["collection"] == "lib" and doc["query"]["text"] == "a cat"
    assert len(doc["results"]) == 3
    r = doc["results"][0]
    assert {"id", "path", "score", "why", "caption", "matched", "labels", "objects", "colours", "time"} <= set(r)
    assert r["id"] in rep.ids.values()
    json.dumps(doc)


def test_bad_queries(lib, tmp_path: Path) -> None:
    eng, store, _, _ = lib
    library = Library(eng, store)
    with pytest.raises(InputError, match="empty"):
        library.search("lib", text="   ")
    with pytest.raises(InputError):
        library.search("lib")
    with pytest.raises(NotFoundError):
        library.search("nope", text="cat")
    (tmp_path / "q.jpg").write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        library.search("lib", image=tmp_path / "q.jpg")
    with pytest.raises(InputError):
        library.search("lib", image=tmp_path / "missing.jpg")
    with pytest.raises(InputError):
        library.search("lib", text="cat", top_k=0)


def test_image_query_finds_the_original(lib, tmp_path: Path) -> None:
    eng, store, root, _ = lib
    library = Library(eng, store)
    img = Image.open(root / "cars" / "red_car.png")
    w, h = img.size
    img.crop((2, 2, w - 3, h - 2)).resize((w * 2, h * 2)).save(tmp_path / "query.jpg", quality=85)
    res = library.search("lib", image=tmp_path / "query.jpg", top_k=3)
    assert names(res)[0] == "red_car.png"
    assert res.results[0].why[0].startswith("looks similar") and res.results[0].scores["visual"] > 0.9
    both = library.search("lib", text="car", image=tmp_path / "query.jpg", top_k=3)
    assert names(both)[0] == "red_car.png"


def test_duplicates(lib) -> None:
    eng, store, root, _ = lib
    library = Library(eng, store)
    rep = library.duplicates("lib", threshold=0.95)
    groups = [sorted(Path(i["path"]).name for i in g.items) for g in rep.groups]
    assert ["cat.png", "cat_big.jpg"] in groups
    assert rep.to_dict()["groups"][0]["items"][0]["path"].endswith("cat_big.jpg")  # the largest first
    with pytest.raises(InputError):
        library.duplicates("lib", threshold=0)


def test_duplicates_through_the_ann_path(lib, monkeypatch: pytest.MonkeyPatch) -> None:
    import oculi.tasks.search.duplicates as search_mod

    eng, store, root, _ = lib
    library = Library(eng, store)
    exact = library.duplicates("lib", threshold=0.95).to_dict()["groups"]
    monkeypatch.setattr(search_mod, "DUPLICATE_EXACT_LIMIT", 2)
    approx = library.duplicates("lib", threshold=0.95).to_dict()["groups"]
    key = lambda gs: sorted(sorted(i["id"] for i in g["items"]) for g in gs)  # noqa: E731
    assert key(approx) == key(exact) and approx


def test_exact_duplicates(tmp_path: Path) -> None:
    eng = fake_engine(tmp_path / "home")
    store = open_store(eng.settings)
    a = write_png(tmp_path / "p" / "a.png", "red", pattern=1)
    (tmp_path / "p" / "copy.png").write_bytes(a.read_bytes())
    write_png(tmp_path / "p" / "b.png", "blue", pattern=2)
    library = Library(eng, store)
    library.index([tmp_path / "p"], "d")
    rep = library.duplicates("d")
    exact = [g for g in rep.groups if g.exact]
    assert len(exact) == 1 and sorted(Path(i["path"]).name for i in exact[0].items) == ["a.png", "copy.png"]


def test_retrieval_evaluation(lib, tmp_path: Path) -> None:
    eng, store, root, rep = lib
    library = Library(eng, store)
    qf = tmp_path / "queries.jsonl"
    qf.write_text("\n".join([
        "# comment lines and blank lines are ignored",
        json.dumps({"id": "cat", "query": "a cat", "relevant": ["cat.png", "cat_big.jpg"]}),
        json.dumps({"query": "limited edition", "relevant": ["docs/poster.png"]}),
        "",
        json.dumps({"query": "coffee", "relevant": [rep.ids[str(root / "coffee.png")]]}),
        json.dumps({"query": "red car", "relevant": [str(root / "cars" / "red_car.png")]}),
        json.dumps({"query": "zebra", "relevant": ["no-such-file.png"]}),
    ]))
    r = library.evaluate_retrieval("lib", qf)
    assert len(r.queries) == 4 and r.unresolved == [{"query": "q7", "relevant": "no-such-file.png"}]
    assert r.recall[1] == pytest.approx((0.5 + 1 + 1 + 1) / 4) and r.recall[10] == 1.0 and r.mrr == 1.0
    d = r.to_dict()
    assert d["recall"]["@10"] == 1.0 and d["n_queries"] == 4


@pytest.mark.parametrize("line,err", [
    ("not json", "not JSON"), ("[1]", "JSON object"), ('{"relevant": ["a"]}', "needs"),
    ('{"query": "", "relevant": ["a"]}', "non-empty"), ('{"query": "x", "relevant": []}', "relevant"),
])
def test_query_file_errors(tmp_path: Path, line: str, err: str) -> None:
    qf = tmp_path / "q.jsonl"
    qf.write_text(line + "\n")
    with pytest.raises(InputError, match=err):
        load_queries(qf)
    with pytest.raises(InputError, match="no such"):
        load_queries(tmp_path / "missing.jsonl")

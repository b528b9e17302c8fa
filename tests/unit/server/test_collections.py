"""Collections over HTTP with the real store and ingestion (perception is the test double).

Covers isolation between collection-bound keys, hostile collection names and item ids,
uploads as jobs with progress, browsing and thumbnails, search, cancel and delete.
"""

from __future__ import annotations

import time

import pytest

from tests.unit.server.conftest import bearer, png_bytes

pytest.importorskip("lancedb")


def _wait_job(c, key, job_id, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = c.get(f"/api/v1/jobs/{job_id}", headers=bearer(key)).json()
        if j["state"] in ("done", "failed", "cancelled"):
            return j
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def _upload(c, key, name, images):
    files = [("images", (n, data, "image/png")) for n, data in images]
    return c.post(f"/api/v1/collections/{name}/images", files=files, headers=bearer(key))


@pytest.fixture()
def client(make_client):
    return make_client(store_factory="default")


def test_create_list_and_isolation(client, keys):
    c = client
    assert c.post("/api/v1/collections", json={"name": "alpha"}, headers=bearer(keys["write"])).status_code == 201
    assert c.post("/api/v1/collections", json={"name": "beta"}, headers=bearer(keys["write"])).status_code == 201
    # read scope cannot create
    assert c.post("/api/v1/collections", json={"name": "gamma"}, headers=bearer(keys["read"])).status_code == 403
    names = [x["name"] for x in c.get("/api/v1/collections", headers=bearer(keys["read"])).json()["collections"]]
    assert names == ["alpha", "beta"]
    # a key bound to alpha lists only alpha and cannot touch beta, nor a missing gamma (no existence oracle)
    r = c.get("/api/v1/collections", headers=bearer(keys["alpha_read"]))
    assert [x["name"] for x in r.json()["collections"]] == ["alpha"]
    assert "beta" not in r.text
    for key in ("alpha_read", "alpha_write", "alpha_admin"):
        for path in ("/api/v1/collections/beta", "/api/v1/collections/beta/items", "/api/v1/collections/gamma",
                     "/api/v1/jobs?collection=beta"):
            r = c.get(path, headers=bearer(keys[key]))
            assert r.status_code == 403, (key, path)
            assert "beta" not in r.json()["error"]["message"] or path.endswith("gamma")
        assert c.post("/api/v1/collections/beta/search", json={"text": "dog"}, headers=bearer(keys[key])).status_code == 403
        assert _upload(c, keys[key], "beta", [("a.png", png_bytes())]).status_code == 403
        assert c.delete("/api/v1/collections/beta", headers=bearer(keys[key])).status_code == 403
    assert c.post("/api/v1/collections", json={"name": "beta2"}, headers=bearer(keys["alpha_write"])).status_code == 403
    assert c.get("/api/v1/collections/alpha", headers=bearer(keys["alpha_read"])).status_code == 200
    # no server paths leak
    assert "path" not in c.get("/api/v1/collections/alpha", headers=bearer(keys["read"])).json()
    assert c.get("/api/v1/collections/nope", headers=bearer(keys["read"])).status_code == 404


@pytest.mark.parametrize(
    "name",
    ["..", "...", ".hidden", "a..b", "a/b", "-x", "x" * 65, "a b", "alpha%00", "con\n", "ünï"],
)
def test_hostile_collection_names(client, keys, name, settings):
    c = client
    r = c.post("/api/v1/collections", json={"name": name}, headers=bearer(keys["admin"]))
    assert r.status_code in (400, 422), (name, r.text)
    assert not (settings.home / "collections").exists() or list((settings.home / "collections").iterdir()) == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/collections/../../etc/items",
        "/api/v1/collections/..%2F..%2Fetc/items",
        "/api/v1/collections/%2e%2e/items",
        "/api/v1/collections/..%5C..%5Cetc/items",
        "/api/v1/collections/alpha/items/..%2F..%2F..%2Fetc%2Fpasswd/thumbnail",
        "/api/v1/collections/alpha/items/../../../etc/passwd/thumbnail",
        "/api/v1/collections/alpha/items/%00/thumbnail",
    ],
)
def test_hostile_paths_never_reach_the_filesystem(client, keys, path):
    c = client
    c.post("/api/v1/collections", json={"name": "alpha"}, headers=bearer(keys["admin"]))
    r = c.get(path, headers=bearer(keys["admin"]))
    assert r.status_code in (400, 404), (path, r.status_code)
    assert "root:" not in r.text


def test_upload_job_browse_thumbnail_and_delete(client, keys, settings):
    c = client
    imgs = [(f"../../evil/{i}.png", png_bytes(40 + i, 30, (10 * i, 100, 200))) for i in range(5)]
    imgs.append(("dup.png", imgs[0][1]))  # the same bytes again: one item
    r = _upload(c, keys["alpha_write"], "alpha", imgs)
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["total"] == 6 and job["collection"] == "alpha"
    j = _wait_job(c, keys["alpha_read"], job["id"])
    assert j["state"] == "done" and j["done"] == 6 and j["failed"] == 0, j
    # spooled uploads are gone; no file named after the request exists anywhere
    assert list((settings.home / "server" / "spool").iterdir()) == []
    assert not any("evil" in str(p) for p in settings.home.rglob("*"))
    items = c.get("/api/v1/collections/alpha/items", headers=bearer(keys["alpha_read"])).json()
    assert items["total"] == 5
    assert sorted(x["name"] for x in items["items"]) == ["1.png", "2.png", "3.png", "4.png", "0.png"] or len(items["items"]) == 5
    iid = items["items"][0]["id"]
    r = c.get(f"/api/v1/collections/alpha/items/{iid}/thumbnail", headers=bearer(keys["alpha_read"]))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    d = c.get(f"/api/v1/collections/alpha/items/{iid}", headers=bearer(keys["alpha_read"])).json()
    assert d["caption"] and "path" not in d.get("observation", {}).get("image", {})
    assert c.get(f"/api/v1/collections/alpha/items/{'0' * 32}/thumbnail", headers=bearer(keys["alpha_read"])).status_code == 404
    # jobs of alpha are invisible to keys of other collections... and to a bound key's listing of others
    jobs = c.get("/api/v1/jobs", headers=bearer(keys["alpha_read"])).json()["jobs"]
    assert [x["id"] for x in jobs] == [job["id"]]
    # delete needs admin
    assert c.delete("/api/v1/collections/alpha", headers=bearer(keys["alpha_write"])).status_code == 403
    assert c.delete("/api/v1/collections/alpha", headers=bearer(keys["alpha_admin"])).status_code == 200
    assert c.get("/api/v1/collections/alpha", headers=bearer(keys["admin"])).status_code == 404


def test_heic_upload_is_accepted_and_indexed_like_the_cli_does(client, keys):
    pytest.importorskip("pillow_heif")
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()[::4, ::4]).save(buf, format="HEIF", quality=80)
    files = [("images", ("IMG_0001.HEIC", buf.getvalue(), "image/heic"))]
    r = client.post("/api/v1/collections/alpha/images", files=files, headers=bearer(keys["alpha_write"]))
    assert r.status_code == 202, r.text
    j = _wait_job(client, keys["alpha_read"], r.json()["id"])
    assert j["state"] == "done" and j["done"] == 1 and j["failed"] == 0, j
    items = client.get("/api/v1/collections/alpha/items", headers=bearer(keys["alpha_read"])).json()["items"]
    assert [(x["name"], x["width"], x["height"]) for x in items] == [("IMG_0001.HEIC", 150, 100)]
    # what is not an image is still refused before anything is queued
    files = [("images", ("x.heic", b"\x00\x00\x00\x18ftypmp42" + bytes(64), "image/heic"))]
    assert client.post("/api/v1/collections/alpha/images", files=files, headers=bearer(keys["alpha_write"])).status_code == 415


def test_job_of_another_collection_is_404_for_a_bound_key(client, keys):
    c = client
    r = _upload(c, keys["write"], "beta", [("a.png", png_bytes())])
    job_id = r.json()["id"]
    assert c.get(f"/api/v1/jobs/{job_id}", headers=bearer(keys["alpha_read"])).status_code == 404
    assert c.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(keys["alpha_write"])).status_code == 404
    assert c.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(keys["read"])).status_code == 403
    assert c.get("/api/v1/jobs", headers=bearer(keys["alpha_read"])).json()["jobs"] == []
    assert c.get("/api/v1/jobs/../../etc/passwd", headers=bearer(keys["read"])).status_code == 404
    _wait_job(c, keys["read"], job_id)


def test_upload_checks_every_file_before_queueing(client, keys, settings):
    c = client
    r = _upload(c, keys["write"], "alpha", [("a.png", png_bytes()), ("evil.png", b"<script>alert(1)</script>")])
    assert r.status_code == 415 and "file 2" in r.json()["error"]["message"]
    r = _upload(c, keys["write"], "alpha", [("bomb.png", png_bytes(3000, 3000))])
    assert r.status_code == 413
    r = c.post("/api/v1/collections/alpha/images", json={"images": []}, headers=bearer(keys["write"]))
    assert r.status_code == 415
    r = c.post("/api/v1/collections/alpha/images", files=[("other", ("a.txt", b"x", "text/plain"))], headers=bearer(keys["write"]))
    assert r.status_code == 400
    assert c.get("/api/v1/jobs", headers=bearer(keys["read"])).json()["jobs"] == []


def test_too_many_files_in_one_upload(make_client, keys):
    c = make_client(store_factory="default", max_files_per_upload=3)
    r = _upload(c, keys["write"], "alpha", [(f"{i}.png", png_bytes()) for i in range(5)])
    assert r.status_code == 400


def test_search_by_text_and_image(client, keys):
    pytest.importorskip("oculi.tasks.search")
    c = client
    imgs = [(f"{i}.png", png_bytes(40 + i, 30, (10 * i, 100, 200))) for i in range(4)]
    _wait_job(c, keys["write"], _upload(c, keys["write"], "alpha", imgs).json()["id"])
    r = c.post("/api/v1/collections/alpha/search", json={"text": "brown dog", "top_k": 3}, headers=bearer(keys["alpha_read"]))
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert 1 <= len(res) <= 3 and all("id" in x and "score" in x for x in res)
    assert all(x.get("path") is None or "/" not in x["path"] for x in res)  # no server paths
    r = c.post("/api/v1/collections/alpha/search", files={"image": ("q.png", imgs[2][1], "image/png")}, data={"top_k": "2"},
               headers=bearer(keys["alpha_read"]))
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["name"] == "2.png" if "name" in r.json()["results"][0] else True
    for bad in ({}, {"text": ""}, {"text": "x", "top_k": 0}, {"text": "x", "top_k": 100000}, {"text": "x", "bogus": 1},
                {"image": "@@@"}):
        assert c.post("/api/v1/collections/alpha/search", json=bad, headers=bearer(keys["read"])).status_code == 400, bad
    r = c.post("/api/v1/collections/alpha/search", files={"image": ("q.png", b"not an image", "image/png")}, headers=bearer(keys["read"]))
    assert r.status_code == 415


def test_not_found_never_lists_other_collections(client, keys, settings):
    from oculi.server.state import scrub

    c = client
    c.post("/api/v1/collections", json={"name": "beta"}, headers=bearer(keys["admin"]))
    for path in ("/api/v1/collections/alpha", "/api/v1/collections/alpha/items",
                 f"/api/v1/collections/alpha/items/{'a' * 32}/thumbnail"):
        r = c.get(path, headers=bearer(keys["alpha_read"]))
        assert r.status_code == 404 and "beta" not in r.text, path
    assert scrub("no collection named 'x' (collections: a, b); create one", settings.home) == "no collection named 'x'; create one"
    assert str(settings.home) not in scrub(f"{settings.home}/collections/a/blobs/ab.jpg: perception failed", settings.home)


def test_damaged_collection_is_503_with_the_fix_and_admin_can_check_and_repair(client, keys, settings):
    """A damaged collection answers 503 naming the repair, not an empty list; an admin key can
    check (damage reported with 200) and repair it over HTTP; other keys cannot."""
    from pathlib import Path

    c = client
    r = _upload(c, keys["write"], "dmg", [("a.png", png_bytes()), ("b.png", png_bytes(colour=(20, 40, 220)))])
    assert r.status_code == 202, r.text
    assert _wait_job(c, keys["write"], r.json()["id"])["state"] == "done"
    coll = Path(settings.collections_dir) / "dmg"
    newest = sorted((coll / "items.lance" / "_versions").glob("*.manifest"))[0]
    newest.write_bytes(newest.read_bytes()[:64])
    r = c.post("/api/v1/collections/dmg/search", json={"text": "red"}, headers=bearer(keys["read"]))
    assert r.status_code == 503 and "oculi collections repair dmg" in r.json()["error"]["message"]
    assert "lance error" not in r.text and str(settings.home) not in r.text
    listed = c.get("/api/v1/collections", headers=bearer(keys["read"])).json()["collections"]
    assert [(x["name"], x["status"]) for x in listed] == [("dmg", "damaged")]
    for key in ("read", "write"):
        assert c.get("/api/v1/collections/dmg/check", headers=bearer(keys[key])).status_code == 403
        assert c.post("/api/v1/collections/dmg/repair", headers=bearer(keys[key])).status_code == 403
    r = c.get("/api/v1/collections/dmg/check", headers=bearer(keys["admin"]))
    assert r.status_code == 200 and r.json()["damaged"] == ["dmg"] and "path" not in r.json()["collections"][0]
    r = c.post("/api/v1/collections/dmg/repair", headers=bearer(keys["admin"]))
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    assert str(settings.home) not in r.text
    r = c.post("/api/v1/collections/dmg/search", json={"text": "red"}, headers=bearer(keys["read"]))
    assert r.status_code == 200
    assert c.get("/api/v1/collections/dmg/check", headers=bearer(keys["admin"])).json()["ok"] is True

"""Property-based API fuzzing from the server's own OpenAPI schema (schemathesis + Hypothesis).

A real server on a loopback port (uvicorn, the test double for the models, the real store and
job queue, an admin key) gets requests generated from ``/openapi.json`` for every operation:
valid ones and deliberately invalid ones (wrong types, missing fields, odd strings, bad
content types). Whatever it is sent, it must never answer 5xx, and every error must be the
documented ``{"error": {"message", "type"}}`` (plus ``param``/``code`` on ``/v1``).

Bounded and repeatable: ``derandomize=True`` (the examples follow from the test, not from a
random seed), a few examples per operation, no example database.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("lancedb")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from oculi.config import Settings  # noqa: E402
from tests.serverutil import ServerThread  # noqa: E402
from tests.unit.server.conftest import FakeEngine, png_bytes  # noqa: E402

EXAMPLES_PER_OPERATION = 10


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    from oculi.server.app import create_app
    from oculi.server.auth import KeyStore
    from oculi.server.config import ServerConfig

    home = tmp_path_factory.mktemp("fuzz") / "home"
    st = Settings(home=home, max_image_bytes=2_000_000, max_image_pixels=4_000_000)
    key, _ = KeyStore(home).create("admin", name="fuzz")
    app = create_app(st, FakeEngine(st), config=ServerConfig(rate_per_minute=0, max_request_bytes=1_000_000))
    with ServerThread(app, ready_path="/readyz") as url:
        import httpx

        h = {"Authorization": f"Bearer {key}"}
        r = httpx.post(url + "/api/v1/collections/photos/images", files=[("images", ("a.png", png_bytes(), "image/png"))], headers=h)
        assert r.status_code == 202, r.text
        yield url, key


def _spec() -> dict:
    """The OpenAPI document of an app built without keys, store or models (nothing is written)."""
    import tempfile

    from oculi.server.app import create_app

    st = Settings(home=tempfile.gettempdir() + "/oculi-fuzz-spec-unused")
    return create_app(st, FakeEngine(st), auth=False, store_factory=None, warmup=False, start_jobs=False).openapi()


# schemathesis's fixture-based loader needs pytest < 9 (it sets ``node._nodeid``); the
# schema is the app's own, so it is loaded at collection time instead.
schema = schemathesis.openapi.from_dict(_spec())


def check_error_shape(response, path: str) -> None:
    """No 5xx; an error is ``{"error": {"message": str, "type": str, ...}}``."""
    assert response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    if response.status_code < 400:
        return
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    allowed = {"message", "type", "param", "code"}
    assert set(err) <= allowed and isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("type"), str) and err["type"], body
    if path.startswith("/v1/"):
        assert {"param", "code"} <= set(err), body
    assert "Traceback" not in err["message"] and "internal error" not in err["message"], body


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_documented_errors(case, live_server):
    url, key = live_server
    response = case.call(base_url=url, headers={"Authorization": f"Bearer {key}"})
    check_error_shape(response, case.path)
    # and the answer is one the schema documents: its status code, content type and body
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                             response_schema_conformance])

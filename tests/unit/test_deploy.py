"""The reference deployment (deploy/): its probes hit routes the app really serves, and its parts
agree with each other (ports, service names, the vLLM model name, the config file's path).

Nothing here starts Docker or Kubernetes: the compose file and the Helm chart are parsed as
YAML (the chart's templates rendered by a minimal renderer that knows only the expressions the
chart may use: ``.Values.*``, ``.Release.Name``, ``.Chart.*``, ``quote``, ``indent``), and the app
is started in-process on loopback with API keys on, as it runs in the deployment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from oculi.config import Settings
from tests.serverutil import ServerThread

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART = DEPLOY / "helm" / "oculi"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _url_in(cmd: list[str]) -> str:
    m = re.search(r"https?://[^'\" ]+", " ".join(cmd))
    assert m, cmd
    return m.group()


def _flag(args: list[str], name: str) -> str:
    for i, a in enumerate(args):
        if a == name:
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def render_chart(values: dict[str, Any], release: str = "oculi") -> list[dict[str, Any]]:
    """The chart's templates with ``values`` filled in, parsed as YAML documents."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    scope = {"Values": values, "Release": {"Name": release}, "Chart": {"Name": chart["name"],
             "Version": chart["version"], "AppVersion": chart["appVersion"]}}

    def lookup(expr: str) -> Any:
        assert expr.startswith("."), f"the chart may only use .Values/.Release/.Chart, not {expr!r}"
        node: Any = scope
        for part in expr[1:].split("."):
            assert isinstance(node, dict) and part in node, f"{expr}: no {part!r} in the values"
            node = node[part]
        return node

    def render(m: re.Match) -> str:
        head, *filters = [t.strip() for t in m.group(1).split("|")]
        value = lookup(head)
        for f in filters:
            name, *args = f.split()
            if name == "quote":
                value = '"' + str(value).replace('"', '\\"') + '"'
            elif name == "indent":
                value = "\n".join(" " * int(args[0]) + line for line in str(value).rstrip("\n").split("\n"))
            else:
                raise AssertionError(f"the chart may only use quote and indent, not {name!r}")
        return str(value)

    docs = []
    for tpl in sorted((CHART / "templates").glob("*.yaml")):
        text = re.sub(r"\{\{-?\s*(.*?)\s*-?\}\}", render, tpl.read_text())
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def _served_paths(compose: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every probe path the deployment calls on an oculi replica, by what calls it."""
    out: dict[str, set[str]] = {}
    hc = compose["services"]["oculi"]["healthcheck"]["test"]
    out.setdefault("compose healthcheck", set()).add(urlsplit(_url_in(hc)).path)
    docker = re.search(r"HEALTHCHECK.*\n\s*CMD (.*)", (DEPLOY.parent / "Dockerfile").read_text())
    assert docker
    out.setdefault("Dockerfile HEALTHCHECK", set()).add(urlsplit(_url_in([docker.group(1)])).path)
    dep = next(d for d in docs if d["kind"] == "Deployment")
    for c in dep["spec"]["template"]["spec"]["containers"]:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            out.setdefault(f"helm {probe}", set()).add(c[probe]["httpGet"]["path"])
    return out


def test_compose_parts_agree() -> None:
    comp = _compose()
    svc = comp["services"]
    oculi = svc["oculi"]
    port = _flag(oculi["command"], "--port")
    assert urlsplit(_url_in(oculi["healthcheck"]["test"])).port == int(port)
    assert f"{port}" in [str(p) for p in oculi["expose"]]
    # the balancer sends to the oculi service on that port, and only after it is healthy
    conf = (DEPLOY / "nginx" / "oculi.conf").read_text()
    assert re.search(rf"server\s+oculi:{port}\b", conf)
    lb_mount = next(v for v in svc["lb"]["volumes"] if "oculi.conf" in v)
    assert (DEPLOY / lb_mount.split(":")[0]).resolve() == (DEPLOY / "nginx" / "oculi.conf").resolve()
    assert svc["lb"]["depends_on"]["oculi"]["condition"] == "service_healthy"
    # replicas share PostgreSQL: the store URL names the postgres service, user and database
    env = oculi["environment"]
    store = urlsplit(env["OCULI_STORE"].replace("${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}", "pw"))
    pg = svc["postgres"]["environment"]
    assert store.scheme == "postgresql" and store.hostname == "postgres" and store.username == pg["POSTGRES_USER"]
    assert store.path.lstrip("/") == pg["POSTGRES_DB"] and "pgvector" in svc["postgres"]["image"]
    from oculi.store import parse_store_url

    assert parse_store_url(env["OCULI_STORE"])[0] == "postgresql"  # what open_store will open
    # uploads: in the database by default; the optional MinIO (profile s3) makes the bucket it is told
    from oculi.store.blobs import parse_blobs_url

    assert parse_blobs_url(env["OCULI_BLOBS"].replace("${OCULI_BLOBS:-store}", "store")) == ("store", "")
    assert svc["minio"]["profiles"] == svc["minio-bucket"]["profiles"] == ["s3"] and "oculi" not in svc["minio"].get("depends_on", {})
    example = dict(ln.lstrip("# ").split("=", 1) for ln in (DEPLOY / "env.example").read_text().splitlines()
                   if "=" in ln and ln.lstrip("# ").split("=", 1)[0].isupper())
    bucket = parse_blobs_url(example["OCULI_BLOBS"])[1].split("/")[0]
    assert f"s3/{bucket}" in " ".join(svc["minio-bucket"]["entrypoint"])
    assert urlsplit(example["OCULI_S3_ENDPOINT"]).hostname == "minio" and "9000" in svc["minio"]["expose"]
    # oculi.toml is mounted where OCULI_CONFIG says, and its openai backend points at the vLLM service
    mount = next(v for v in oculi["volumes"] if v.endswith(":ro") and "oculi.toml" in v)
    src, target, _ = mount.split(":")
    assert target == env["OCULI_CONFIG"]
    vllm_args = svc["vllm"]["command"]
    _check_vlm_config((DEPLOY / src).read_text(), host="vllm", port=int(_flag(vllm_args, "--port")),
                      served=_flag(vllm_args, "--served-model-name"), env=env)
    assert urlsplit(_url_in(svc["vllm"]["healthcheck"]["test"])).port == int(_flag(vllm_args, "--port"))
    assert oculi["depends_on"]["vllm"]["condition"] == "service_healthy"


def _check_vlm_config(text: str, *, host: str, port: int, served: str | None, env: dict[str, Any]) -> None:
    """``oculi.toml`` text, read as the app reads it (``OCULI_CONFIG``), and its openai model
    validated by the backend's own options model."""
    import tempfile

    from oculi.backends.openai_backend import OpenAIOptions
    from oculi.config import read_model_config

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "oculi.toml"
        f.write_text(text)
        mc = read_model_config(Settings(home=Path(d) / "home", config_file=f, read_config_files=False))
    cfg = {"models": mc.models, "tasks": mc.tasks}
    vlm = cfg["models"]["vlm"]
    OpenAIOptions.model_validate(vlm)  # raises on a key or value the backend would refuse
    assert vlm["backend"] == "openai"
    url = urlsplit(vlm["base_url"])
    assert (url.hostname, url.port, url.path) == (host, port, "/v1")
    if served is not None:
        assert vlm["model"] == served
    assert vlm["api_key_env"] in env  # the key comes from the environment, never the file
    assert cfg["tasks"] == {"caption": "vlm", "ask": "vlm"}


def test_helm_chart_renders_and_agrees() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = render_chart(values)
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "ConfigMap"}
    dep = kinds["Deployment"]
    assert dep["spec"]["replicas"] == values["replicaCount"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert _flag(c["args"], "--port") == str(values["containerPort"]) == str(c["ports"][0]["containerPort"])
    assert kinds["Service"]["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]
    assert kinds["Service"]["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    env = {e["name"]: e for e in c["env"]}
    assert env["OCULI_STORE"]["valueFrom"]["secretKeyRef"] == values["secrets"]["store"]  # a secret, never a value
    assert env["OCULI_BLOBS"]["value"] == values["blobs"]["url"] == "store"  # uploads in the database unless told
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["optional"] is True  # a role works without it
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert Path(env["OCULI_CONFIG"]["value"]).parent == Path(mount["mountPath"])
    _check_vlm_config(kinds["ConfigMap"]["data"][Path(env["OCULI_CONFIG"]["value"]).name], host="vllm", port=8000, served=None, env=env)
    with pytest.raises(AssertionError, match="no 'replicaCount'"):  # the renderer refuses what it cannot fill
        render_chart({k: v for k, v in values.items() if k != "replicaCount"})


@pytest.fixture()
def replica(tmp_path: Path):
    """The app as a replica runs it (API keys required), on a loopback port."""
    from oculi.server.app import create_app
    from tests.unit.server.conftest import FakeEngine

    settings = Settings(home=tmp_path / "home")
    app = create_app(settings, FakeEngine(settings), auth=True, store_factory=None, start_jobs=False)
    with ServerThread(app) as base:
        yield base


def test_every_probe_hits_a_route_the_app_serves_without_a_key(replica: str) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = _served_paths(_compose(), render_chart(values))
    assert set().union(*paths.values()) == {"/healthz", "/readyz"}
    with httpx.Client(base_url=replica, timeout=10) as http:
        for who, ps in paths.items():
            for p in ps:
                r = http.get(p)
                assert r.status_code == 200 and r.json()["status"] in ("ok", "ready"), (who, p, r.text)
        assert http.get("/ready").status_code == 404  # a probe on a path the app lacks would fail
        assert http.get("/api/v1/whoami").status_code == 401  # keys are on: probes need none


def test_dockerfile_pins_the_cpu_torch() -> None:
    text = "\n".join(ln for ln in (DEPLOY.parent / "Dockerfile").read_text().splitlines() if not ln.lstrip().startswith("#"))
    specs = re.findall(r"\btorch(?:[=<>~!]=?[^\s\"']*)?(?=[\s\"']|$)", text)
    assert specs == ["torch==2.13.0"]  # one install of torch, the pinned one: nothing else may pull another
    line = next(ln for ln in text.splitlines() if "torch==2.13.0" in ln)
    assert "pip install" in line and "--index-url" in line  # the CPU build's index

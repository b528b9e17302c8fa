"""``oculi serve`` (the HTTP server) and ``oculi keys`` (API keys)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from oculi.cli.common import CONFIG_HELP, MODEL_HELP, console, error, get_settings, handle_errors, print_json, shown, use_model_options

keys_app = typer.Typer(help="Create, list and revoke the server's API keys.", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback exposes the server to the network."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve without API keys (only allowed on a loopback host)."),
    allow_remote_images: bool = typer.Option(False, "--allow-remote-images", help="Let image_url name http(s) URLs (needs --remote-host)."),
    remote_host: Optional[List[str]] = typer.Option(None, "--remote-host", help="A host remote images may come from (repeatable; *.example.org for sub-domains)."),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="An origin allowed cross-origin access (repeatable). CORS is off without it."),
    rate_per_minute: Optional[float] = typer.Option(None, "--rate-limit", help="Requests per minute per key (0 = no limit)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP + " It serves every request it can."),
    config: Optional[Path] = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Start the HTTP server: REST API, OpenAI-compatible /v1, web UI at /, API docs at /docs."""
    _serve(host, port, no_auth, allow_remote_images, remote_host or [], cors_origin or [], rate_per_minute, log_level,
           model, config)


@handle_errors
def _serve(host: str, port: int, no_auth: bool, allow_remote: bool, remote_hosts: list[str], cors: list[str],
           rate: float | None, log_level: str, model: str | None = None, config: Path | None = None) -> None:
    from oculi.core.errors import InputError
    from oculi.server.config import ServerConfig, is_loopback_host

    use_model_options(model, config)  # an unknown model stops here, exit 4
    from oculi.backends.registry import ModelRegistry

    ModelRegistry(get_settings())  # so does an oculi.toml that cannot be read, before the port is taken

    if no_auth and not is_loopback_host(host):
        raise InputError(f"--no-auth is only allowed on a loopback host (127.0.0.1, ::1, localhost), not {host!r}")
    if allow_remote and not remote_hosts:
        raise InputError("--allow-remote-images needs at least one --remote-host to allow")
    import uvicorn

    from oculi.server.app import create_app

    settings = get_settings()
    overrides: dict = {}
    if allow_remote:
        overrides.update(remote_images=True, remote_allow_hosts=remote_hosts)
    if cors:
        overrides["cors_origins"] = cors
    if rate is not None:
        overrides["rate_per_minute"] = rate
    config = ServerConfig(**overrides)
    app = create_app(settings, auth=not no_auth, config=config)
    if not no_auth:
        from oculi.server.auth import open_keys

        if not open_keys(settings).list():
            console.print("[yellow]no API keys yet:[/] create one with `oculi keys create --scope admin`", highlight=False)
    if not is_loopback_host(host):
        console.print(f"[yellow]listening on {host}: reachable from the network; use TLS in front of it[/]", highlight=False)
    console.print(f"oculi serving on http://{host}:{port}/  (docs: /docs, OpenAI base URL: /v1)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False, timeout_graceful_shutdown=10)


@keys_app.command("create")
@handle_errors
def keys_create(
    scope: str = typer.Option("read", "--scope", help="read, write or admin."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Bind the key to one collection."),
    name: str = typer.Option("", "--name", help="A label to recognise the key by."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a key and print its secret (shown once; only a hash is stored)."""
    from oculi.server.auth import Scope, open_keys

    secret, info = open_keys(get_settings()).create(Scope.parse(scope), collection=collection, name=name)
    if as_json:
        print_json({**info.to_dict(), "key": secret})
        return
    console.print(secret, highlight=False, markup=False, soft_wrap=True)
    err = f"key {info.key_id}: scope {info.scope}" + (f", collection {info.collection}" if info.collection else ", all collections")
    typer.echo(err + ". Store it now: it cannot be shown again.", err=True)


@keys_app.command("list")
@handle_errors
def keys_list(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List keys (ids, scopes, collections; never secrets)."""
    import time

    from rich.table import Table

    from oculi.server.auth import open_keys

    keys = open_keys(get_settings()).list(include_revoked=all_)
    if as_json:
        print_json({"keys": [k.to_dict() for k in keys]})
        return
    if not keys:
        console.print("no keys; create one with `oculi keys create --scope admin`")
        return
    fmt = lambda t: time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"  # noqa: E731
    t = Table("id", "name", "scope", "collection", "created", "last used", "revoked", title="oculi API keys")
    for k in keys:
        t.add_row(k.key_id, shown(k.name), str(k.scope), k.collection or "(all)", fmt(k.created), fmt(k.last_used), fmt(k.revoked))
    console.print(t)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (from `oculi keys list`).")) -> None:
    """Revoke a key: it stops working at once, also on a running server."""
    from oculi.server.auth import open_keys

    open_keys(get_settings()).revoke(key_id)
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``keys`` to the ``oculi`` CLI."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


__all__ = ["register", "error"]

"""Getting image bytes from what a client sent: base64, ``data:`` URLs and (opt-in) http(s).

Remote fetching is off unless the server was started with it, and then:

* only ``http``/``https`` URLs (``file:``, ``ftp:``, ``gopher:`` … are refused);
* the host must be in the allow-list (exact name, or ``*.example.org`` for sub-domains);
* the name is resolved once and every address must be public: private, loopback,
  link-local (cloud metadata at 169.254.169.254), multicast, reserved and unspecified
  addresses are refused unless ``remote_allow_private`` is set; the connection then goes to
  the address that was checked (no second lookup for DNS rebinding to race);
* redirects are followed only to the same host (at most 3), each one checked again;
* the body is read in chunks and cut off past ``remote_max_bytes``; the whole fetch (lookup,
  connection, redirects, headers, body) has one deadline of ``remote_timeout_s``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
import socket
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import httpx

from oculi.server.config import ServerConfig
from oculi.server.limits import HTTPProblem

_DATA_URL_RE = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,(?P<data>.*)$", re.S)
MAX_REDIRECTS = 3


def decode_base64(s: str, *, max_bytes: int, what: str = "image") -> bytes:
    """Strict base64 (standard or URL-safe, whitespace ignored) with a size check first."""
    if not isinstance(s, str) or not s.strip():
        raise HTTPProblem(400, f"{what}: empty base64 data")
    s = "".join(s.split())
    if len(s) * 3 // 4 > max_bytes + 3:
        raise HTTPProblem(413, f"{what}: base64 data decodes to more than the limit of {max_bytes:,} bytes", "request_too_large")
    try:
        if "-" in s or "_" in s:
            s = s.replace("-", "+").replace("_", "/")
        s += "=" * (-len(s) % 4)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPProblem(400, f"{what}: invalid base64 data") from None


def decode_data_url(url: str, *, max_bytes: int) -> bytes:
    m = _DATA_URL_RE.match(url)
    if not m:
        raise HTTPProblem(400, "malformed data: URL; expected data:image/<type>;base64,<data>")
    if not m.group("b64"):
        raise HTTPProblem(400, "a data: URL image must be base64-encoded (data:image/png;base64,...)")
    return decode_base64(m.group("data"), max_bytes=max_bytes, what="data: URL")


def _host_allowed(host: str, allow: list[str]) -> bool:
    host = host.lower().rstrip(".")
    for pat in allow:
        p = pat.lower().strip().rstrip(".")
        if not p:
            continue
        if p.startswith("*."):
            if host.endswith(p[1:]) and host != p[2:]:
                return True
        elif host == p:
            return True
    return False


def _ip_is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified or not ip.is_global
    )


def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """Resolve a host and return one address to connect to, refusing non-public ones."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise HTTPProblem(400, f"cannot resolve image host {host!r}") from None
    addrs = []
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if not allow_private and not _ip_is_public(ip):
            raise HTTPProblem(400, f"image host {host!r} resolves to a non-public address; refused")
        addrs.append(ip)
    if not addrs:
        raise HTTPProblem(400, f"cannot resolve image host {host!r}")
    return str(addrs[0])


def check_url(url: str, cfg: ServerConfig) -> tuple[str, str, int]:
    """Scheme/host/allow-list checks; returns ``(scheme, host, port)``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise HTTPProblem(400, "malformed image URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise HTTPProblem(400, f"image URL scheme {scheme or '(none)'!r} is not allowed; use a data: URL")
    host = parts.hostname or ""
    if not host:
        raise HTTPProblem(400, "image URL has no host")
    if parts.username or parts.password:
        raise HTTPProblem(400, "image URLs with credentials are not allowed")
    if not _host_allowed(host, cfg.remote_allow_hosts):
        raise HTTPProblem(403, f"image host {host!r} is not in the server's allow-list", "permission_error")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise HTTPProblem(400, "image URL has a bad port") from None
    return scheme, host, port


async def fetch_remote(url: str, cfg: ServerConfig, *, max_bytes: int) -> bytes:
    """Fetch an image URL under every rule in the module docstring.

    ``remote_timeout_s`` bounds the whole fetch -- name resolution, connecting, every
    redirect, the headers and the body -- as one deadline (``anyio.fail_after``), so a host
    that answers one byte at a time is cut off like one that does not answer (504).
    """
    if not cfg.remote_images:
        raise HTTPProblem(400, "remote image URLs are disabled on this server; send the image as a data: URL")
    try:
        with anyio.fail_after(cfg.remote_timeout_s):
            return await _fetch(url, cfg, min(max_bytes, cfg.remote_max_bytes))
    except TimeoutError:
        raise HTTPProblem(504, f"image URL fetch took longer than {cfg.remote_timeout_s:g} s", "timeout_error") from None


async def _fetch(url: str, cfg: ServerConfig, limit: int) -> bytes:
    first_host = None
    for _ in range(MAX_REDIRECTS + 1):
        scheme, host, port = check_url(url, cfg)
        if first_host is None:
            first_host = host.lower()
        elif host.lower() != first_host:
            raise HTTPProblem(400, "image URL redirects to another host; refused")
        ip = await anyio.to_thread.run_sync(
            functools.partial(resolve_checked, host, port, allow_private=cfg.remote_allow_private), abandon_on_cancel=True
        )
        parts = urlsplit(url)
        netloc_ip = f"[{ip}]" if ":" in ip else ip
        target = urlunsplit((scheme, f"{netloc_ip}:{port}", parts.path or "/", parts.query, ""))
        host_header = host if parts.port is None else f"{host}:{port}"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(cfg.remote_timeout_s), follow_redirects=False, trust_env=False) as client:
                req = client.build_request(
                    "GET", target, headers={"Host": host_header, "Accept": "image/*", "Accept-Encoding": "identity"},
                    extensions={"sni_hostname": host},
                )
                resp = await client.send(req, stream=True)
                try:
                    if resp.is_redirect:
                        url = urljoin(url, resp.headers.get("location", ""))
                        continue
                    if resp.status_code != 200:
                        raise HTTPProblem(400, f"image URL answered HTTP {resp.status_code}")
                    cl = resp.headers.get("content-length")
                    if cl and cl.isdigit() and int(cl) > limit:
                        raise HTTPProblem(413, f"remote image is over the limit of {limit:,} bytes", "request_too_large")
                    buf = bytearray()
                    async for chunk in resp.aiter_raw():
                        buf += chunk
                        if len(buf) > limit:
                            raise HTTPProblem(413, f"remote image is over the limit of {limit:,} bytes", "request_too_large")
                    return bytes(buf)
                finally:
                    await resp.aclose()
        except HTTPProblem:
            raise
        except httpx.TimeoutException:
            raise HTTPProblem(504, "image URL fetch timed out", "timeout_error") from None
        except httpx.HTTPError as e:
            raise HTTPProblem(400, f"image URL could not be fetched ({type(e).__name__})") from None
    raise HTTPProblem(400, "image URL redirected too many times")


_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


async def image_bytes_from_url(url: str, cfg: ServerConfig, *, max_bytes: int) -> bytes:
    """Bytes of an ``image_url``: a data: URL always; http(s) only when enabled."""
    if not isinstance(url, str) or not url.strip():
        raise HTTPProblem(400, "the image URL is empty; expected a data: URL (data:image/png;base64,...)")
    if url[:5].lower() == "data:":
        return decode_data_url(url, max_bytes=max_bytes)
    if not _SCHEME_RE.match(url):
        raise HTTPProblem(
            400, "expected an image: a data: URL (data:image/png;base64,...)"
            + (" or an http(s) URL from an allowed host" if cfg.remote_images else "") + ", not plain text"
        )
    return await fetch_remote(url, cfg, max_bytes=max_bytes)

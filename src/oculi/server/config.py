"""Server-only settings: limits, rate limits, CORS, remote image fetching.

Read from the environment with the ``OCULI_SERVER_`` prefix (e.g.
``OCULI_SERVER_RATE_PER_MINUTE=120``); ``oculi serve`` flags override them. The image limits
themselves (bytes, pixels) come from the core ``Settings`` so the CLI and the server agree.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def is_loopback_host(host: str) -> bool:
    """True for a bind address that only the local machine can reach."""
    import ipaddress

    h = host.strip().strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


class ServerConfig(BaseSettings):
    """What the HTTP server enforces on top of the core ``Settings``.

    Attributes:
        max_request_bytes: Largest request body accepted (checked against Content-Length
            before anything is read, and again while streaming). 413 above it.
        max_files_per_upload: Most images one collection upload request may carry.
        rate_per_minute: Sustained requests per minute per API key (token bucket); 0 = off.
        rate_burst: Bucket size: requests a key may make at once before being limited.
        inference_concurrency: Image-model calls run at once (the rest wait in line); 0 = CPU count.
        light_concurrency: Text searches and text embeddings run at once, in their own lane.
        model_nice: How many nice levels lower the image-model threads and the ingestion
            worker run than the light lane (Linux, per thread); 0 = the same priority.
        cors_origins: Origins allowed cross-origin access; empty (the default) = CORS off.
        allowed_hosts: Host headers accepted when running without auth (DNS-rebinding guard).
        remote_images: Whether ``image_url`` may name an http(s) URL (off by default).
        remote_allow_hosts: Host names remote images may come from (exact, or ``*.example.org``).
        remote_allow_private: Let remote fetches reach private/loopback/link-local addresses.
        remote_max_bytes: Largest remote image fetched.
        remote_timeout_s: Total time a remote fetch may take.
        job_chunk: Images ingested per step of a job (progress and resume granularity).
        job_lease_s: With a shared store (PostgreSQL), how long a replica's claim on a running
            job lasts without a heartbeat: a replica that dies loses its jobs to the others
            after this long.
    """

    model_config = SettingsConfigDict(env_prefix="OCULI_SERVER_", extra="ignore")

    max_request_bytes: int = 100 * 1024 * 1024
    max_files_per_upload: int = 1000
    rate_per_minute: float = 600.0
    rate_burst: int = 120
    inference_concurrency: int = 0
    light_concurrency: int = 2
    model_nice: int = Field(default=10, ge=0, le=19)
    cors_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost", "[::1]", "::1"])
    remote_images: bool = False
    remote_allow_hosts: list[str] = Field(default_factory=list)
    remote_allow_private: bool = False
    remote_max_bytes: int = 10 * 1024 * 1024
    remote_timeout_s: float = 10.0
    job_chunk: int = 16
    job_lease_s: float = Field(default=30.0, gt=0)

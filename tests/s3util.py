"""A real S3-compatible server for tests: moto's server (``moto[server]``, a dev dependency),
listening on loopback and spoken to over HTTP by boto3 exactly as MinIO or AWS would be."""

from __future__ import annotations

import logging
import uuid
from typing import Any

#: Credentials the test server accepts (it accepts any); set in the environment of tests and
#: of the processes they start, as a deployment sets real ones.
TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "oculi-test", "AWS_SECRET_ACCESS_KEY": "oculi-test-secret",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def start_server(port: int = 0) -> tuple[Any, str]:
    """Start a threaded moto S3 server on 127.0.0.1 (``port`` 0: a free one); ``(server, endpoint)``.
    ``server.stop()`` takes it down; a new one on the same port sees the same buckets (moto
    keeps them in this process)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    return srv, f"http://{host}:{port}"


def make_bucket(endpoint: str, name: str | None = None) -> str:
    """A fresh bucket on the server; returns its name."""
    import boto3

    name = name or f"oculi-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="oculi-test",
                 aws_secret_access_key="oculi-test-secret").create_bucket(Bucket=name)
    return name


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client on the test server (to look at or damage objects behind oculi's back)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="oculi-test",
                        aws_secret_access_key="oculi-test-secret")

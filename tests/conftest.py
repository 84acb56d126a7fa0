"""Shared fixtures."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SCAFFOLD = Path(__file__).resolve().parents[1] / "src" / "retail_etl" / "scaffold" / "retail-etl.yaml"


@pytest.fixture
def scaffold_config(tmp_path: Path) -> Path:
    """A copy of the shipped configuration in an empty project folder."""
    target = tmp_path / "retail-etl.yaml"
    shutil.copyfile(SCAFFOLD, target)
    return target


def moto_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials and region in the environment, nothing that would point boto elsewhere, and
    a quiet werkzeug (one log line per request otherwise)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server (S3, SNS, SQS, ...) on 127.0.0.1 with test credentials in the environment."""
    from moto.server import ThreadedMotoServer

    moto_environment(monkeypatch)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A new, empty bucket on the moto server."""
    import boto3

    name = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    return name

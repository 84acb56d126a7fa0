"""Notification channels against real local servers: HTTP, SMTP (aiosmtpd) and SNS -> SQS (moto server)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retail_etl.config.loader import load_config
from retail_etl.errors import QualityGateError
from retail_etl.notify import Alert, EmailChannel, Notifier, SnsChannel, WebhookChannel
from retail_etl.workflow import StepResult, runner_from_config

ALERT = Alert("step_failed", "retail-etl", "transform", "date=2023-01-15", "error", "retail-etl: step transform failed",
              "QualityGateError: RowCount > 0 failed", {"execution_id": "exec-1", "attempts": 1})
SENT_AT = "2024-01-15T10:30:00.000Z"


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, dict(self.headers), json.loads(body)))  # type: ignore[attr-defined]
        status = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"boom")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.requests = []  # type: ignore[attr-defined]
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _url(server: ThreadingHTTPServer, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(envelope)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)  # handled=False: reply 535


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_webhook_json(http_server: ThreadingHTTPServer) -> None:
    WebhookChannel(_url(http_server), headers={"X-Team": "data"}).send(ALERT, SENT_AT)
    ((path, headers, body),) = http_server.requests  # type: ignore[attr-defined]
    assert path == "/hook" and headers["Content-Type"] == "application/json" and headers["X-Team"] == "data"
    assert body == {"kind": "step_failed", "job": "retail-etl", "rule": "transform", "partition": "date=2023-01-15",
                    "severity": "error", "title": "retail-etl: step transform failed",
                    "message": "QualityGateError: RowCount > 0 failed",
                    "details": {"execution_id": "exec-1", "attempts": 1}, "time": SENT_AT}


def test_webhook_slack_with_secret_url_and_header_from_env(http_server: ThreadingHTTPServer) -> None:
    env = {"SLACK_URL": _url(http_server, "/services/T0/B0/secret"), "HOOK_TOKEN": "Bearer t0k"}
    WebhookChannel(url_env="SLACK_URL", payload="slack", headers_env={"Authorization": "HOOK_TOKEN"},
                   env=env).send(ALERT, SENT_AT)
    ((path, headers, body),) = http_server.requests  # type: ignore[attr-defined]
    assert path == "/services/T0/B0/secret" and headers["Authorization"] == "Bearer t0k"
    assert body["text"] == ":x: retail-etl: step transform failed: QualityGateError: RowCount > 0 failed"
    assert body["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": ALERT.title, "emoji": True}}
    assert {"type": "mrkdwn", "text": "*Rule*\ntransform"} in body["blocks"][2]["fields"]


def test_webhook_errors_do_not_leak_the_url(http_server: ThreadingHTTPServer) -> None:
    from retail_etl.notify import NotificationError

    http_server.status = 500  # type: ignore[attr-defined]
    channel = WebhookChannel(url_env="U", env={"U": _url(http_server, "/secret-token")})
    with pytest.raises(NotificationError) as info:
        channel.send(ALERT, SENT_AT)
    assert "HTTP 500" in str(info.value) and "secret-token" not in str(info.value)
    refused = WebhookChannel(f"http://127.0.0.1:{_free_port()}/x", timeout=2)
    with pytest.raises(NotificationError, match=r"cannot reach http://127\.0\.0\.1"):
        refused.send(ALERT, SENT_AT)


def test_email_over_smtp_with_login(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    channel = EmailChannel("127.0.0.1", port=port, starttls=False, sender="etl@example.com",
                           to=["data@example.com", "oncall@example.com"], username_env="SMTP_USER",
                           password_env="SMTP_PASSWORD", env={"SMTP_USER": "etl", "SMTP_PASSWORD": "s3cret"})
    channel.send(ALERT, SENT_AT)
    (envelope,) = inbox.messages
    assert inbox.logins == [(b"etl", b"s3cret")]
    assert envelope.mail_from == "etl@example.com"
    assert envelope.rcpt_tos == ["data@example.com", "oncall@example.com"]
    msg = message_from_bytes(envelope.content)
    assert msg["Subject"] == "[retail-etl] ERROR: retail-etl: step transform failed"
    assert msg["X-Retail-ETL-Kind"] == "step_failed"
    body = msg.get_payload(decode=True).decode()
    assert "QualityGateError: RowCount > 0 failed" in body and "partition: date=2023-01-15" in body
    assert '"execution_id": "exec-1"' in body


def test_email_wrong_password_is_a_channel_error(smtp_server: tuple[_Inbox, int]) -> None:
    from retail_etl.notify import NotificationError

    _, port = smtp_server
    channel = EmailChannel("127.0.0.1", port=port, starttls=False, sender="a@example.com", to=["b@example.com"],
                           username_env="U", password_env="P", env={"U": "etl", "P": "wrong"})
    with pytest.raises(NotificationError, match=f"SMTP 127\\.0\\.0\\.1:{port}"):
        channel.send(ALERT, SENT_AT)


def test_sns_publish_reaches_a_subscribed_queue(moto_endpoint: str) -> None:
    import boto3

    sns = boto3.client("sns", region_name="eu-west-1", endpoint_url=moto_endpoint)
    sqs = boto3.client("sqs", region_name="eu-west-1", endpoint_url=moto_endpoint)
    topic = sns.create_topic(Name="retail-etl-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    SnsChannel(topic, endpoint_url=moto_endpoint).send(ALERT, SENT_AT)

    (message,) = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["TopicArn"] == topic and envelope["Subject"] == "retail-etl: step transform failed"
    assert json.loads(envelope["Message"]) == ALERT.payload(SENT_AT)
    assert envelope["MessageAttributes"]["kind"] == {"Type": "String", "Value": "step_failed"}


def test_one_failing_channel_does_not_stop_the_others(http_server: ThreadingHTTPServer) -> None:
    dead = WebhookChannel(f"http://127.0.0.1:{_free_port()}/x", name="dead", timeout=2)
    live = WebhookChannel(_url(http_server), name="live")
    delivery = Notifier([dead, live]).send(ALERT)
    assert delivery.sent == ["live"] and list(delivery.failed) == ["dead"]
    assert len(http_server.requests) == 1  # type: ignore[attr-defined]


def test_failed_run_notifies_every_configured_channel(
    scaffold_config: Path, http_server: ThreadingHTTPServer, smtp_server: tuple[_Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port = smtp_server
    monkeypatch.setenv("TEST_SLACK_URL", _url(http_server, "/slack"))
    scaffold_config.write_text(scaffold_config.read_text() + f"""
notifications:
  dedup_window_seconds: 3600
  channels:
    - webhook: {{url_env: TEST_SLACK_URL, payload: slack}}
    - webhook: {{url: "http://127.0.0.1:{_free_port()}/down", timeout_seconds: 2}}
    - email: {{host: 127.0.0.1, port: {port}, starttls: false, sender: etl@example.com, to: [data@example.com]}}
""")
    config = load_config(scaffold_config)

    def transform(ctx):
        raise QualityGateError("RowCount > 0 failed")

    steps = {"validate": lambda ctx: StepResult(10, 10, 0), "transform": transform,
             "analytics": lambda ctx: StepResult()}
    runner = runner_from_config(config, steps, heartbeat_seconds=None)
    execution = runner.start({"date": "2023-01-15"})

    assert execution.status == "FAILED" and execution.error == "QualityGateError"
    ((path, _, body),) = http_server.requests  # type: ignore[attr-defined]
    assert path == "/slack" and "step transform failed" in body["text"]
    (mail,) = inbox.messages
    assert "RowCount > 0 failed" in message_from_bytes(mail.content).get_payload(decode=True).decode()
    events = {e.type: e.details for e in runner.state.events(execution.id)}
    assert events["NotificationSent"] == {"kind": "step_failed", "channels": ["webhook", "email"]}
    assert events["NotificationFailed"]["channel"] == "webhook-2"

    runner.start({"date": "2023-01-15"})  # same step, same partition, within the hour: not sent again
    assert len(http_server.requests) == 1 and len(inbox.messages) == 1  # type: ignore[attr-defined]

"""Credentials inside URLs never leave the program: not on stderr, in logs, in the lake or in alerts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from retail_etl.notify import Alert, Notifier, WebhookChannel
from retail_etl.redact import escape_control, mask_secrets, redact

SECRET = "hunter2-s3cret"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "retail_etl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("text", "masked"), [
    (f"https://user:{SECRET}@hooks.example.com/x", "https://user:***@hooks.example.com/x"),
    (f"cannot reach smtp://mailer:{SECRET}@10.0.0.1:25: refused", "cannot reach smtp://mailer:***@10.0.0.1:25: refused"),
    (f"http://u:p@{SECRET}@host/x", "http://u:***@host/x"),  # an unencoded @ in the password
    (f"https://{SECRET}@github.com/o/r.git", "https://***@github.com/o/r.git"),  # a token as the user name
    (f"https://h/x?token={SECRET}&page=2", "https://h/x?token=***&page=2"),
    ("https://hooks.slack.com/services/T0/B0 and a@b.c", "https://hooks.slack.com/services/T0/B0 and a@b.c"),
])
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked
    assert redact({"e": [text], "n": 3}) == {"e": [masked], "n": 3}


def test_escape_control() -> None:
    assert escape_control("a\x1b]0;title\x07b\nc\td\x9b\x7f") == "a\\x1b]0;title\\x07b\\nc\\td\\x9b\\x7f"
    assert escape_control("C:\\data\\sales.csv é") == "C:\\data\\sales.csv é"


def test_webhook_failure_names_no_password() -> None:
    url = f"http://user:{SECRET}@127.0.0.1:{_closed_port()}/hook"
    alert = Alert("step_failed", "retail-etl", message=f"step failed reading {url}")
    seen: list[Alert] = []

    class Record:
        name = "record"

        def send(self, a: Alert, sent_at: str) -> None:
            seen.append(a)

    delivery = Notifier([WebhookChannel(url, timeout=2), Record()]).send(alert)
    assert set(delivery.failed) == {"webhook"} and delivery.sent == ["record"]
    assert delivery.failed["webhook"].startswith("NotificationError: cannot reach http://user:***@127.0.0.1:")
    assert SECRET not in seen[0].message and "user:***@127.0.0.1" in seen[0].message


def test_a_webhook_password_appears_nowhere(tmp_path: Path) -> None:
    cli("init", "demo", "--rows", "300", cwd=tmp_path)
    project = tmp_path / "demo"
    config = project / "retail-etl.yaml"
    url = f"http://user:{SECRET}@127.0.0.1:{_closed_port()}/hook"
    text = config.read_text().replace("on_success: false", "on_success: true")
    config.write_text(text.replace("    - console\n", f"    - webhook: {{url: \"{url}\", timeout_seconds: 2}}\n"))
    run = cli("run", "--log-format", "json", cwd=project)
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "NotificationFailed"]
    assert failed and failed[0]["channel"] == "webhook" and "user:***@127.0.0.1" in failed[0]["error"]
    execution = failed[0]["execution_id"]
    outputs = [run.stdout, run.stderr,
               cli("logs", execution, cwd=project).stdout,
               cli("logs", execution, "--log-format", "json", cwd=project).stdout,
               cli("runs", "show", execution, "--events", "--format", "json", cwd=project).stdout]
    assert "user:***@127.0.0.1" in outputs[2] and "NotificationFailed" in outputs[4]
    for output in outputs:
        assert SECRET not in output
    lake_files = [p for p in (project / "lake").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" and "_logs" in p.parts for p in lake_files)
    assert any(p.name == "state.db" for p in lake_files)
    for path in lake_files:
        assert SECRET.encode() not in path.read_bytes(), path

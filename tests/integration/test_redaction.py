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
    (f"cannot reach smtp://mailer:{SECRET}@10.0.0.1:25: refused",
     "cannot reach smtp://mailer:***@10.0.0.1:25: refused"),
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
    assert delivery.failed["webhook"].startswith("NotificationError: cannot reach http://127.0.0.1:")
    assert "Connection refused" in delivery.failed["webhook"]
    assert SECRET not in seen[0].message and "user:***@127.0.0.1" in seen[0].message


def test_the_log_and_the_state_database_mask_what_they_are_given(tmp_path: Path) -> None:
    import datetime as dt
    import io

    from retail_etl.workflow.logging import ExecutionLog, read_log
    from retail_etl.workflow.state import WorkflowState

    url = f"https://svc:{SECRET}@db.example.com/x"
    stream = io.StringIO()
    log = ExecutionLog("exec-1", file=tmp_path / "exec-1.jsonl", stream=stream, format="text")
    log("TaskFailed", step="validate", level="error", error=f"cannot reach {url}", details={"url": url})
    log.close()
    state = WorkflowState(tmp_path / "state.db")
    now = dt.datetime.now(dt.UTC)
    state.create_execution("exec-1", "wf", {"source": url}, now)
    state.add_event("exec-1", "TaskFailed", now, "validate", {"error": url})
    state.finish_execution("exec-1", "FAILED", now, error="OSError", cause=f"cannot reach {url}")
    state.save_circuit("wf", failures=1, last_error=f"OSError: {url}")
    written = [stream.getvalue(), (tmp_path / "exec-1.jsonl").read_text(), *read_log(f"{{\"error\": \"{url}\"}}\n")]
    assert all("svc:***@db.example.com" in w for w in written), written
    execution = state.execution("exec-1")
    assert execution.cause == "cannot reach https://svc:***@db.example.com/x"
    assert execution.input == {"source": "https://svc:***@db.example.com/x"}
    assert state.events("exec-1")[0].details == {"error": "https://svc:***@db.example.com/x"}
    assert "svc:***@" in str(state.circuit("wf"))
    assert SECRET.encode() not in (tmp_path / "state.db").read_bytes()
    assert not any(SECRET in w for w in written)


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
    assert failed and failed[0]["channel"] == "webhook" and "Connection refused" in failed[0]["error"]
    execution = failed[0]["execution_id"]
    outputs = [run.stdout, run.stderr,
               cli("logs", execution, cwd=project).stdout,
               cli("logs", execution, "--log-format", "json", cwd=project).stdout,
               cli("runs", "show", execution, "--events", "--format", "json", cwd=project).stdout]
    assert "NotificationFailed" in outputs[2] and "NotificationFailed" in outputs[4]
    for output in outputs:
        assert SECRET not in output
    lake_files = [p for p in (project / "lake").rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" and "_logs" in p.parts for p in lake_files)
    assert any(p.name == "state.db" for p in lake_files)
    for path in lake_files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_credentials_in_a_webhook_url_are_sent_as_basic_auth() -> None:
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, str | None]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        WebhookChannel(f"http://user:p%40ss@127.0.0.1:{port}/hook?x=1", timeout=5).send(Alert("k", "j"), "t")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert received == [("/hook?x=1", "Basic " + base64.b64encode(b"user:p@ss").decode())]

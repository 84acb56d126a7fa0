"""The notifier: fan-out, de-duplication window, failing channels, payload shapes."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from retail_etl.config.model import NotificationsConfig
from retail_etl.notify import Alert, ConsoleChannel, Notifier, notifier_from_config, slack_payload
from retail_etl.notify.channels import NotificationError, SnsChannel, WebhookChannel, _sns_subject
from retail_etl.workflow import WorkflowState
from tests.unit.workflow.helpers import FakeTime, ListChannel

ALERT = Alert("quarantine_rate_warn", "sales", "thresholds.quarantine_rate.warn", "2023-01-15", "warning",
              "sales: 8.00% of rows quarantined", "above 5%", {"rate": 0.08})


class Failing:
    name = "broken"

    def send(self, alert, sent_at):
        raise ConnectionRefusedError("no route")


def test_dedup_within_the_window_persisted_in_the_state_db(workdir: Path) -> None:
    time = FakeTime()
    state = WorkflowState(workdir / "state.db")
    channel = ListChannel()
    notifier = Notifier([channel], state=state, dedup_window_seconds=3600, wall=time.wall)

    assert notifier.send(ALERT).sent == ["list"]
    time.advance(3599)
    again = Notifier([channel], state=state, dedup_window_seconds=3600, wall=time.wall)  # another run
    assert again.send(ALERT).suppressed
    other = Alert("quarantine_rate_warn", "sales", "thresholds.quarantine_rate.warn", "2023-01-16")
    assert not again.send(other).suppressed  # another partition is another alert
    time.advance(1)
    assert again.send(ALERT).sent == ["list"]
    assert [a.partition for a in channel.alerts] == ["2023-01-15", "2023-01-16", "2023-01-15"]


def test_a_failing_channel_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    channel = ListChannel()
    notifier = Notifier([Failing(), channel])
    delivery = notifier.send(ALERT)
    assert delivery.sent == ["list"]
    assert delivery.failed == {"broken": "ConnectionRefusedError: no route"}
    assert "notification channel broken failed" in caplog.text


def test_undelivered_alerts_are_not_recorded_as_sent() -> None:
    notifier = Notifier([Failing()])
    assert notifier.send(ALERT).failed and not notifier.send(ALERT).suppressed


def test_window_zero_disables_dedup() -> None:
    channel = ListChannel()
    notifier = Notifier([channel], dedup_window_seconds=0)
    notifier.send(ALERT)
    notifier.send(ALERT)
    assert len(channel.alerts) == 2


def test_console_line() -> None:
    out = io.StringIO()
    ConsoleChannel(out).send(ALERT, "2024-01-15T10:30:00.000Z")
    assert out.getvalue() == (
        "[WARNING] quarantine_rate_warn sales/thresholds.quarantine_rate.warn/2023-01-15: "
        "sales: 8.00% of rows quarantined: above 5%\n"
    )


def test_slack_payload_shape() -> None:
    payload = slack_payload(ALERT, "2024-01-15T10:30:00.000Z")
    assert payload["text"] == ":warning: sales: 8.00% of rows quarantined: above 5%"
    types = [b["type"] for b in payload["blocks"]]
    assert types == ["header", "section", "section", "section", "context"]
    assert payload["blocks"][0]["text"] == {"type": "plain_text", "text": ALERT.title, "emoji": True}
    assert {"type": "mrkdwn", "text": "*Partition*\n2023-01-15"} in payload["blocks"][2]["fields"]
    long = slack_payload(Alert("k", "j", title="x" * 500, message="y" * 5000), "t")
    assert len(long["blocks"][0]["text"]["text"]) == 150 and len(long["blocks"][1]["text"]["text"]) == 3000


def test_missing_secret_env_var_is_a_channel_error() -> None:
    channel = WebhookChannel(url_env="SLACK_WEBHOOK_URL", env={})
    with pytest.raises(NotificationError, match="environment variable SLACK_WEBHOOK_URL is not set"):
        channel.send(ALERT, "t")


def test_sns_channel_checks_the_arn_and_subject() -> None:
    with pytest.raises(ValueError, match="not an SNS topic ARN"):
        SnsChannel("arn:aws:sqs:eu-west-1:123456789012:q")
    assert SnsChannel("arn:aws:sns:eu-west-1:123456789012:alerts").region == "eu-west-1"
    assert _sns_subject("données\nperdues " + "x" * 200) == ("donn es perdues " + "x" * 200)[:100]


def test_sns_without_boto3_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)
    channel = SnsChannel("arn:aws:sns:eu-west-1:123456789012:alerts")
    with pytest.raises(NotificationError, match="needs boto3") as info:
        channel.send(ALERT, "t")
    assert info.value.hint == "pip install 'retail-etl[aws]'"


def test_notifier_from_config_names_channels(workdir: Path) -> None:
    config = NotificationsConfig.model_validate({
        "channels": ["console", {"webhook": {"url": "http://127.0.0.1:9/hook"}},
                     {"webhook": {"url_env": "HOOK", "payload": "slack"}},
                     {"sns": {"topic_arn": "arn:aws:sns:eu-west-1:123456789012:alerts"}}],
        "on_success": True, "dedup_window_seconds": 60,
    })
    notifier = notifier_from_config(config, WorkflowState(workdir / "s.db"), env={})
    assert [c.name for c in notifier.channels] == ["console", "webhook", "webhook-2", "sns"]
    assert notifier.on_success and notifier.dedup_window_seconds == 60
    assert notifier.channels[2].payload == "slack"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"webhook": {}}, "exactly one of url and url_env"),
        ({"webhook": {"url": "ftp://x"}}, "must start with http"),
        ({"webhook": {"url_env": "https://hooks.slack.com/secret"}}, "String should match pattern"),
        ({"email": {"host": "h", "sender": "a@b", "to": ["c@d"], "ssl": True}}, "exclude each other"),
        ({"email": {"host": "h", "sender": "a@b", "to": ["c@d"], "username_env": "U"}}, "both username_env"),
        ({"console": {}, "sns": {"topic_arn": "arn:aws:sns:eu-west-1:123456789012:a"}}, "exactly one of console"),
    ],
)
def test_channel_config_validation(channel: dict, message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        NotificationsConfig.model_validate({"channels": [channel]})


def test_dedup_times_are_utc(workdir: Path) -> None:
    state = WorkflowState(workdir / "s.db")
    at = dt.datetime(2024, 1, 15, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    state.alert_sent(ALERT.key, at)
    assert state.alert_last_sent(ALERT.key) == at

"""Alerts to people: console, webhook (JSON or Slack), e-mail (SMTP) and AWS SNS, de-duplicated."""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from retail_etl.notify.alert import (
    CIRCUIT_OPEN, QUARANTINE_RATE_WARN, STEP_FAILED, SUCCESS_SUMMARY, Alert, quarantine_rate_alert, slack_payload,
)
from retail_etl.notify.channels import (
    Channel, ConsoleChannel, EmailChannel, NotificationError, SnsChannel, WebhookChannel,
)
from retail_etl.notify.notifier import AlertLog, Delivery, Notifier, utcnow

if TYPE_CHECKING:
    from retail_etl.config.model import ChannelConfig, NotificationsConfig

__all__ = [
    "CIRCUIT_OPEN", "QUARANTINE_RATE_WARN", "STEP_FAILED", "SUCCESS_SUMMARY", "Alert", "Channel", "ConsoleChannel",
    "AlertLog", "Delivery", "EmailChannel", "NotificationError", "Notifier", "SnsChannel", "WebhookChannel",
    "channel_from_config",
    "notifier_from_config", "quarantine_rate_alert", "slack_payload",
]


def channel_from_config(config: ChannelConfig, name: str, env: Mapping[str, str] | None = None) -> Channel:
    """The channel a ``notifications.channels`` entry describes."""
    if config.console is not None:
        return ConsoleChannel(sys.stdout if config.console.stream == "stdout" else None, name=name)
    if config.webhook is not None:
        w = config.webhook
        return WebhookChannel(w.url, url_env=w.url_env, payload=w.payload, headers=w.headers,
                              headers_env=w.headers_env, timeout=w.timeout_seconds, name=name, env=env)
    if config.email is not None:
        e = config.email
        return EmailChannel(e.host, sender=e.sender, to=e.to, port=e.port, starttls=e.starttls, use_ssl=e.ssl,
                            username_env=e.username_env, password_env=e.password_env, timeout=e.timeout_seconds,
                            name=name, env=env)
    assert config.sns is not None
    return SnsChannel(config.sns.topic_arn, region=config.sns.region, endpoint_url=config.sns.endpoint_url, name=name)


def notifier_from_config(
    config: NotificationsConfig,
    state: AlertLog | None,
    *,
    env: Mapping[str, str] | None = None,
    wall: Callable[[], dt.datetime] = utcnow,
) -> Notifier:
    """The notifier of the ``notifications:`` section. Channels are named by type (``webhook``,
    then ``webhook-2`` for a second one)."""
    channels: list[Channel] = []
    seen: dict[str, int] = {}
    for item in config.channels:
        seen[item.type] = seen.get(item.type, 0) + 1
        name = item.type if seen[item.type] == 1 else f"{item.type}-{seen[item.type]}"
        channels.append(channel_from_config(item, name, os.environ if env is None else env))
    return Notifier(channels, state=state, dedup_window_seconds=config.dedup_window_seconds,
                    on_success=config.on_success, wall=wall)

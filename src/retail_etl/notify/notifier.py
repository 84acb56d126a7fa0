"""Send an alert to every channel, at most once per (kind, job, rule, partition) within a window."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from retail_etl.notify.alert import Alert
from retail_etl.notify.channels import Channel
from retail_etl.redact import mask_secrets
from retail_etl.workflow.state import WorkflowState, iso, utcnow

log = logging.getLogger("retail_etl.notify")


@dataclass
class Delivery:
    """What became of one alert: ``suppressed`` as a repeat, else the channels it reached or failed on."""

    alert: Alert
    suppressed: bool = False
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Notifier:
    """Fans alerts out to channels. A failing channel is logged and reported in the :class:`Delivery`,
    never raised. The de-duplication log lives in the state database (in memory without one); an alert
    no channel delivered is not recorded, so the next repeat is tried again.
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        state: WorkflowState | None = None,
        dedup_window_seconds: float = 86400,
        on_success: bool = False,
        wall: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.channels = list(channels)
        self.state = state
        self.dedup_window_seconds = dedup_window_seconds
        self.on_success = on_success
        self.wall = wall
        self._memory: dict[tuple[str, str, str, str], dt.datetime] = {}

    def send(self, alert: Alert) -> Delivery:
        now = self.wall().astimezone(dt.UTC)
        delivery = Delivery(alert)
        last = self.state.alert_last_sent(alert.key) if self.state else self._memory.get(alert.key)
        if last is not None and (now - last).total_seconds() < self.dedup_window_seconds:
            if self.state:
                self.state.alert_suppressed(alert.key)
            log.info("alert %s suppressed: already sent at %s", alert.key, iso(last))
            delivery.suppressed = True
            return delivery
        sent_at = iso(now)
        outgoing = alert.redacted()
        for channel in self.channels:
            try:
                channel.send(outgoing, sent_at)
            except Exception as exc:  # a channel must never break the run
                error = mask_secrets(f"{type(exc).__name__}: {exc}")
                delivery.failed[channel.name] = error
                log.warning("notification channel %s failed for %s: %s", channel.name, alert.kind, error)
            else:
                delivery.sent.append(channel.name)
        if delivery.sent:
            if self.state:
                self.state.alert_sent(alert.key, now)
            else:
                self._memory[alert.key] = now
        return delivery

"""Alerts: what happened, to which job, rule and partition, how bad, and the payloads channels send."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from retail_etl.redact import mask_secrets, redact

QUARANTINE_RATE_WARN = "quarantine_rate_warn"
STEP_FAILED = "step_failed"
CIRCUIT_OPEN = "circuit_open"
SUCCESS_SUMMARY = "success_summary"

Severity = Literal["info", "warning", "error", "critical"]
_ICONS = {"info": ":information_source:", "warning": ":warning:", "error": ":x:", "critical": ":rotating_light:"}


@dataclass(frozen=True)
class Alert:
    """One notification. Repeats of the same ``key`` (kind, job, rule, partition) are de-duplicated."""

    kind: str
    job: str
    rule: str = ""
    partition: str = ""
    severity: Severity = "error"
    title: str = ""
    message: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.job, self.rule, self.partition)

    def redacted(self) -> Alert:
        """This alert with credentials inside URLs masked in every text (error messages included)."""
        return dataclasses.replace(
            self, job=mask_secrets(self.job), rule=mask_secrets(self.rule), partition=mask_secrets(self.partition),
            title=mask_secrets(self.title), message=mask_secrets(self.message), details=redact(dict(self.details)),
        )

    def payload(self, sent_at: str) -> dict[str, Any]:
        """The JSON document webhooks and SNS receive."""
        return {
            "kind": self.kind, "job": self.job, "rule": self.rule, "partition": self.partition,
            "severity": self.severity, "title": self.title, "message": self.message,
            "details": dict(self.details), "time": sent_at,
        }

    def text(self, sent_at: str) -> str:
        """A plain-text body (e-mail)."""
        lines = [self.title, "", self.message, ""] if self.message else [self.title, ""]
        for label, value in (("kind", self.kind), ("job", self.job), ("rule", self.rule),
                             ("partition", self.partition), ("severity", self.severity), ("time", sent_at)):
            if value:
                lines.append(f"{label + ':':<11}{value}")
        if self.details:
            lines += ["", "details:", json.dumps(dict(self.details), indent=2, default=str, ensure_ascii=False)]
        return "\n".join(lines) + "\n"


def slack_payload(alert: Alert, sent_at: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the fallback) and Block Kit ``blocks``."""
    icon = _ICONS.get(alert.severity, "")
    fields = [
        {"type": "mrkdwn", "text": f"*{label}*\n{value}"[:2000]}
        for label, value in (("Job", alert.job), ("Rule", alert.rule), ("Partition", alert.partition),
                             ("Severity", alert.severity))
        if value
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150] or alert.kind, "emoji": True}},
    ]
    if alert.message:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": alert.message[:3000]}})
    blocks.append({"type": "section", "fields": fields})
    if alert.details:
        details = json.dumps(dict(alert.details), indent=1, default=str, ensure_ascii=False)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{details[:2990]}```"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{alert.kind} · {sent_at}"}]})
    text = f"{icon} {alert.title}".strip() + (f": {alert.message}" if alert.message else "")
    return {"text": text, "blocks": blocks}


def quarantine_rate_alert(
    source: str, rate: float, threshold: float, *, partition: str = "", run_id: str = "",
    rows_read: int | None = None, rows_quarantined: int | None = None,
) -> Alert:
    """The warning for a batch whose quarantine rate is above ``thresholds.quarantine_rate.warn``."""
    details: dict[str, Any] = {"rate": rate, "threshold": threshold}
    if run_id:
        details["run_id"] = run_id
    if rows_read is not None:
        details["rows_read"] = rows_read
    if rows_quarantined is not None:
        details["rows_quarantined"] = rows_quarantined
    return Alert(
        kind=QUARANTINE_RATE_WARN, job=source, rule="thresholds.quarantine_rate.warn", partition=partition,
        severity="warning", title=f"{source}: {rate:.2%} of rows quarantined",
        message=f"The quarantine rate of source {source!r} is {rate:.2%}, above the warning threshold "
                f"{threshold:.2%}. The quarantine table lists each row's failed rules.",
        details=details,
    )

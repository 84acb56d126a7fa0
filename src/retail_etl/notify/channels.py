"""Notification channels: console, webhook (JSON or Slack), e-mail over SMTP, AWS SNS.

A channel's ``send`` raises on failure; the :class:`~retail_etl.notify.notifier.Notifier` logs it and
carries on. Secrets (webhook URLs, SMTP credentials) are read from environment variables at send time,
and failure messages never contain them: a URL is named by its scheme and host only, with any
credentials masked.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

from retail_etl.errors import RetailEtlError
from retail_etl.notify.alert import Alert, slack_payload
from retail_etl.redact import mask_secrets

if TYPE_CHECKING:
    from email.message import EmailMessage


class NotificationError(RetailEtlError):
    """A channel could not deliver an alert."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert, sent_at: str) -> None: ...


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise NotificationError(f"environment variable {name} is not set", hint=f"export {name}=...")
    return value


class ConsoleChannel:
    """One line per alert on stderr (or ``stream``)."""

    def __init__(self, stream: TextIO | None = None, name: str = "console") -> None:
        self.stream = stream
        self.name = name

    def send(self, alert: Alert, sent_at: str) -> None:
        where = "/".join(p for p in (alert.job, alert.rule, alert.partition) if p)
        text = f"{alert.title}" + (f": {alert.message}" if alert.message else "")
        stream = self.stream or sys.stderr
        stream.write(f"[{alert.severity.upper()}] {alert.kind} {where}: {text}\n")
        stream.flush()


class WebhookChannel:
    """POST the alert as JSON (``payload="json"``) or as a Slack message (``payload="slack"``)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        url_env: str | None = None,
        payload: Literal["json", "slack"] = "json",
        headers: Mapping[str, str] | None = None,
        headers_env: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        name: str = "webhook",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if (url is None) == (url_env is None):
            raise ValueError("give exactly one of url and url_env")
        self.url = url
        self.url_env = url_env
        self.payload = payload
        self.headers = dict(headers or {})
        self.headers_env = dict(headers_env or {})
        self.timeout = timeout
        self.name = name
        self.env = os.environ if env is None else env

    def send(self, alert: Alert, sent_at: str) -> None:
        import urllib.error
        import urllib.request

        url, auth = _split_credentials(self.url or _env(self.env, self.url_env or ""))
        body = slack_payload(alert, sent_at) if self.payload == "slack" else alert.payload(sent_at)
        headers = {"Content-Type": "application/json", "User-Agent": "retail-etl", **auth, **self.headers}
        headers.update({header: _env(self.env, var) for header, var in self.headers_env.items()})
        request = urllib.request.Request(
            url, data=json.dumps(body, default=str).encode(), headers=headers, method="POST"
        )
        where = _where(url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise NotificationError(mask_secrets(f"{where} answered HTTP {exc.code} {exc.reason}")) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotificationError(mask_secrets(f"cannot reach {where}: {reason}")) from None


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``https://user:password@host/x`` -> (``https://host/x``, a Basic ``Authorization`` header):
    urllib would take the credentials for part of the host name."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def _where(url: str) -> str:
    """``scheme://host:port/...``: the path and query may carry a secret (Slack), and so may the
    user and password before the host, which are masked."""
    parts = urllib.parse.urlsplit(url)
    return mask_secrets(f"{parts.scheme}://{parts.netloc}/...")


class EmailChannel:
    """Send the alert as a plain-text e-mail through an SMTP server."""

    def __init__(
        self,
        host: str,
        *,
        sender: str,
        to: Sequence[str],
        port: int = 587,
        starttls: bool = True,
        use_ssl: bool = False,
        username_env: str | None = None,
        password_env: str | None = None,
        timeout: float = 10.0,
        name: str = "email",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if starttls and use_ssl:
            raise ValueError("choose one of starttls and ssl")
        if not to:
            raise ValueError("an e-mail channel needs at least one recipient")
        self.host, self.port = host, port
        self.sender, self.to = sender, tuple(to)
        self.starttls, self.use_ssl = starttls, use_ssl
        self.username_env, self.password_env = username_env, password_env
        self.timeout = timeout
        self.name = name
        self.env = os.environ if env is None else env

    def message(self, alert: Alert, sent_at: str) -> EmailMessage:
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        msg = EmailMessage()
        msg["Subject"] = f"[retail-etl] {alert.severity.upper()}: {alert.title or alert.kind}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="retail-etl")
        msg["X-Retail-ETL-Kind"] = alert.kind
        msg.set_content(alert.text(sent_at))
        return msg

    def send(self, alert: Alert, sent_at: str) -> None:
        import smtplib
        import ssl

        msg = self.message(alert, sent_at)
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP = (
                smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
                if self.use_ssl else smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            )
            with smtp:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.username_env:
                    smtp.login(_env(self.env, self.username_env), _env(self.env, self.password_env or ""))
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise NotificationError(mask_secrets(f"SMTP {self.host}:{self.port}: {exc}")) from None


class SnsChannel:
    """Publish the alert (JSON) to an SNS topic. Credentials come from boto3's usual chain."""

    def __init__(
        self, topic_arn: str, *, region: str | None = None, endpoint_url: str | None = None, name: str = "sns"
    ) -> None:
        parts = topic_arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns":
            raise ValueError(f"not an SNS topic ARN: {topic_arn!r} (arn:aws:sns:REGION:ACCOUNT:NAME)")
        self.topic_arn = topic_arn
        self.region = region or parts[3]
        self.endpoint_url = endpoint_url
        self.name = name
        self._client: Any = None

    def _sns(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise NotificationError(
                    "the sns channel needs boto3, which is not installed", hint="pip install 'retail-etl[aws]'"
                ) from None
            self._client = boto3.client("sns", region_name=self.region, endpoint_url=self.endpoint_url)
        return self._client

    def send(self, alert: Alert, sent_at: str) -> None:
        self._sns().publish(
            TopicArn=self.topic_arn,
            Subject=_sns_subject(alert.title or alert.kind),
            Message=json.dumps(alert.payload(sent_at), default=str, ensure_ascii=False),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": alert.kind},
                "severity": {"DataType": "String", "StringValue": alert.severity},
            },
        )


def _sns_subject(title: str) -> str:
    """SNS subjects: printable ASCII, one line, at most 100 characters."""
    text = "".join(c if " " <= c <= "~" else " " for c in title).strip()
    return (text or "retail-etl alert")[:100]

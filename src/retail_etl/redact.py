"""Text that leaves the program: secrets inside URLs masked, control characters made visible.

``redact`` is applied wherever a message may be written (logs, the state database, alerts, error
lines); ``escape_control`` wherever text reaches a terminal, so that data and file names cannot
move the cursor, change the terminal's title or hide what follows.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@host: the userinfo runs to the last "@" before the path, query or fragment.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@\"'<>]*(?:@[^\s/?#@\"'<>]*)*)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_.-]*(?:password|passwd|secret|token|signature|credential|api[_-]?key|"
    r"access[_-]?key|sig))=)(?P<value>[^&#\s\"'<>]+)",
    re.IGNORECASE,
)
# C0 controls, DEL and C1 controls (ESC and CSI start terminal escape sequences).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_C1 = re.compile("[\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    if not colon:  # a lone user name may itself be a token (https://<token>@host)
        return f"{match['scheme']}{MASK}@"
    return f"{match['scheme']}{user}:{MASK}@"


def mask_secrets(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` (and a lone user name,
    which may be a token) and the values of secret-looking query parameters replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", _USERINFO.sub(_mask_userinfo, text))


def redact(value: Any) -> Any:
    """``value`` with :func:`mask_secrets` applied to every string in it (dicts, lists and tuples
    are walked; their keys too); other values are returned as they are."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


def escape_control(text: str) -> str:
    r"""``text`` with every control character shown as an escape (``\x1b``, ``\n``, ``\t``, ...).

    Backslashes are left as they are, so ordinary text (Windows paths) reads unchanged; a
    backslash sequence in the output is therefore either literal text or an escaped control."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m[0], f"\\x{ord(m[0]):02x}"), text)


def escape_json_controls(line: str) -> str:
    r"""A JSON text with DEL and C1 controls written as ``\u`` escapes (``json.dumps`` escapes only
    C0 controls); the decoded value is the same."""
    return _C1.sub(lambda m: f"\\u{ord(m[0]):04x}", line)

"""Text that is safe to print: secrets redacted, control characters escaped (no torch, no I/O).

Every message, table cell and report line that can hold text from a definition, a URL or a server goes
through :func:`clean` before it reaches a terminal; JSON documents go through :func:`redact_data`
(JSON escapes control characters itself).
"""

from __future__ import annotations

import re
import urllib.parse

# Query parameters whose value is a credential (case-insensitive; matched on the whole name).
SECRET_PARAMETERS = frozenset({
    "token", "access_token", "auth", "auth_token", "api_key", "apikey", "key", "password", "passwd", "pwd",
    "secret", "sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential", "hf_token", "client_secret", "session", "sessionid",
})
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#@\s]*@")
# A value ends at a separator, a blank or a quote; punctuation that ends a sentence (``token=abc: next``) is
# left outside it.
_QUERY_PARAMETER = re.compile(r"([?&;])([^=&;#\s'\"<>()]+)=([^&;#\s'\"<>()]*?)(?=[:,.\]]*(?:[&;#\s'\"<>()]|$))")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._\-]{8,}")

# C0 and C1 controls, DEL, and the Unicode bidirectional controls that reorder what a terminal shows.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _query_value(match: re.Match) -> str:
    separator, name, value = match.groups()
    secret = urllib.parse.unquote(name).lower() in SECRET_PARAMETERS
    return f"{separator}{name}={'***' if secret and value else value}"


def redact(text: str) -> str:
    """``text`` with URL passwords (``https://***@host``), token-like query values and HF tokens replaced."""
    if not text:
        return text
    text = _USERINFO.sub(r"\1***@", text)
    if "=" in text:
        text = _QUERY_PARAMETER.sub(_query_value, text)
    text = _HF_TOKEN.sub("hf_***", text)
    return _BEARER.sub(r"\1***", text)


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """Control characters (ESC, CR, LF, NUL, bidi overrides, lone surrogates) as visible escapes."""
    return _CONTROLS.sub(_escape, text) if text else text


def clean(text) -> str:
    """What may be printed as one piece of terminal text: redacted, then control characters escaped."""
    return escape_controls(redact(str(text)))


def redact_data(data):
    """A copy of JSON data with every string (keys included) redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact(k) if isinstance(k, str) else k: redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(v) for v in data]
    return data


def did_you_mean(word: str, choices, *, cutoff: float = 0.75) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` (case-insensitive), or an empty string."""
    import difflib  # only when a finding needs it

    choices = [c for c in choices if isinstance(c, str)]
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""

"""One redaction function for every copy of a secret that leaves memory.

A SAS URL (`https://acct.blob.core.windows.net/c/train.jsonl?sv=...&sig=...`) may be a recipe's data
input: it reaches Azure only as that input. Every other copy (printed lines and error messages, log
records, `resolved_recipe.json`, `job.yml`, `request.json`, MLflow parameters and job tags) goes
through `redact`, which keeps the resource and the non-secret fields (`sv`, `sp`, `sr`, ... say what
the token allows, which helps debugging) and replaces the values of:

- SAS signing fields: `sig`, `se` (the signed expiry, part of what is signed), and the user-delegation key fields `skoid`, `sktid`, `skt`, `ske`,
  `sks`, `skv`;
- query parameters named like credentials: `key`, `code`, `token`, `*_key`, `*-key`, `*token`,
  `secret`, `password`, `sas`;
- `Bearer` tokens and JWTs, connection-string keys (`AccountKey=`, `SharedAccessKey=`, ...), JSON
  fields such as `"accessToken": "..."`, and the password in `scheme://user:password@host`.

Parameters whose *name* says they hold a credential (`target.sas_token`, `api_key`, ...) are
replaced whole by `redact_params`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Mapping

REDACTED = "REDACTED"
SIGNING_FIELDS = ("sig", "se", "skoid", "sktid", "skt", "ske", "sks", "skv")
_VALUE = r"[^&#\s\"'<>;,)\]]+"
_QUERY_NAME = r"(?:[A-Za-z0-9_.-]*(?:key|token)|code|secret|password|passwd|sas|sastoken)"
_PATTERNS: list[tuple[re.Pattern, str]] = [
    # SAS signing fields anywhere (URLs, connection strings `SharedAccessSignature=sv=..&sig=..`, messages)
    (re.compile(rf"(?<![A-Za-z0-9_-])((?:{'|'.join(SIGNING_FIELDS)})=){_VALUE}", re.I), rf"\1{REDACTED}"),
    # credential-like query parameters (`?code=` for Azure Functions, `&api-key=`, `?token=`)
    (re.compile(rf"([?&]{_QUERY_NAME}=){_VALUE}", re.I), rf"\1{REDACTED}"),
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*", re.I), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*"), REDACTED),
    (re.compile(r"\b(AccountKey|SharedAccessKey|SharedAccessSignature|client_secret|password|api[_-]?key)"
                r"(\s*[=:]\s*)(?!REDACTED)[^;\s\"'&]+", re.I), rf"\1\2{REDACTED}"),
    (re.compile(r"(\"(?:key|primaryKey|secondaryKey|accessToken|access_token|refresh_token|sasToken|sasUri|"
                r"client_secret|password|api_key)\"\s*:\s*\")[^\"]+\"", re.I), rf'\1{REDACTED}"'),
    # userinfo password in a URL (MLflow/database URIs)
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\1{REDACTED}@"),
]
# Parameter names that hold a credential whatever their value looks like.
_SECRET_NAME = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|access[_-]?key|credential|(^|[._])sas([._]|$)|sas[_-]?(url|uri|token)"
    r"|connection[_-]?string)", re.I)
_NOT_SECRET_NAME = re.compile(r"(token_id|tokens|_token_key|token_key)$", re.I)


def redact(text: str) -> str:
    """`text` with every secret value replaced by REDACTED (see the module docstring)."""
    if not text or ("=" not in text and ":" not in text and "eyJ" not in text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, strings) with `redact` applied to every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item) for item in value]
    return value


def redact_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Tracking parameters: values of credential-named keys replaced whole, every other value redacted."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        secret_name = _SECRET_NAME.search(key) and not _NOT_SECRET_NAME.search(key)
        out[key] = REDACTED if secret_name else redact_data(value)
    return out


def install_log_redaction() -> None:
    """Redact every log message of this process (azure-ai-ml's telemetry logs whole error bodies,
    SAS URLs included, at ERROR level). Idempotent."""
    if getattr(logging, "_phitune_redacting", False):
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        original = record.getMessage
        record.getMessage = lambda: redact(original())
        return record

    logging.setLogRecordFactory(factory)
    logging._phitune_redacting = True  # type: ignore[attr-defined]


class RedactingStream:
    """Wraps stdout/stderr so every `write` is redacted (the CLI installs it: every line phitune or a
    library prints passes here). Everything else (fileno, isatty, encoding, buffer) is the stream's."""

    def __init__(self, stream):
        self._stream = stream

    @property
    def wrapped(self):
        return self._stream

    def write(self, text):
        return self._stream.write(redact(text) if isinstance(text, str) else text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

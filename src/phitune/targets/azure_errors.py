"""Azure failures -> one clear `SubmitError` with Azure's error code, and secrets kept out of messages.

Transient 429/5xx are retried by azure-core's RetryPolicy (configured in phitune.targets.workspace);
what reaches here has already been retried. Every message passes through `phitune.redact.redact`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from phitune.errors import Problem, SubmitError
from phitune.redact import redact

# Azure error codes -> what to do about them.
_FIXES = {
    "AuthenticationFailed": "sign in with `az login` (or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET)",
    "InvalidAuthenticationToken": "sign in again with `az login`; check the tenant with `az account show`",
    "ExpiredAuthenticationToken": "sign in again with `az login`",
    "AuthorizationFailed": "ask for the 'AzureML Data Scientist' role on the workspace (or Contributor)",
    "ResourceGroupNotFound": "check target.workspace.resource_group (or config.json)",
    "SubscriptionNotFound": "check target.workspace.subscription; `az account list` shows yours",
    "WorkspaceNotFound": "check target.workspace.name (or config.json); `az ml workspace list` shows yours",
    "ResourceNotFound": "check the workspace (target.workspace or config.json) and the compute / model names",
    "NotFound": "check the workspace (target.workspace or config.json) and the compute / model names",
    "QuotaExceeded": "request more quota for this VM family, or pick another target.instance_type / compute",
    "OperationNotAllowed": "request more quota for this VM family, or pick another target.instance_type / compute",
    "SkuNotAvailable": "this VM size is not offered in the region: pick another target.instance_type",
    "InvalidSku": "this VM size is not valid here: pick another target.instance_type",
    "TooManyRequests": "Azure throttled the request after phitune's retries; wait a minute and submit again",
    "ServiceUnavailable": "Azure was unavailable after phitune's retries; try again later",
}


def to_submit_error(exc: BaseException, action: str) -> SubmitError:
    """One `SubmitError` for any Azure failure, naming Azure's error code and a fix."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) and not status:
        message = _first_line(exc)
        return SubmitError(f"Azure authentication failed while {action}", [Problem(
            "credential", redact(message),
            "sign in with `az login`, or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET for a service principal")])
    if isinstance(exc, HttpResponseError):
        code, message = _azure_code(exc, status)
        fix = _FIXES.get(code) or _fix_for_status(status)
        where = f"HTTP {status}" if status else "Azure"
        return SubmitError(f"Azure refused the request while {action}: {code}",
                           [Problem(where, redact(f"{code}: {message}"), fix)])
    if isinstance(exc, ServiceRequestError):
        return SubmitError(f"cannot reach Azure while {action}",
                           [Problem("network", redact(_first_line(exc)), "check the network / proxy and try again")])
    # azure-ai-ml's own client-side exceptions (validation, missing local files, bad workspace config).
    return SubmitError(f"Azure ML rejected the job while {action}",
                       [Problem(type(exc).__name__, redact(_first_line(exc)), None)])


@contextmanager
def azure_call(action: str) -> Iterator[None]:
    """Run Azure SDK calls; any Azure failure leaves as a `SubmitError` (exit 2, no traceback)."""
    try:
        yield
    except SubmitError:
        raise
    except Exception as exc:  # noqa: BLE001 - filtered below: only Azure's exceptions are translated
        if not _is_azure_exception(exc):
            raise
        raise to_submit_error(exc, action) from None


def _is_azure_exception(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("azure.", "msrest", "marshmallow"))


def _azure_code(exc, status: int | None) -> tuple[str, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    # The innermost error code is the specific one (e.g. QuotaExceeded under UserError).
    inner = getattr(error, "details", None) or []
    for detail in inner:
        if getattr(detail, "code", None):
            code, message = detail.code, getattr(detail, "message", message)
            break
    if not code:
        code = {401: "AuthenticationFailed", 403: "AuthorizationFailed", 404: "NotFound",
                429: "TooManyRequests", 503: "ServiceUnavailable"}.get(status or 0, getattr(exc, "reason", None) or "Error")
    return str(code), (message or _first_line(exc)).strip()


def _fix_for_status(status: int | None) -> str | None:
    if status == 401:
        return _FIXES["AuthenticationFailed"]
    if status == 403:
        return _FIXES["AuthorizationFailed"]
    if status == 404:
        return _FIXES["NotFound"]
    if status == 429:
        return _FIXES["TooManyRequests"]
    if status and status >= 500:
        return _FIXES["ServiceUnavailable"]
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]

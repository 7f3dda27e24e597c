"""One exception hierarchy for everything margen-mirror raises.

    MirrorError                      base; every error carries a one-line message and an exit code
    ├── UsageError                   bad input from the user (flags, filters, job files)   exit 2
    ├── DestinationError             DEST unusable: a file, read-only, full                exit 2
    ├── LockHeldError                another run holds DEST                                 exit 6
    ├── BudgetExhausted              --max-credits reached before the selection was done    exit 4
    ├── IntegrityError               a fetched body failed a check (not a JPEG, too big…)   exit 5
    ├── TransportError               network trouble that outlived its retries              exit 5
    ├── RedirectRefused              an API route redirected; the key never follows          exit 2
    └── ApiError                     the API answered with an error body
        ├── InvalidParam ... ServerError   one subclass per documented API ``code``

Branch on the class (or on ``ApiError.code``), never on message text: that is the API's own rule.
Messages never contain the API key; the client redacts it before an error is built.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "MirrorError", "UsageError", "DestinationError", "LockHeldError", "BudgetExhausted",
    "IntegrityError", "TransportError", "RedirectRefused", "ApiError", "InvalidParam", "InvalidCursor",
    "AmbiguousBenchmark", "Unauthorized", "InsufficientCredits", "ForbiddenTier", "ForbiddenScope",
    "NotFound", "UnknownBenchmark", "RateLimited", "ServerError", "api_error_from_body", "first_mirror_error",
    "EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_AUTH", "EXIT_BUDGET", "EXIT_PARTIAL",
    "EXIT_LOCKED", "EXIT_INTERRUPTED",
]

# Exit codes, in the rclone spirit: a cron job can branch on them without parsing text.
EXIT_OK = 0            # the selection is completely mirrored
EXIT_INTERNAL = 1      # a bug or an unexpected error: please report it
EXIT_USAGE = 2         # bad flags, filters, job file or destination: fix the input
EXIT_AUTH = 3          # key missing, unknown, revoked, or not allowed this content
EXIT_BUDGET = 4        # --max-credits reached or the account ran out of credits (402)
EXIT_PARTIAL = 5       # some items failed with retryable errors: run again to finish
EXIT_LOCKED = 6        # another run holds the destination lock
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM: state is saved, run again to resume


class MirrorError(Exception):
    """Base of every error margen-mirror raises on purpose."""

    exit_code: ClassVar[int] = EXIT_INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MirrorError):
    """The user asked for something that cannot be done as asked (nothing was spent)."""

    exit_code = EXIT_USAGE


class DestinationError(MirrorError):
    """The destination folder cannot be used: it is a file, read-only, or full."""

    exit_code = EXIT_USAGE


class LockHeldError(MirrorError):
    """Another margen-mirror run is writing to the same destination."""

    exit_code = EXIT_LOCKED


class BudgetExhausted(MirrorError):
    """The run stopped because the credit budget (--max-credits or the balance) ran out."""

    exit_code = EXIT_BUDGET


class IntegrityError(MirrorError):
    """A fetched body failed verification (size, JPEG markers, cap); the item is retried later."""

    exit_code = EXIT_PARTIAL


class TransportError(MirrorError):
    """The network or the server kept failing after the retries this request is allowed."""

    exit_code = EXIT_PARTIAL


class RedirectRefused(MirrorError):
    """An API route answered with a redirect; following it could send the key to another host."""

    exit_code = EXIT_USAGE


class ApiError(MirrorError):
    """The API returned an error body ``{error, code, param?, allowed?, available?, required?}``."""

    code: ClassVar[str] = ""
    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, status: int, body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.body = dict(body or {})
        self.param: str | None = self.body.get("param")
        self.allowed: list[str] | None = self.body.get("allowed")
        self.available: list[dict[str, Any]] | None = self.body.get("available")
        self.required: int | None = self.body.get("required")
        super().__init__(message + _choices(self.allowed, self.available))


class InvalidParam(ApiError):
    code = "invalid_param"
    exit_code = EXIT_USAGE


class InvalidCursor(ApiError):
    code = "invalid_cursor"
    exit_code = EXIT_USAGE


class AmbiguousBenchmark(ApiError):
    code = "ambiguous_benchmark"
    exit_code = EXIT_USAGE


class Unauthorized(ApiError):
    code = "unauthorized"
    exit_code = EXIT_AUTH


class InsufficientCredits(ApiError):
    code = "insufficient_credits"
    exit_code = EXIT_BUDGET


class ForbiddenTier(ApiError):
    code = "forbidden_tier"
    exit_code = EXIT_AUTH


class ForbiddenScope(ApiError):
    code = "forbidden_scope"
    exit_code = EXIT_AUTH


class NotFound(ApiError):
    code = "not_found"
    exit_code = EXIT_USAGE


class UnknownBenchmark(ApiError):
    code = "unknown_benchmark"
    exit_code = EXIT_USAGE


class RateLimited(ApiError):
    code = "rate_limited"
    exit_code = EXIT_PARTIAL


class ServerError(ApiError):
    code = "server_error"
    exit_code = EXIT_PARTIAL


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (InvalidParam, InvalidCursor, AmbiguousBenchmark, Unauthorized, InsufficientCredits,
                ForbiddenTier, ForbiddenScope, NotFound, UnknownBenchmark, RateLimited, ServerError)
}
_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized, 402: InsufficientCredits, 403: ForbiddenTier, 404: NotFound, 429: RateLimited,
}


def api_error_from_body(status: int, body: Any) -> ApiError:
    """Build the subclass for ``body['code']``; fall back on the status when the body is not the API's."""
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    text = body.get("error") if isinstance(body.get("error"), str) else f"HTTP {status}"
    return cls(f"{text} ({cls.code or status})", status=status, body=body)


def first_mirror_error(group: BaseExceptionGroup) -> BaseException:
    """The error a caller should see when concurrent workers failed together (a task group's group).

    A fatal error in one worker (a key revoked mid-run, a full disk) cancels the others; it reaches
    the caller as itself, with its own exit code and one line, not as a group. Without a
    ``MirrorError`` in it, the first exception of any kind (a bug, to be reported by its type).
    """
    found: BaseException | None = group.subgroup(lambda exc: isinstance(exc, MirrorError)) or group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


def _choices(allowed: Any, available: Any) -> str:
    """What the server says may be used instead (``allowed`` values, ``available`` benchmarks), so
    the one line says what to do; short, printable strings only, whatever the server sent."""
    ids = [b.get("id") for b in available if isinstance(b, dict)] if isinstance(available, list) else []
    out = ""
    for label, values in (("allowed", allowed if isinstance(allowed, list) else []), ("available", ids)):
        shown = [v for v in values if isinstance(v, str) and 0 < len(v) <= 64 and v.isprintable()]
        if shown:
            more = f" (+{len(shown) - 10} more)" if len(shown) > 10 else ""
            out += f"; {label}: {', '.join(shown[:10])}{more}"
    return out

"""The API's error body, ``{error, code, param?, allowed?, available?, required?}``.

Handlers raise :class:`ApiError`; the route wrapper turns it into the JSON body with the
documented status for its code, so a code can never be sent with the wrong status.
"""

from __future__ import annotations

STATUS = {
    "invalid_param": 400, "invalid_cursor": 400, "ambiguous_benchmark": 400, "unauthorized": 401,
    "insufficient_credits": 402, "forbidden_tier": 403, "forbidden_scope": 403, "not_found": 404,
    "unknown_benchmark": 404, "rate_limited": 429, "server_error": 500,
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = STATUS[code]
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def body(self) -> dict:
        return {"error": self.message, "code": self.code, **self.extra}


def invalid_param(param: str, message: str, allowed: list[str] | None = None) -> ApiError:
    return ApiError("invalid_param", message, param=param, allowed=allowed)

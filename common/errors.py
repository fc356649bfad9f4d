"""One application error type; each API family renders it in its own documented shape."""

from typing import Any


class HeraldError(Exception):
    """A business-rule failure with a machine code, a message, an HTTP status and extras."""

    def __init__(self, code: str, message: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


class NotFound(HeraldError):
    def __init__(self, what: str) -> None:
        label = what.replace("_", " ")
        super().__init__(f"{what}_not_found", f"No {label} with this id.", status=404)


class Conflict(HeraldError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, status=409)

"""Errors raised by the operations layer, each with a message an operator can act on."""


class OperationError(RuntimeError):
    """A set-up or run step failed; ``message`` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

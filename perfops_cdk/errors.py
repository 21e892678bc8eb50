"""The one error family perfops_cdk raises for bad input and failed effects.

Every message is a single line: where (construct path or command), which field,
the value received, and what is allowed. The CLI prints it and exits 2.
"""

from __future__ import annotations

from typing import Any


class PerfOpsError(Exception):
    """A failure the user can act on; its message is one line."""

    exit_code = 2


class InvalidField(PerfOpsError):
    """A declared value is not allowed.

    Raised by validators without knowing the construct path; the construct that
    received the value re-raises it with ``at(path)``.
    """

    def __init__(self, field: str, value: Any, allowed: str, path: str = "") -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.field}: {self.value!r} is not allowed; {self.allowed}"

    def at(self, path: str, field_prefix: str = "") -> InvalidField:
        """The same error, located at a construct path (and nested under a field)."""
        field = f"{field_prefix}.{self.field}" if field_prefix else self.field
        return InvalidField(field, self.value, self.allowed, path=path)


class EffectError(PerfOpsError):
    """An outside program or service (nix, terraform, AWS) failed."""

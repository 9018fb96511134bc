"""Errors and diagnostics shared by every command."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding about a file: ``path:line:col: CODE message``."""

    path: str
    line: int
    column: int
    code: str
    message: str = field(compare=False)
    hint: str = field(default="", compare=False)
    end_line: int | None = field(default=None, compare=False)
    end_column: int | None = field(default=None, compare=False)

    @property
    def severity(self) -> str:
        return "error" if self.code.startswith("E") else "warning"

    def to_dict(self) -> dict:
        return {
            "file": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line if self.end_line is not None else self.line,
            "end_column": self.end_column if self.end_column is not None else self.column,
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.code} {self.message}"


class WangpError(Exception):
    """An error the user can act on. The CLI prints it in one line and exits with ``exit_code``."""

    def __init__(self, message: str, *, code: str = "error", hint: str = "", exit_code: int = 1,
                 diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.exit_code = exit_code
        self.diagnostics = diagnostics or []


class UsageError(WangpError):
    """A bad option, argument or configuration: exit code 2."""

    def __init__(self, message: str, *, hint: str = "", code: str = "usage"):
        super().__init__(message, code=code, hint=hint, exit_code=2)


class NotFoundError(WangpError):
    """An id or file that does not exist."""

    def __init__(self, message: str, *, hint: str = ""):
        super().__init__(message, code="not-found", hint=hint, exit_code=1)

"""The one error type of the worlds package: what was wrong, where (file, line, column, token), what to do."""

from __future__ import annotations


class WorldError(ValueError):
    """A user-facing error about a PDDL file, a plan or a text: names the file, line and token."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        token: str | None = None,
        hint: str | None = None,
    ):
        self.message = message
        self.source = source
        self.line = line
        self.column = column
        self.token = token
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.source or ("<input>" if self.line is not None else "")
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.message}" if where else self.message
        if self.token is not None:
            text += f" (at {self.token!r})"
        if self.hint:
            text += f". {self.hint}"
        return text

"""The one exception type for mistakes a user can fix: the CLI prints its message on one line."""


class UserError(Exception):
    """A bad input (file, box, source, checkpoint). The message says what was wrong and what to do."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type's name when it has none), at most `limit`
    characters: what a one-line UserError quotes of a library's multi-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def described(exc: BaseException) -> str:
    """"Type: first line", or the type's name alone when the exception has no message (a bare KeyError)."""
    line = first_line(exc)
    return line if line == type(exc).__name__ else f"{type(exc).__name__}: {line}"

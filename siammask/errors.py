"""The one exception type for mistakes a user can fix: the CLI prints its message on one line."""


class UserError(Exception):
    """A bad input (file, box, source, checkpoint). The message says what was wrong and what to do."""

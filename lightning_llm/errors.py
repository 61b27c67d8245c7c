"""One exception type for mistakes a user can fix: the CLI prints it as one line, no traceback."""


class UserError(RuntimeError):
    """Bad input or configuration; the message names the thing and says what to do."""

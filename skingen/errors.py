"""Errors that the CLI turns into one-line messages (exit 2) instead of tracebacks."""


class UserError(Exception):
    """Bad input or usage: the message names the file and what to do; the CLI exits 2."""


class BadImage(Exception):
    """One image cannot be used; callers quarantine it with this message as the reason."""

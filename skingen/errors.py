"""Errors that the CLI turns into one-line messages (exit 2) instead of tracebacks."""


class UserError(Exception):
    """Bad input or usage: the message names the file and what to do; the CLI exits 2."""


class DamagedFile(UserError):
    """A file that exists but cannot be read whole (truncated or corrupt); the message names it and the fix."""

    def __init__(self, path, reason: str, fix: str = "make it again with the command that wrote it"):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: truncated or corrupt ({reason}); {fix}")


class BadImage(Exception):
    """One image cannot be used; callers quarantine it with this message as the reason."""

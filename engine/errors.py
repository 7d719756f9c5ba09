"""Errors the CLI reports as one line without a traceback: the message already says what to do."""


class UserError(Exception):
    """Bad input or missing setup (a file, a flag, a missing package); not a bug in outcore."""

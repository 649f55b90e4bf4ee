"""Errors that the command line reports as one line and exit code 2."""


class UsageError(Exception):
    """Bad command-line usage or bad input data: reported as one line, exit code 2."""


class TrainingError(Exception):
    """Training cannot go on (for example a non-finite loss): reported as one line, exit code 1."""


class InputWarning(UserWarning):
    """Input that works, but not as asked (the CLI prints it as one ``warning:`` line)."""

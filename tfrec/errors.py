"""Errors tfrec raises for problems a user can fix."""


class TfrecError(Exception):
    """Base class of the errors tfrec raises for a user's mistake or a bad input."""


class DataError(TfrecError, ValueError):
    """A data file or table is malformed; the message names the file and line or column."""


class DataNotFoundError(TfrecError, FileNotFoundError):
    """A named dataset could not be found in any of the places tfrec looks."""

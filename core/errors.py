"""Errors raised on bad input.

Every error that a user can cause (a corrupt file, a chain with no backbone, a NaN
coordinate) is an :class:`InputError`, a :class:`ValueError` whose message is one
line naming the file or argument and what was expected.  The CLI turns it into
exit code 2 and that line on stderr.
"""

__all__ = ["InputError", "ShapeError"]


class InputError(ValueError):
    """Bad user input: the message is one line, naming the input and the reason."""


class ShapeError(InputError):
    """An array of the wrong shape, dtype or content was given to a core object.

    A kind of InputError, so that a prediction the data cannot support (a 3-residue
    chain whose ANM covariance is singular, say) ends as one line, not a traceback."""

"""The one base class for mistakes a user makes and can fix, so the command line can tell
them from bugs."""

from __future__ import annotations


class UserError(ValueError):
    """A setting, a file or a dataset the user named that cannot be used.

    Its message names the thing and what is wrong with it, so ``memegen`` prints that one
    line and exits with status 2 instead of a traceback; any other exception that escapes
    a command is a bug and keeps its traceback. A ``ValueError``, so callers that refuse
    bad values in general still catch it.
    """

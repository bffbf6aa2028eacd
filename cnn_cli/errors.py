"""The one exception type users see.

Anything the user can fix (a bad config, a missing file, a wrong option) is raised
as a `UserError`; the CLI prints its message as one line on stderr and exits with
status 2. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: one line, names the file/field and the fix."""

    exit_code = 2

"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a flag, a YAML file, a data file or a checkpoint.

    The message names the problem and the fix in one line. Raise it *before* touching anything on
    disk, so a rejected command never changes existing files.
    """

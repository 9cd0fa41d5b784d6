"""The exception the CLI turns into a one-line message and exit code 2 (UserError), its helpers, and the one
stop exception (exit 130)."""


class UserError(Exception):
    """Bad input from the user: a flag, a YAML file, a data file or a checkpoint.

    The message names the problem and the fix in one line. Raise it *before* touching anything on
    disk, so a rejected command never changes existing files.
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), cut at a word
    boundary near `limit` characters: for one-line messages that quote a library's error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut + " …"


class StopRequested(KeyboardInterrupt):
    """The one stop exception: a run was asked to stop (Ctrl-C, SIGTERM, SLURM's requeue signal) and its last
    checkpoint is whole, so running the same command again resumes it. Trainers raise it at a stop check;
    `Job` raises it for a run that returned early or never started. A KeyboardInterrupt, so `except
    Exception` on the way up lets it through and the CLI prints one line and exits 130."""

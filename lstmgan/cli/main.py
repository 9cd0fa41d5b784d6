"""The `lstmgan` command line: argv in, exit code out. The commands live beside this file, grouped as the
help groups them (experiments.py, gan_tools.py, results.py); their flags in options.py; the flow of a
training command in lstmgan.pipeline.

Exit codes: 0 ok; 1 a run failed or an internal error (one line + a file with the traceback); 2 bad input
(UserError, bad flags: one line, nothing written); 3 a disk or permission problem; 130 interrupted; 141 the
reader of stdout went away (`lstmgan collect … | head -1`), quietly, as git and coreutils end by SIGPIPE.
A closed stdout (`>&-`) is reopened on /dev/null, as git does: the output is dropped and the command runs.

Only typer, rich, the standard library and light lstmgan modules are imported here: torch, submitit, wandb
and the experiments are imported inside the commands, so `lstmgan --help` answers at once.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import stat
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated


def reopen_closed_streams() -> None:
    """A standard stream the caller closed (`lstmgan configs >&-`) is reopened on /dev/null, as git does,
    before anything makes a console over it: output is dropped instead of a traceback, and no file lstmgan
    opens later can take fd 1 and receive what is printed."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))


reopen_closed_streams()

import typer  # noqa: E402
import typer.core  # noqa: E402


def skip_unset_flags(process_value):  # type: ignore[no-untyped-def]
    """typer 0.29 converts the unset (None) value of the flags it adds itself (--help, --install-completion,
    --show-completion) through a pydantic TypeAdapter, so `lstmgan sweep --help` spent 0.15 s importing pydantic
    for nothing (benchmarks/cli_help.py). An unset flag has nothing to convert: its callback sees None as before."""
    def process(self, ctx, value):  # type: ignore[no-untyped-def]
        if value is None and not self.required and self.type_descriptor.annotation is bool:
            return self.callback(ctx, self, None) if self.callback else None
        return process_value(self, ctx, value)
    return process


typer.core._TyperParameter.process_value = skip_unset_flags(typer.core._TyperParameter.process_value)

import lstmgan  # noqa: E402
from lstmgan.choices import MAX_RUNS, SWEEP_AXES, allow_runs  # noqa: E402
from lstmgan.cli import experiments, gan_tools, results  # noqa: E402
from lstmgan.cli.display import say, warn  # noqa: E402
from lstmgan.cli.options import choice_error  # noqa: E402
from lstmgan.errors import UserError, first_line  # noqa: E402

app = typer.Typer(add_completion=True, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Palindromes (LSTM vs vanilla RNN) and an MNIST GAN, locally or on SLURM, tracked in W&B.")
for commands in (experiments.app, gan_tools.app, results.app):  # in this order in --help, each in its panel
    app.add_typer(commands)


def show_version(on: bool) -> None:
    if on:
        say(f"lstmgan {lstmgan.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an unexpected error (also: "
                                        "LSTMGAN_DEBUG=1).")] = False,
) -> None:
    """Palindromes (LSTM vs vanilla RNN) and an MNIST GAN, locally or on SLURM, tracked in W&B."""


# --- entry point: argv in, exit code out -----------------------------------------------------------------------

# Options that take several values: `--lengths 5 10 15 20` and `--lengths 5,10` both work (Typer alone
# only accepts the flag repeated), so argv is rewritten to the repeated form before parsing.
MULTI_VALUE = set(SWEEP_AXES.values())  # --lengths, --models, --seeds


def is_flag(arg: str) -> bool:
    """`-h`, `--quiet`: not a value; `-1` (a negative seed, refused later with its rule) is one."""
    return arg.startswith("-") and not arg[1:2].isdigit()


def expand_multi_value(argv: Sequence[str]) -> list[str]:
    """`--lengths 5 10 15` / `--lengths 5,10` / `--lengths=5,10` → `--lengths 5 --lengths 10 …`."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=")
        if flag in MULTI_VALUE:
            values = [inline] if eq else []
            i += 1
            while not eq and i < len(argv) and not is_flag(argv[i]):
                values.append(argv[i])
                i += 1
            pieces = [p for v in values for p in v.split(",") if p != ""]
            if not pieces:
                out.append(flag)  # let typer report the missing value
            for piece in pieces:
                out += [flag, piece]
            continue
        out.append(arg)
        i += 1
    return out


def usage_message(e: typer.TyperException) -> str:
    """One line for a usage error; a choice that is not one names the choices."""
    if message := choice_error(e):
        return message
    ctx = getattr(e, "ctx", None)
    where = f" (see `lstmgan {ctx.info_name} --help`)" if ctx and ctx.parent else " (see `lstmgan --help`)"
    text = first_line(e.format_message()).removesuffix(".").replace(": Value error, ", ": ")
    return text + where


def last_value(args: Sequence[str], flag: str) -> str | None:
    """The value of the last use of `flag` in args (`--flag value` or `--flag=value`), if any."""
    found = None
    for i, arg in enumerate(args):
        name, eq, inline = arg.partition("=")
        if name == flag and (eq or i + 1 < len(args)):
            found = inline if eq else args[i + 1]
    return found


# errno → (the problem, the fix) for OSErrors that reach main: the environment, not the input, is wrong.
OS_PROBLEMS = {
    errno.ENOSPC: ("no space left on the device", "free space, or choose another --out"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota, or choose another --out"),
    errno.EROFS: ("read-only file system", "choose another --out"),
    errno.EACCES: ("permission denied", "fix its permissions, or choose another --out"),
    errno.EPERM: ("operation not permitted", "fix its permissions, or choose another --out"),
    errno.ENOENT: ("no such file or folder", "check the path, or choose another --out"),
    errno.ENOTDIR: ("a part of the path is not a folder", "choose another --out"),
    errno.EISDIR: ("is a folder, not a file", "choose another path"),
    errno.EIO: ("input/output error", "check the disk, then rerun the same command"),
}


def os_error(exc: BaseException) -> OSError | None:
    """The OSError behind exc (itself, or its cause: torch and others wrap ENOSPC), if it is one we explain.
    Others (a refused connection is an OSError too) are internal errors."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in OS_PROBLEMS:
            return current
        current = current.__cause__ or current.__context__
    return None


def os_message(e: OSError, args: Sequence[str]) -> str:
    """`<path>: <problem>; <fix>`. A failed write() names no file: then the --out it wrote under stands in."""
    problem, fix = OS_PROBLEMS[e.errno or 0]
    where = next((str(f) for f in (e.filename, e.filename2) if f is not None), "")
    if not where and (out := last_value(args, "--out")) is not None:
        where = f"writing under {out}"
    return f"{where}: {problem}; {fix}" if where else f"{problem} ({first_line(e)}); {fix}"


def crash_file(exc: BaseException, argv: Sequence[str]) -> Path | None:
    """Write the full traceback to $XDG_STATE_HOME/lstmgan/ (else ~/.local/state/lstmgan/); when that is not
    writable, to a private folder in the temp dir (`private_temp_folder`). The file is created exclusively,
    never through a link, and is the user's alone (0600): the traceback holds argv and paths."""
    text = (f"lstmgan {lstmgan.__version__}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
            f"argv: {' '.join(argv)}\n\n" + "".join(traceback.format_exception(exc)))
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "lstmgan"
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (state, None):
        try:
            if folder is None:
                folder = private_temp_folder()
            else:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            return folder / name
        except OSError:
            continue
    return None


def private_temp_folder() -> Path:
    """<temp dir>/lstmgan when it is this user's own real folder with mode 0700 (made so here if missing);
    else, as when another user or a planted link holds that name, a fresh folder of an unpredictable name
    (mkdtemp: 0700, created exclusively). A shared temp folder is never trusted by name alone."""
    folder = Path(tempfile.gettempdir()) / "lstmgan"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
        return folder
    return Path(tempfile.mkdtemp(prefix="lstmgan-"))


def stdout_gone() -> bool:
    """Whether stdout is a pipe (or socket) whose reader went away: a BrokenPipeError from elsewhere (a
    subprocess, W&B's socket) is an error of its own."""
    poll = select.poll()
    poll.register(1, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def pipe_closed() -> int:
    """The reader of stdout went away (`| head -1`): end quietly with 141 (128 + SIGPIPE), as git does.
    stdout goes to /dev/null so that Python's last flush at exit does not complain."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    return 141


INTERRUPTED = "interrupted; rerun the same command to resume from the last checkpoints"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. One line on stderr for every error, whatever raised it."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raw = list(sys.argv[1:] if argv is None else argv)
    end = raw.index("--") if "--" in raw else len(raw)
    debug = "--debug" in raw[:end] or os.environ.get("LSTMGAN_DEBUG", "") not in ("", "0")
    args = expand_multi_value([a for i, a in enumerate(raw) if not (a == "--debug" and i < end)])
    try:
        code = typer.main.get_command(app).main(args, prog_name="lstmgan", standalone_mode=False)
        sys.stdout.flush()  # a reader gone before the last line is seen here, not at exit
    except BrokenPipeError as e:
        if stdout_gone():
            return pipe_closed()
        return internal_error(e, raw, debug)
    except SystemExit as e:  # rich and click end a command whose output pipe broke with exit(1), without a word
        if e.code == 1 and isinstance(e.__context__, BrokenPipeError):
            return pipe_closed()
        raise
    except UserError as e:
        warn(f"error: {e}")
        return 2
    except typer.TyperException as e:  # usage errors: unknown option, value of the wrong type, …
        if type(e).__name__ != "NoArgsIsHelpError":  # no arguments: the help was printed (typer checks the name too)
            warn(f"error: {usage_message(e)}")
        return 2
    except (typer.Abort, KeyboardInterrupt):
        warn(INTERRUPTED)
        return 130
    except Exception as e:  # the last line of defence: one line, never a traceback by accident
        if debug:
            traceback.print_exception(e)
        if isinstance(e, OSError) and e.errno == errno.ENAMETOOLONG:  # a name the user chose: bad input
            from lstmgan.fs import too_long  # here: fs loads yaml, which --help does not need

            warn(f"error: {too_long(e, Path(os.fsdecode(e.filename or '')))}")
            return 2
        local = sys.modules.get("lstmgan.runner.local")  # loaded if runs trained side by side; never imported here
        if local is not None and isinstance(e, local.RunDied):  # a run's failure, named: not an internal error
            warn(f"error: {e}")
            return 1
        cause = os_error(e)
        if cause is not None:
            warn(f"error: {os_message(cause, args)}")
            return 3
        return internal_error(e, raw, debug)
    finally:
        allow_runs(MAX_RUNS)  # --max-runs holds for its command only (main runs many times in one test process)
    if code == 130:  # typer turns Ctrl-C into Exit(130), which comes back as the code
        warn(INTERRUPTED)
    return code if isinstance(code, int) else 0  # typer.Exit(n) raised in a command comes back as n


def internal_error(e: BaseException, raw: Sequence[str], debug: bool) -> int:
    if not debug:
        path = crash_file(e, raw)
        where = f"full traceback in {path}" if path else "rerun with --debug for the traceback"
        warn(f"internal error: {type(e).__name__}: {first_line(e)}; {where}")
    return 1


def entrypoint() -> None:
    sys.exit(main())

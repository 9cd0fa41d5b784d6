"""The file rules of a shared, possibly hostile file system, each in one place.

- Writes are atomic (temp file, fsync, rename) and never follow a link: the folder is opened with O_NOFOLLOW,
  the temp file gets an unpredictable name and is created exclusively in that open folder, and an interrupted
  write (an error, Ctrl-C, SIGTERM) removes its temp file.
- Reads take only regular files of bounded size (`read_regular`): a FIFO, a device, a socket, a link or an
  oversized file is named in one line, never waited on or read into unbounded memory.
- A name too long for the file system is bad input (`too_long`), like any other name the user chose.
- YAML is parsed with a bound on what its aliases expand to: bounded_yaml.py.
"""

from __future__ import annotations

import errno
import io
import json
import os
import secrets
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from lstmgan.errors import UserError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
# The most a reader takes of each kind of file: far above any file lstmgan writes, far below what would hurt.
# A log has no limit: only its tail is read (read_tail).
LIMITS = {"lock": 64 * KiB, "id": 64 * KiB, "config": 4 * MiB, "result": 64 * MiB, "metrics": 1 * GiB,
          "checkpoint": 16 * GiB, "data": 1 * GiB, "image": 256 * MiB, "log": 1 << 62}
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def with_path(e: OSError, path: Path) -> OSError:
    """The same OSError, naming `path` when it names no file (a write's ENOSPC/EDQUOT names none) or only a
    name relative to a folder fd (our temp file), so the CLI's one line says which file could not be written."""
    if e.filename is not None and os.path.isabs(os.fsdecode(e.filename)):
        return e
    named = type(e)(e.errno, e.strerror or str(e), str(path))
    named.__cause__ = e
    return named


def too_long(e: OSError, path: Path) -> OSError | UserError:
    """ENAMETOOLONG as bad input (exit 2): the user chose the name; any other OSError as it is, named."""
    if e.errno == errno.ENAMETOOLONG:
        return UserError(f"{path} is a name too long for the file system; choose a shorter --name or --out")
    return with_path(e, path)


# --- folders and links -----------------------------------------------------------------------------


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "of an unknown kind"


def check_real_folder(path: Path) -> None:
    """Refuse (UserError) an output folder that is a symbolic link or not a folder; a missing one is fine.
    Writing through a link would change files outside the output folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise too_long(e, path) from None
    if stat.S_ISLNK(mode):
        raise UserError(f"{path} is a symbolic link; lstmgan never writes through links in an output folder "
                        f"(--force included): replace it with a real folder or choose another --out")
    if not stat.S_ISDIR(mode):
        raise UserError(f"{path} exists and is not a folder ({_kind(mode)}); choose another --out or --name")


def check_real_folders(root: Path, path: Path) -> None:
    """check_real_folder for every folder below `root` down to `path` (a sweep folder, then a run folder): a
    link anywhere in lstmgan's own part of the path would send every write elsewhere. `root` (--out) may be a
    link: the user chose it."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts, root = (path.name,), path.parent
    for depth in range(1, len(parts) + 1):
        check_real_folder(root.joinpath(*parts[:depth]))


def make_folder(path: Path) -> None:
    """mkdir -p whose last component must end up a real folder (not a link to one); too long is bad input."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file (or a dangling link) in the way
        pass
    except OSError as e:
        raise too_long(e, path) from None
    check_real_folder(path)


@contextmanager
def open_folder(path: Path) -> Iterator[int]:
    """An fd of the folder `path` (created if missing) for a block, opened without following a link at its
    last component: the checks hold for the folder the fd names, whatever is renamed meanwhile."""
    make_folder(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            check_real_folder(path)  # raises the one-line refusal
        raise too_long(e, path) from None
    try:
        yield fd
    finally:
        os.close(fd)


# --- writes ----------------------------------------------------------------------------------------


def is_temp(path: Path) -> bool:
    """A temp file of our atomic writes (`.<name>.<random>.tmp`)."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.name.count(".") >= 3


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While a write runs in the main thread: a SIGTERM (or SIGHUP) whose default would kill the process at once
    raises KeyboardInterrupt instead, so the write's cleanup removes its temp file before the process ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (atomic on POSIX). Nothing
    follows a link: the folder is opened with O_NOFOLLOW, the temp file (an unpredictable name) is created
    with O_EXCL inside it, and the rename replaces a link at `path` rather than writing where it points. On
    any failure (a full disk, Ctrl-C, SIGTERM) the temp file is removed and `path` keeps its old content."""
    path = Path(path)
    with open_folder(path.parent) as dir_fd, _signals_raise():
        _write_in(dir_fd, path, data)


def write_bytes_once(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists (racing writers pin one value: the first wins), by the
    same rules as write_bytes_atomic: a whole temp file, then link() (which never replaces nor follows).
    Returns whether this call created it."""
    path = Path(path)
    with open_folder(path.parent) as dir_fd, _signals_raise():
        return _write_in(dir_fd, path, data, once=True)


def _write_in(dir_fd: int, path: Path, data: bytes | memoryview, *, once: bool = False) -> bool:
    for _ in range(100):
        tmp = f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:  # 0o666 less the umask, as a plain open() gives (results stay readable on a shared cluster folder)
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | NOFOLLOW, 0o666, dir_fd=dir_fd)
            break
        except FileExistsError:  # someone planted this name (a link, say): draw another
            continue
        except OSError as e:
            raise too_long(e, path) from None
    else:
        raise UserError(f"could not create a temp file beside {path} (every name drawn was taken); rerun")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not once:
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            return True
        try:
            os.link(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp, dir_fd=dir_fd)
        return True
    except BaseException as e:
        with suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(e, OSError):
            raise with_path(e, path) from None
        raise


def append_bytes(path: Path, data: bytes) -> None:
    """Append to `path` (created if missing) without following a link, and only to a regular file: a row
    appended to metrics.jsonl never lands in a planted link's target or blocks on a FIFO."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | NOFOLLOW, 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # a link; a FIFO without a reader
            with open_regular(path, "metrics"):  # raises the one-line NotRegular naming what it is
                pass
        raise too_long(e, path) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(f"{path} is {_kind(mode)}, not a regular file; remove or replace it")
        os.set_blocking(fd, True)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as e:
        raise with_path(e, path) from None
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch_atomic(obj: Any, path: Path) -> None:
    """torch.save into memory, then one atomic write: a full disk then surfaces as an OSError naming `path`
    (torch would wrap it in a RuntimeError), and the previous file stays whole."""
    import torch  # here, not at the top: the CLI imports this module and `--help` must not load torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getbuffer())


# --- reads -----------------------------------------------------------------------------------------


class NotRegular(UserError):
    """A file lstmgan reads is a FIFO, a device, a socket, a link, a folder or too large: one line, exit 2."""


@contextmanager
def open_regular(path: Path, kind: str, *, follow: bool = False) -> Iterator[BinaryIO]:
    """The file at `path` opened for reading only if it is a regular file (not a link, unless `follow`:
    for files the user names, like --config or a data folder's IDX files) of at most LIMITS[kind] bytes.
    O_NONBLOCK: opening a FIFO does not wait for a writer. FileNotFoundError as usual."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | (os.O_CLOEXEC if follow else NOFOLLOW))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotRegular(f"{path} is a symbolic link; lstmgan reads only regular files from run and data "
                             f"folders: replace it with the file itself") from None
        if e.errno == errno.ENAMETOOLONG:
            raise too_long(e, path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{path} is {_kind(st.st_mode)}, not a regular file; remove or replace it")
        if st.st_size > LIMITS[kind]:
            raise NotRegular(f"{path} is {st.st_size / MiB:.0f} MiB, more than a {kind} file can be "
                             f"({LIMITS[kind] / MiB:.0f} MiB); remove or replace it")
        os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield f


def read_regular(path: Path, kind: str, *, follow: bool = False) -> bytes:
    """The bytes of a regular file of at most LIMITS[kind] bytes (see open_regular); a file that grows past
    the limit while it is read is refused too."""
    with open_regular(path, kind, follow=follow) as f:
        data = f.read(LIMITS[kind] + 1)
    if len(data) > LIMITS[kind]:
        raise NotRegular(f"{path} grew past {LIMITS[kind] / MiB:.0f} MiB while read; remove or replace it")
    return data


def read_text(path: Path, kind: str, *, follow: bool = False) -> str:
    """read_regular, decoded as UTF-8 (UnicodeDecodeError for other bytes)."""
    return read_regular(path, kind, follow=follow).decode()


def read_tail(path: Path, kind: str, size: int) -> bytes:
    """The last `size` bytes of a regular file (see open_regular): a task log of any length costs `size`."""
    with open_regular(path, kind) as f:
        end = os.fstat(f.fileno()).st_size
        f.seek(max(0, end - size))
        return f.read(size)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in a small file lstmgan wrote; None when it is missing, torn, not an object or no regular
    file (a FIFO, a link, too large: never waited on). For files whose damage only means "not there"."""
    try:
        data = json.loads(read_text(path, "result"))
    except (OSError, ValueError, NotRegular):
        return None
    return data if isinstance(data, dict) else None


def read_jsonl(path: Path, damaged: list[int] | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; a torn last line (killed mid-write), a line that is not an object
    and undecodable bytes are skipped, so readers never crash on a damaged file. With `damaged`, the numbers
    (from 1) of the skipped lines other than a torn last one are appended: readers that report on a run
    name it as damaged. Only a file that is no regular file (or too large) is refused, in one line
    (NotRegular)."""
    try:
        text = read_regular(path, "metrics").decode("utf-8", errors="replace")
    except NotRegular:
        raise
    except OSError:  # missing, or unreadable: no rows
        return []
    rows = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif damaged is not None and line.strip() and not (number == len(lines) and not text.endswith("\n")):
            damaged.append(number)  # a torn last line (no newline after it) is an interrupted write, not damage
    return rows


def check_writable(folder: Path) -> None:
    """Fail early, with the fix, when runs cannot be written under `folder`."""
    probe_dir = folder
    try:
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
    except OSError as e:
        raise too_long(e, folder) from None
    if not probe_dir.is_dir():
        raise UserError(f"output path {folder} is under a file ({probe_dir}); choose another --out")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise UserError(f"output folder {probe_dir} is not writable; choose another --out or fix its permissions")

"""Writing a file that holds personal data or staff names: mode 0600 whatever the umask, no silent overwrite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import AlreadyExists, InvalidInput
from .i18n import N_

PRIVATE_FILE_MODE = 0o600


def write_private(path: Path, data: bytes, *, replace: bool = False) -> Path:
    """Write `data` to `path`, readable and writable by its owner only (0600, whatever the umask).

    Without `replace`, an existing file, directory or symlink (even a dangling one) at `path` is
    refused with AlreadyExists and left untouched. With `replace`, the data goes to a new file
    beside it that is renamed over `path`: a reader never sees half a file, and a symlink at
    `path` is replaced, never followed. Other OS errors become one sentence naming the file.
    """
    path = Path(path)
    try:
        if replace:
            return _replace(path, data)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE_MODE)
        except FileExistsError:
            raise AlreadyExists(N_("{path} already exists; nothing was written"), path=path) from None
        try:
            _write_fd(fd, data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path
    except OSError as exc:
        raise InvalidInput(N_("cannot write {path}: {strerror}"), path=path, strerror=exc.strerror or exc) from exc


def _replace(path: Path, data: bytes) -> Path:
    if path.is_dir() and not path.is_symlink():
        raise AlreadyExists(N_("{path} is a directory; nothing was written"), path=path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        _write_fd(fd, data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _write_fd(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)  # the umask may have taken bits away; set exactly 0600
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())

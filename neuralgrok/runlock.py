"""One writer per run folder: an advisory file lock that the operating system releases when its holder dies."""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = ".lock"


class FolderLocked(ConfigError):
    """Another live process holds the lock; the message names the folder and the holder."""

    def __init__(self, message: str, holder: str = "holder unknown"):
        super().__init__(message)
        self.holder = holder


class FolderLock:
    """An exclusive ``flock`` on ``folder/name``, recording the holder's host and process id in the file.

    ``flock`` locks belong to the open file, so they vanish when the holder exits or is
    killed (SIGKILL included): a dead run never leaves its folder locked. The file itself
    stays (removing it would let two processes lock two different files of one name).
    """

    def __init__(self, folder: str | Path, name: str = LOCK_NAME):
        self.folder, self.path = Path(folder), Path(folder) / name
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        """Takes the lock or raises :class:`FolderLocked` at once; creates the folder if it does not exist."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise FolderLocked(f"{self.folder} is being written by another process ({holder}); "
                               f"wait for it to end or stop it", holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_of(folder: str | Path, name: str = LOCK_NAME) -> str | None:
    """The live process locking ``folder`` ("host H, pid P"), or None when nobody does (or there is no lock file)."""
    if not (Path(folder) / name).exists():
        return None
    try:
        with FolderLock(folder, name):
            return None
    except FolderLocked as e:
        return e.holder


def _read_holder(fd: int, patience: float = 1.0) -> str:
    """The lock holder's record, described. A holder writes it just after taking the lock, so a reader that comes
    in between finds the file empty, or still naming the previous (dead) holder: it reads again for ``patience``
    seconds until the record names a live process."""
    deadline = time.monotonic() + patience
    while True:
        holder = _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
        if _alive(holder) or time.monotonic() > deadline:
            return holder
        time.sleep(0.01)


def _alive(holder: str) -> bool:
    """Whether a described holder is a live process (one on another host is taken as live: it cannot be checked)."""
    if holder == "holder unknown":
        return False
    host, pid = holder.removeprefix("host ").rsplit(", pid ", 1)
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _describe(holder: str) -> str:
    try:
        h = json.loads(holder)
        return f"host {h['host']}, pid {h['pid']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"

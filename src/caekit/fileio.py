"""Files: atomic writes (a kill at any moment leaves either the old file or the new one, never half of one) with the
mode the user's umask gives, and where caekit keeps its cache."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path


def cache_root() -> Path:
    """caekit's cache folder: ``$CAEKIT_CACHE``, else ``~/.cache/caekit``."""
    return Path(os.environ.get("CAEKIT_CACHE", Path.home() / ".cache" / "caekit"))


def physical_memory() -> int:
    """Bytes of RAM (a large default where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


@functools.cache
def _file_mode() -> int:
    """0o666 less the umask: what ``open()`` would give a new file (``mkstemp`` gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def publish(tmp: str | Path, path: Path) -> None:
    """Give a finished temporary file the umask's mode, make it durable, and rename it over ``path``."""
    os.chmod(tmp, _file_mode())
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())

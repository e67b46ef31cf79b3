"""Persistence of the last verified list, so a restart survives a VZD outage.

The raw JWS is stored (not the parsed index) and re-verified at load time: the file on disk is not
trusted more than the network.
"""

from __future__ import annotations

import os
import tempfile

FILENAME = "federation-list.jws"


def state_path(state_dir: str) -> str:
    return os.path.join(state_dir, FILENAME)


def save_atomic(path: str, data: bytes) -> None:
    """Write via a temp file + fsync + rename, so readers see the old or the new list, never half."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".federation-list.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_file(path: str, max_bytes: int = 64 * 1024 * 1024) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        return None
    if len(data) > max_bytes:
        raise OSError(f"{path}: larger than {max_bytes} bytes")
    return data


def file_signature(path: str) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns): changes whenever the file is replaced or rewritten."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)

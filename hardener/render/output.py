"""Write rendered files all-or-nothing: into a temporary directory next to --out, then into place.

Nothing under --out changes until every file has been rendered and written to the temporary
directory; then each file is moved into place with rename(2), which replaces it atomically. Files
under --out that hardener does not render (a certificate the admin put there) are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hardener.errors import InputError


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_tree(out_dir: Path, files: dict[str, bytes], mode: int = 0o644) -> list[Path]:
    """Write `files` (relative path -> bytes) under out_dir; returns the paths written, sorted."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a directory", field="--out", file=str(out_dir))
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as err:
        raise InputError(f"cannot create a directory next to it: {err.strerror}", field="--out",
                         file=str(out_dir)) from None
    try:
        for rel in sorted(files):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(files[rel])
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(target, mode)
        if not out_dir.exists():
            os.chmod(staging, 0o755)
            os.rename(staging, out_dir)
            _fsync_dir(parent)
            return [out_dir / rel for rel in sorted(files)]
        for rel in sorted(files):
            dest = out_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, dest)
        for directory in sorted({(out_dir / rel).parent for rel in files}):
            _fsync_dir(directory)
        return [out_dir / rel for rel in sorted(files)]
    except OSError as err:
        raise InputError(f"cannot write: {err.strerror}", field="--out",
                         file=str(err.filename or out_dir)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)

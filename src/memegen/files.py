"""Writing a file whole or not at all, for files that people and later steps trust: the
meme ``memegen make`` writes, the manifest a training step writes or edits in place.

The data goes to a new file beside the target, which is then renamed over it: a full
disk, a file-size limit or Ctrl-C leave either the old file or the whole new one, never
half of one. (The meme store has its own writer: its temporary names are the sweeper's
to recognise, and its files carry their creation time.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path``, whole or not at all. A link is followed, so it keeps
    pointing at the new file; a device or a pipe is written to as it is. The file keeps
    the mode the old one had, or gets the one a plain write would give a new one."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        with target.open("wb") as device:
            device.write(data)
        return
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                       dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(partial, mode)
        os.replace(partial, target)
    except BaseException:
        os.unlink(partial)
        raise


def _umask() -> int:
    """The process's umask (only readable by setting it). Setting it is process-wide, so
    this is for commands, not for a server's threads."""
    mask = os.umask(0)
    os.umask(mask)
    return mask

"""The data folder is private: only the service's own user may read it.

Patient data lives in the database (and its WAL), the print spool and the PDFs. At
start, :func:`make_private` sets the process's umask to 0o077, so every file the
service writes from then on is 0600 and every folder 0700, and takes the group's and
others' permissions off whatever the folder already holds (a database, WAL or PDFs
written by an older version, or restored from a backup).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

#: Files 0600, folders 0700.
PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700


def make_private(data_dir: Path, *, create: bool = True) -> int:
    """Set the umask and make ``data_dir`` and everything in it private to this user.

    Parameters
    ----------
    data_dir : Path
        The service's data folder.
    create : bool
        Create the folder (mode 0700) when it does not exist; otherwise only the umask
        is set then.

    Returns
    -------
    int
        How many files and folders had their group/other permissions taken away.

    Notes
    -----
    Symbolic links are neither followed nor changed. A file that cannot be changed
    (another owner) is logged by name, which is never patient data (spool folders
    have random names, PDFs job ids and reduced identifiers), and left as it is.
    """
    os.umask(PRIVATE_UMASK)
    if not data_dir.exists():
        if not create:
            return 0
        data_dir.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    fixed = _restrict(data_dir)
    for root, folders, files in os.walk(data_dir, followlinks=False):
        for name in (*folders, *files):
            fixed += _restrict(Path(root) / name)
    if fixed:
        log.info(
            "data folder %s: group and other permissions removed from %d entries", data_dir, fixed
        )
    return fixed


def _restrict(path: Path) -> int:
    """Take group and other permissions off ``path``; return 1 when it changed."""
    try:
        info = path.lstat()
    except OSError:
        return 0
    if stat.S_ISLNK(info.st_mode):
        return 0
    mode = stat.S_IMODE(info.st_mode)
    wanted = FOLDER_MODE if stat.S_ISDIR(info.st_mode) else mode & 0o700
    if mode == wanted:
        return 0
    try:
        # Not a link (checked above); Linux has no lchmod to say so again.
        os.chmod(path, wanted)
    except OSError as exc:
        log.warning("cannot make %s private: %s", path, exc.strerror)
        return 0
    return 1

# SPDX-License-Identifier: Apache-2.0
"""File helpers every room shares: atomic writes and the deterministic ``.npz`` writer.

Torch-free (numpy only, imported when an ``.npz`` is written), so writing a JSON
report or a Verilog file never loads PyTorch.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from .errors import OutputError, clip
from .paths import check_output_file

__all__ = ["atomic_write", "atomic_write_text", "save_npz",
           "NPZ_DATE_TIME", "NPZ_CREATE_SYSTEM", "NPZ_EXTERNAL_ATTR"]


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file in the same folder, then rename it into
    place, so a failure never leaves a partial file behind. The file gets the usual
    mode (``0o666`` less the umask), not ``mkstemp``'s ``0o600``."""
    path = check_output_file(path)      # never replace a link, a device or a FIFO
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"output file '{clip(str(path))}' cannot be written: "
                          f"{clip(e.strerror or e)}") from None
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`); returns the path."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return Path(path)


#: Zip member metadata :func:`save_npz` pins (what ``np.savez`` writes on Linux under
#: Python 3.11). ``np.savez`` takes it from ``zipfile``, where it varies: the creating
#: system is 0 on Windows and 3 elsewhere, the file mode is 0 up to Python 3.12 and
#: 0o600 from 3.13, and some writers stamp members with the current time.
NPZ_DATE_TIME = (1980, 1, 1, 0, 0, 0)
NPZ_CREATE_SYSTEM = 3
NPZ_EXTERNAL_ATTR = 0


def save_npz(path: str | Path, **arrays) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` (the layout ``np.savez`` writes),
    atomically and byte-reproducibly on any host: members ``<name>.npy`` in argument
    order, the zip metadata above, no pickles (object arrays are refused).
    ``np.load(path, allow_pickle=False)`` reads it."""
    import numpy as np

    data = {k: np.asarray(v) for k, v in arrays.items()}

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, a in data.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_DATE_TIME)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = NPZ_CREATE_SYSTEM
                info.external_attr = NPZ_EXTERNAL_ATTR
                with zf.open(info, "w", force_zip64=True) as f:     # as np.savez does
                    np.lib.format.write_array(f, a, allow_pickle=False)
    atomic_write(path, write)

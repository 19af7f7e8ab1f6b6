# SPDX-License-Identifier: Apache-2.0
"""A strict ``.npz`` reader: exactly the arrays a format names, each checked on its
``.npy`` header before a byte of its data is read.

``np.load`` reads whatever a zip holds: an extra 8 GB array, a header declaring
10^12 elements, a member with an unsupported zip flag, all end in an allocation
or a traceback. This reader walks the zip's directory first (names, compression
method, flags, declared sizes), then each member's ``.npy`` header (version,
dtype, shape), and compares both with an :class:`ArraySpec` per allowed name
before it reads the member's data, so no array larger than the format allows is
ever read and every problem is one :class:`~insitugen.errors.CodesError` naming
the file and what is wrong with it. Numpy only (no torch).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from insitugen.errors import CodesError, clip
from insitugen.paths import describe_file

#: Zip compression methods read: what ``np.savez`` / ``np.savez_compressed`` write.
COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
#: General-purpose flag bits refused: encryption (0x1, 0x40) and "compressed patched
#: data" (0x20), which ``zipfile`` cannot read.
REFUSED_FLAGS = {0x1: "encrypted", 0x20: "compressed patched data", 0x40: "strong encryption"}
#: Largest ``.npy`` header read (numpy's own default limit).
MAX_HEADER_BYTES = 10_000
NPY_MAGIC = b"\x93NUMPY"
#: Bytes a zip spends on one member's entries (local header, directory entry, zip64
#: extras, a name of up to 100 bytes), generously.
ZIP_ENTRY_BYTES = 512
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ArraySpec:
    """What one array of a format may be: its exact ``shape`` and the dtype kinds
    (``numpy.dtype.kind`` letters) allowed; ``required`` arrays must be present."""

    shape: tuple[int, ...]
    kinds: str
    required: bool = True
    what: str = ""      # how the format describes it, for messages ("unsigned codes")
    max_itemsize: int = 8


def _kind_of_content(head: bytes) -> str:
    if head.startswith(NPY_MAGIC):
        return "a plain .npy array, not an .npz archive"
    if not head:
        return "empty"
    try:
        head.decode("utf-8")
        if all(c >= 32 or c in (9, 10, 13) for c in head):
            return "a text file, not an .npz (zip) archive"
    except UnicodeDecodeError:
        pass
    return "not an .npz (zip) archive"


def read_npz(path: str | Path, specs: Mapping[str, ArraySpec], label: str = "file",
             fix: str = "", refused: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Read the arrays of ``path`` named in ``specs`` (member ``<name>.npy`` each),
    refusing any other member, a wrong dtype kind or shape (from the header, before
    the data), a missing required array, and every kind of corruption.

    ``label`` names the file in messages (``"code file"``), ``fix`` is appended to
    the message of a file that is not an archive at all; ``refused`` maps array names
    that have their own reason to be refused (a level that is off) to that reason."""
    path = Path(path)
    src = f"{label} '{clip(str(path))}'"
    problem = describe_file(path)
    if problem:
        raise CodesError(f"{src} {problem}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CodesError(f"{src} cannot be read: {clip(e.strerror or str(e))}") from None
    if not head.startswith(ZIP_MAGICS):
        raise CodesError(f"{src} is {_kind_of_content(head)}{fix}")
    # every allowed member at its largest, plus its zip entry and .npy header: more than
    # that is data the format has no room for (and a zip directory of a million entries)
    most = sum(_nbytes_max(spec) + MAX_HEADER_BYTES + 2 * ZIP_ENTRY_BYTES
               for spec in specs.values()) + ZIP_ENTRY_BYTES
    size = path.stat().st_size
    if size > most:
        raise CodesError(f"{src} is {size:,} bytes; a file of this format for this config "
                         f"holds at most {most:,}: it carries data that is not part of it")
    try:
        with zipfile.ZipFile(path) as zf:
            members = _check_directory(zf, specs, src, refused or {})
            out = {name: _read_member(zf, info, specs[name], name, src)
                   for name, info in members.items()}
    except CodesError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            ValueError, NotImplementedError, RuntimeError) as e:
        raise CodesError(f"{src} is a corrupted .npz archive: {clip(str(e) or type(e).__name__)}"
                         ) from None
    for name, spec in specs.items():
        if spec.required and name not in out:
            raise CodesError(f"{src}: array '{name}' (shape {spec.shape}) is missing: the "
                             f"format needs {', '.join(n for n, s in specs.items() if s.required)}")
    return out


def _check_directory(zf: zipfile.ZipFile, specs: Mapping[str, ArraySpec], src: str,
                     refused: Mapping[str, str]) -> dict[str, zipfile.ZipInfo]:
    """Every member named, stored or deflated, unflagged, at most as large as its spec."""
    members: dict[str, zipfile.ZipInfo] = {}
    known = ", ".join(specs)
    for info in zf.infolist():
        raw = info.filename
        name = raw[:-4] if raw.endswith(".npy") else None
        if name in refused:
            raise CodesError(f"{src}: array '{name}' {refused[name]}")
        if name not in specs:
            shown = f"array '{clip(name)}'" if name is not None else f"entry '{clip(raw)}'"
            raise CodesError(f"{src} holds {shown}, which is not part of the format "
                             f"(arrays {known}): remove it")
        if name in members:
            raise CodesError(f"{src} holds array '{name}' twice: a writer appended to it")
        if info.compress_type not in COMPRESSIONS:
            raise CodesError(f"{src}: array '{name}' uses zip compression method "
                             f"{info.compress_type}; only stored and deflate (np.savez, "
                             f"np.savez_compressed) are read")
        for bit, meaning in REFUSED_FLAGS.items():
            if info.flag_bits & bit:
                raise CodesError(f"{src}: array '{name}' is stored as {meaning} (zip flag "
                                 f"{bit:#x}), which is not read: save with np.savez")
        limit = MAX_HEADER_BYTES + _nbytes_max(specs[name])
        if info.file_size > limit:
            raise CodesError(f"{src}: array '{name}' declares {info.file_size} bytes, more "
                             f"than its shape {specs[name].shape} can take ({limit} at most)")
        members[name] = info
    return members


def _nbytes_max(spec: ArraySpec) -> int:
    n = 1
    for d in spec.shape:
        n *= d
    return n * spec.max_itemsize


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, spec: ArraySpec, name: str,
                 src: str) -> np.ndarray:
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            raise CodesError(f"{src}: member '{name}.npy' is not a .npy array") from None
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                f, max_header_size=MAX_HEADER_BYTES)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                f, max_header_size=MAX_HEADER_BYTES)
        else:
            raise CodesError(f"{src}: array '{name}' is in .npy format version "
                             f"{version[0]}.{version[1]}; versions 1.0 and 2.0 are read")
        what = f" ({spec.what})" if spec.what else ""
        if dtype.hasobject:
            raise CodesError(f"{src}: array '{name}' holds pickled Python objects, which are "
                             f"refused unread (they could run code); it must be "
                             f"{_kinds_text(spec.kinds)}{what}")
        if dtype.kind not in spec.kinds or dtype.itemsize > spec.max_itemsize \
                or dtype.fields is not None or dtype.subdtype is not None:
            raise CodesError(f"{src}: array '{name}' has dtype {clip(str(dtype))}; it must be "
                             f"{_kinds_text(spec.kinds)}{what}")
        if tuple(shape) != tuple(spec.shape):
            raise CodesError(f"{src}: array '{name}' has shape {clip(str(tuple(shape)))}, the "
                             f"config needs {tuple(spec.shape)}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise CodesError(f"{src}: array '{name}' is truncated: {len(data)} of {nbytes} "
                             f"data bytes")
        if f.read(1):
            raise CodesError(f"{src}: array '{name}' has data after its {nbytes} bytes")
    a = np.frombuffer(data, dtype=dtype, count=count)
    return a.reshape(shape, order="F" if fortran else "C")


def _kinds_text(kinds: str) -> str:
    names = {"i": "integer", "u": "unsigned integer", "f": "floating point", "U": "text"}
    return " or ".join(dict.fromkeys(names.get(k, k) for k in kinds))

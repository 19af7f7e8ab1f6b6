# SPDX-License-Identifier: Apache-2.0
"""Hostile input: random invalid configs, hostile config files, corrupted code files,
checkpoints, tool paths, unwritable or non-regular outputs and oversized configs are
refused with exactly one ``insitugen: error:`` line of the expected shape, exit 2, and
nothing (partial or temporary) left behind; tools die with the run that started them.

The generators are seeded; the counts tried are printed (run with -s to see them).
Every check asserts the refusal's own message, so none can pass if the refusal were
missing or replaced by a different failure.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import insitugen
from flows.cli import main
from insitugen.config import GeneratorConfig

SMALL = GeneratorConfig(out_channels=4, in_channels=3, base_in=2, base_out=2, lanes=4)

# (field, bad values) -- each out of range, of the wrong type, or not a choice
BAD_VALUES = {
    "out_channels": [0, -3, 4097, 1.5, "8", True, [4]],
    "in_channels": [0, 99999, "x", 2.0],
    "kernel": [0, 12, -1, "3"],
    "base_in": [-1, 65, "2", 0.5],
    "base_out": [-5, 4097, "44"],
    "qb": [0, 17, -2, "3"],
    "qu": [0, 33, 6.0],
    "qv": [0, 100, "three"],
    "engine_bits": [0, 17, "3"],
    "lanes": [0, 1025, -64, 3.3],
    "out_bits": [1, 33, -8, "8"],
    "shift": [-1, 63, "10"],
    "rounding": ["round", "", 3, "HALF_EVEN"],
    "order": ["nchw", "", 1],
    "recombination": ["both", 0],
    "layer": ["lstm", 2],
    "block": ["fpga", 7],
    "mystery_field": [1, "x"],
}
COMBINATIONS = [
    {"layer": "linear", "kernel": 3},
    {"out_bits": 0, "shift": 4},
    {"qb": 16, "qu": 16, "qv": 16, "base_in": 64, "base_out": 4096, "out_channels": 4096},
]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _write_config(path, overrides: dict) -> None:
    data = {k: v for k, v in SMALL.to_dict().items()}
    data.update(overrides)
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in data.items()))


def _assert_refused(capsys, argv, out_dir, what: str, expect: str | None = None) -> str:
    """``argv`` exits 2 with exactly one ``insitugen: error:`` line (matching the regex
    ``expect`` when given, at most 500 characters: a long temporary path plus the list of
    known config fields) and leaves ``out_dir`` as it was."""
    before = set(p.name for p in out_dir.iterdir())
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, f"{what}: exit code {rc}, stderr {err[:300]!r}"
    assert err.startswith("insitugen: error: ") and "\n" not in err, f"{what}: {err[:300]!r}"
    assert "Traceback" not in err and len(err) <= 500, f"{what}: {err[:500]!r}"
    if expect is not None:
        assert re.search(expect, err), f"{what}: {err!r} does not match {expect!r}"
    after = set(p.name for p in out_dir.iterdir())
    assert after == before, f"{what}: left files behind: {sorted(after - before)}"
    return err


def test_random_invalid_configs_refused(tmp_path, capsys):
    rng = random.Random(20261129)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg_path = tmp_path / "bad.toml"
    tried = 0
    for n in range(520):
        if n % 13 == 0:
            overrides = dict(rng.choice(COMBINATIONS))
        else:
            overrides = {}
            for field in rng.sample(sorted(BAD_VALUES), rng.randint(1, 3)):
                overrides[field] = rng.choice(BAD_VALUES[field])
        _write_config(cfg_path, overrides)
        _assert_refused(capsys, ["golden", str(cfg_path), "--out", str(out_dir / "W.npz")],
                        out_dir, f"config #{n} {overrides}")
        tried += 1
    # also a few files that are not TOML at all
    for n, text in enumerate(["out_channels = \n", "[[[", "\x00\x01binary", "kernel = 3 3\n"]):
        cfg_path.write_text(text)
        _assert_refused(capsys, ["golden", str(cfg_path), "--out", str(out_dir / "W.npz")],
                        out_dir, f"non-TOML #{n}")
        tried += 1
    print(f"\nrefused {tried} random invalid configs (seed 20261129), each with one clear "
          f"line, exit 2, nothing left behind")
    assert tried >= 500


def _hostile_config_file(rng: random.Random) -> tuple[str, bytes, str]:
    """One config file of a hostile family: (family, file bytes, the message it must get)."""
    family = rng.choice(["deep_array", "deep_table", "long_integer", "whitespace", "comments",
                         "long_string", "long_list", "long_key", "not_utf8", "oversized"])
    depth = rng.randrange(2000, 20000)
    if family == "deep_array":
        return family, f"kernel = {'[' * depth}{']' * depth}\n".encode(), "nests arrays or tables"
    if family == "deep_table":
        text = "kernel = " + "{a = " * depth + "1" + "}" * depth + "\n"
        return family, text.encode(), "nests arrays or tables too deeply"
    if family == "long_integer":
        digits = rng.randrange(4400, 100_001)
        return (family, f"lanes = {'7' * digits}\n".encode(),
                "holds an integer literal of more than 4300 digits")
    if family in ("whitespace", "comments"):
        # whitespace alone (even a bare CR, which TOML forbids), or TOML comments
        pieces = (["\r", "\n", " ", "\t", "\r\n", "\f"] if family == "whitespace"
                  else ["\n", " ", "\t", "\r\n", "# no field\n"])
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        return (family, text.encode(), "names no field .*: to use the built-in defaults "
                                       "write block = \"generator\" in it")
    if family == "long_string":
        n = rng.randrange(1000, 1_000_000)
        return (family, f'rounding = "{"x" * n}"\n'.encode(),
                rf"'rounding' = 'x+\.\.\.x+' \({n + 2} characters\) is not allowed")
    if family == "long_list":
        n = rng.randrange(1000, 50_000)
        return (family, f"qb = [{', '.join(['3'] * n)}]\n".encode(),
                r"'qb' must be an integer in \[1, 16\], not "
                r"\(3, 3, .*\.\.\..*3\) \(\d+ characters\)")
    if family == "long_key":
        n = rng.randrange(1000, 200_000)
        return (family, f"{'k' * n} = 1\n".encode(),
                rf"unknown config field 'k+\.\.\.k+ \({n} characters\)' for block")
    if family == "not_utf8":
        return family, b"kernel = 3\n\xff\xfe = 1\n", r"is not UTF-8 text \(byte 11\)"
    size = (1 << 20) + rng.randrange(1, 1000)
    return family, b"#" * size, rf"is {size} bytes; a config file is a few lines of TOML"


def test_hostile_config_files_refused(tmp_path, capsys):
    """Families that once ended in a traceback (RecursionError, int digit limit), were
    taken silently as the defaults (whitespace only), or echoed a megabyte value."""
    rng = random.Random(1602)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg_path = tmp_path / "hostile.toml"
    seen: dict[str, int] = {}
    for n in range(120):
        family, data, expect = _hostile_config_file(rng)
        cfg_path.write_bytes(data)
        _assert_refused(capsys, ["golden", str(cfg_path), "--out", str(out_dir / "W.npz")],
                        out_dir, f"config #{n} ({family})",
                        expect=rf"^insitugen: error: (config file '.*hostile\.toml' )?.*{expect}")
        seen[family] = seen.get(family, 0) + 1
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path, why in ((tmp_path, "is a directory, not a file"),
                      (fifo, r"is a named pipe \(FIFO\), not a regular file")):
        _assert_refused(capsys, ["golden", str(path), "--out", str(out_dir / "W.npz")],
                        out_dir, str(path),
                        expect=rf"^insitugen: error: config file '.*' {why}: pass the path")
    print(f"\nrefused {sum(seen.values())} hostile config files (seed 1602): {seen}")
    assert len(seen) == 10


def test_config_with_a_byte_order_mark_loads(tmp_path):
    from insitugen.config import load_config
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + SMALL.to_toml().encode())
    assert load_config(p) == SMALL


def _npy_bytes(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _npy_header_only(shape, descr="<i8") -> bytes:
    """A ``.npy`` header declaring ``shape`` followed by a few data bytes: what an
    attacker needs to make ``np.load`` allocate the whole declared array."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue() + b"\0" * 64


def _write_zip(path, members, compression=zipfile.ZIP_STORED) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # zipfile warns on a duplicate name
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)


def _set_zip_flag(path, flag: int) -> None:
    """Set a general-purpose flag bit on the first member (local header and central
    directory), as a writer of patched or encrypted members would."""
    b = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        b[i + at] |= flag
    path.write_bytes(bytes(b))


#: Per kind of corrupted code file, the message it must be refused with.
CODE_FILE_ERRORS = {
    "shape": r"array '[BUV]' has shape \(.*\), the config needs",
    "flattened": r"array '[BUV]' has shape \(\d+,\), the config needs",
    "range_hi": r"array '[BUV]' holds code \d+ outside \[0, \d+\]",
    "range_neg": r"array '[BUV]' holds code -\d+ outside",
    "missing": r"array '[BUV]' \(shape \([\d, ]+\)\) is missing: the format needs B, U, V$",
    "dtype": r"array '[BUV]' has dtype float32; it must be integer",
    "extra_level": r"array 'U' is present but its level is off",
    "truncated": r"is a corrupted \.npz archive|is not an \.npz",
    "garbage": r"is (a text file, )?not an \.npz \(zip\) archive|corrupted \.npz",
    "empty": r"is empty: save the codes with np\.savez",
    "pickled": r"array '[BUV]' holds pickled Python objects",
    "extra_array": r"holds array '\w+', which is not part of the format \(arrays B, U, V",
    "extra_entry": r"holds entry '[\w.]+', which is not part of the format",
    "big_extra": r"is [\d,]+ bytes; a file of this format for this config holds at most "
                 r"[\d,]+: it carries data that is not part of it",
    "huge_header": r"array '[BUV]' has shape \((1000000000|1000000, 1000000)[,)]",
    "deflate_corrupt": r"corrupted \.npz archive|is truncated|has (dtype|shape)|data after"
                       r"|not a \.npy array",
    "crc": r"is a corrupted \.npz archive: Bad CRC-32",
    "zip_flag": r"is stored as (compressed patched data|encrypted|strong encryption) "
                r"\(zip flag 0x\d+\)",
    "zip_method": r"uses zip compression method (12|14); only stored and deflate",
    "declared_size": r"array '[BUV]' declares \d+ bytes, more than its shape",
    "plain_npy": r"is a plain \.npy array, not an \.npz archive: save the codes with np\.savez",
    "text": r"is a text file, not an \.npz \(zip\) archive",
    "duplicate": r"holds array '[BUV]' twice",
    "meta_mismatch": r"was written for (axes|bits|shapes) [BUV] = .*, this config has",
    "meta_not_json": r"its 'meta' entry is not JSON",
}


def _corrupt_codes(rng: random.Random, path, good: dict) -> str:
    """Write one corrupted code file; return its kind (a key of CODE_FILE_ERRORS)."""
    kind = rng.choice(sorted(CODE_FILE_ERRORS))
    arrays = {k: v.copy() for k, v in good.items()}
    name = rng.choice(sorted(arrays))
    if kind == "shape":
        a = arrays[name]
        axis = rng.randrange(a.ndim)
        arrays[name] = np.concatenate([a, a.take([0], axis=axis)], axis=axis)
    elif kind == "flattened":
        arrays[name] = arrays[name].reshape(-1)
    elif kind == "range_hi":
        bits = SMALL.code_bits[name]
        flat = arrays[name].reshape(-1)
        flat[rng.randrange(flat.size)] = (1 << bits) + rng.randrange(100)
    elif kind == "range_neg":
        flat = arrays[name].reshape(-1)
        flat[rng.randrange(flat.size)] = -1 - rng.randrange(5)
    elif kind == "missing":
        del arrays[name]
    elif kind == "dtype":
        arrays[name] = arrays[name].astype(np.float32) + 0.5
    elif kind == "extra_array":
        extra = rng.choice(["X", "W", "extra", "B_copy", "su"])
        members = [(f"{k}.npy", _npy_bytes(v)) for k, v in arrays.items()]
        # an extra array declaring 8 GB (or a small real one): refused by name, unread
        data = (_npy_header_only((1 << 30,)) if rng.random() < 0.5
                else _npy_bytes(np.zeros(rng.randrange(1, 50))))
        members.insert(rng.randrange(len(members) + 1), (f"{extra}.npy", data))
        _write_zip(path, members)
        return kind
    elif kind == "big_extra":
        # a real extra array larger than everything the format allows: refused on the
        # file's size, before the zip directory is read
        arrays[rng.choice(["X", "W", "pad"])] = np.zeros(rng.randrange(30_000, 200_000))
    elif kind == "extra_entry":
        members = [(f"{k}.npy", _npy_bytes(v)) for k, v in arrays.items()]
        members.append((rng.choice(["readme.txt", "B.npy.bak", "notes"]), b"hello"))
        _write_zip(path, members)
        return kind
    elif kind == "huge_header":
        shape = rng.choice([(10**9,), (10**6, 10**6)])
        _write_zip(path, [(f"{k}.npy", _npy_header_only(shape) if k == name else _npy_bytes(v))
                          for k, v in arrays.items()])
        return kind
    elif kind in ("deflate_corrupt", "crc"):
        buf = io.BytesIO()
        (np.savez_compressed if kind == "deflate_corrupt" else np.savez)(buf, **arrays)
        b = bytearray(buf.getvalue())
        with zipfile.ZipFile(io.BytesIO(bytes(b))) as zf:
            info = zf.getinfo(f"{name}.npy")
        at = info.header_offset            # the data starts after the local header
        start = (at + 30 + int.from_bytes(b[at + 26:at + 28], "little")
                 + int.from_bytes(b[at + 28:at + 30], "little"))
        if kind == "crc":
            # stored: one byte of the data itself (past the 128-byte .npy header)
            b[start + 128 + rng.randrange(info.file_size - 128)] ^= 1 << rng.randrange(8)
        else:
            for _ in range(rng.randrange(1, 6)):
                b[start + rng.randrange(info.compress_size)] ^= rng.randrange(1, 256)
        path.write_bytes(bytes(b))
        return kind
    elif kind == "zip_flag":
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        _set_zip_flag(path, rng.choice([0x1, 0x20, 0x40]))
        return kind
    elif kind == "zip_method":
        _write_zip(path, [(f"{k}.npy", _npy_bytes(v)) for k, v in arrays.items()],
                   compression=rng.choice([zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
        return kind
    elif kind == "declared_size":
        # a member whose directory entry declares gigabytes (a decompression bomb)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        b = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as zf:
            first = zf.infolist()[0]
        i = b.find(b"PK\x01\x02")
        if first.file_size >= 0xFFFFFFFF or b[i + 24:i + 28] == b"\xff\xff\xff\xff":
            # zip64 (np.savez forces it): the size is in the extra field
            j = b.find(b"\x01\x00", i + 46)
            b[j + 4:j + 12] = (1 << 33).to_bytes(8, "little")
        else:
            b[i + 24:i + 28] = (1 << 31).to_bytes(4, "little")
        path.write_bytes(bytes(b))
        return kind
    elif kind == "plain_npy":
        path.write_bytes(_npy_bytes(arrays[name]))
        return kind
    elif kind == "text":
        path.write_text(rng.choice(["B = [1, 2, 3]\n", "out_channels = 4\n", "codes\r\n",
                                    " " * rng.randrange(1, 40)]))
        return kind
    elif kind == "duplicate":
        members = [(f"{k}.npy", _npy_bytes(v)) for k, v in arrays.items()]
        members.append((f"{name}.npy", _npy_bytes(arrays[name])))
        _write_zip(path, members)
        return kind
    elif kind in ("meta_mismatch", "meta_not_json"):
        from golden.codes import code_metadata
        meta = code_metadata(SMALL)
        if kind == "meta_not_json":
            text = rng.choice(["{not json", "", "[1, 2"])
        else:
            field = rng.choice(["axes", "bits", "shapes"])
            if field == "axes":
                meta["axes"][name] = meta["axes"][name][::-1]
            elif field == "bits":
                meta["bits"][name] += rng.randrange(1, 4)
            else:
                meta["shapes"][name] = meta["shapes"][name][::-1] + [1]
            text = json.dumps(meta)
        arrays["meta"] = np.array(text)
    elif kind == "extra_level":
        pass  # handled below with a config whose level is off
    if kind in ("truncated", "garbage", "empty", "pickled"):
        if kind == "truncated":
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            data = buf.getvalue()
            path.write_bytes(data[: rng.randrange(1, len(data) - 1)])
        elif kind == "garbage":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind == "empty":
            path.write_bytes(b"")
        else:
            obj = np.empty(1, dtype=object)
            obj[0] = {"payload": "os.system"}
            arrays[name] = obj
            with open(path, "wb") as f:
                np.savez(f, **arrays)
        return kind
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return kind


def test_random_corrupted_code_files_refused(tmp_path, capsys):
    from golden.codes import random_codes
    rng = random.Random(1129)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    off_path = tmp_path / "intra_off.toml"
    off_path.write_text(SMALL.replace(base_in=0).to_toml())
    good = {k: v.numpy() for k, v in random_codes(SMALL, 5).items()}
    codes_path = tmp_path / "codes.npz"
    kinds: dict[str, int] = {}
    for n in range(520):
        kind = _corrupt_codes(rng, codes_path, good)
        config = off_path if kind == "extra_level" else cfg_path
        _assert_refused(capsys, ["golden", str(config), "--codes", str(codes_path), "--out",
                                 str(out_dir / "W.npz")], out_dir, f"code file #{n} ({kind})",
                        expect=r"^insitugen: error: code file '.*codes\.npz'.*"
                               + f"(?:{CODE_FILE_ERRORS[kind]})")
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"\nrefused {sum(kinds.values())} corrupted code files (seed 1129): {kinds}")
    assert sum(kinds.values()) >= 500 and set(kinds) == set(CODE_FILE_ERRORS)


def test_code_file_metadata_round_trips_and_catches_a_transposed_u(tmp_path, capsys):
    """With q = Bi a transposed U has U's shape; the ``meta`` entry names the axes, so a
    file that stored U as [o][i][c] is refused, while a file written by save_codes for
    the config (stored or deflated, with or without meta) loads unchanged."""
    import torch

    from golden.codes import code_metadata, load_codes, random_codes, save_codes
    cfg = SMALL.replace(in_channels=2)
    assert cfg.code_shapes["U"][1] == cfg.code_shapes["U"][2]
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(cfg.to_toml())
    codes = random_codes(cfg, 7)
    good = tmp_path / "good.npz"
    save_codes(good, codes, config=cfg, sB=0.5)
    with np.load(good, allow_pickle=False) as z:
        assert json.loads(str(z["meta"])) == code_metadata(cfg)
    plain = {k: v.numpy() for k, v in codes.items()}
    np.savez_compressed(tmp_path / "deflated.npz", **plain)
    for p in (good, tmp_path / "deflated.npz"):
        loaded = load_codes(cfg, p)
        assert all(torch.equal(loaded[k], codes[k]) for k in codes)
    meta = code_metadata(cfg)
    meta["axes"]["U"] = ["o", "i", "c"]
    plain["U"] = plain["U"].transpose(0, 2, 1).copy()
    bad = tmp_path / "transposed.npz"
    np.savez(bad, **plain, meta=np.array(json.dumps(meta)))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _assert_refused(capsys, ["golden", str(cfg_path), "--codes", str(bad), "--out",
                             str(out_dir / "W.npz")], out_dir, "transposed U",
                    expect=r"code file '.*transposed\.npz' was written for axes U = "
                           r"\['o', 'i', 'c'\], this config has \['o', 'c', 'i'\]")
    # a code file for a 3-bit B used with a 4-bit B: every code is in range for both
    _assert_refused(capsys, ["golden", str(_config_file(tmp_path, cfg.replace(qb=4))),
                             "--codes", str(good), "--out", str(out_dir / "W.npz")], out_dir,
                    "other qb", expect=r"was written for bits B = 3, this config has 4")


def _config_file(tmp_path, cfg) -> str:
    p = tmp_path / f"cfg-{cfg.digest()}.toml"
    p.write_text(cfg.to_toml())
    return str(p)


def test_code_file_that_is_not_a_file_is_named(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg = _config_file(tmp_path, SMALL)
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    for path, why in ((tmp_path, "is a directory, not a file"),
                      (fifo, r"is a named pipe \(FIFO\), not a regular file"),
                      (tmp_path / "nope.npz", "does not exist")):
        _assert_refused(capsys, ["golden", cfg, "--codes", str(path), "--out",
                                 str(out_dir / "W.npz")], out_dir, str(path),
                        expect=rf"^insitugen: error: code file '.*' {why}$")


def test_pickled_npz_is_refused_not_executed(tmp_path, capsys):
    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    obj = np.empty(1, dtype=object)
    obj[0] = Boom()
    p = tmp_path / "evil.npz"
    with open(p, "wb") as f:
        np.savez(f, B=obj)
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    rc = main(["golden", str(cfg_path), "--codes", str(p), "--out", str(tmp_path / "W.npz")])
    err = capsys.readouterr().err
    assert rc != 0 and "pickled" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "W.npz").exists()


def test_valid_golden_writes_weights(tmp_path, capsys):
    cfg_path = tmp_path / "layer.toml"
    cfg_path.write_text(SMALL.to_toml())
    out = tmp_path / "W.npz"
    assert main(["golden", str(cfg_path), "--seed", "3", "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["W"].shape == (4, 3, 3, 3) and z["W"].dtype == np.int64


# ---- external tools: argument lists only ------------------------------------------------------

_PACKAGE_DIRS = ("insitugen", *insitugen.ROOMS)      # every room, the tool adapters included
_SPAWNERS = {("subprocess", n) for n in ("run", "Popen", "call", "check_call", "check_output",
                                          "getoutput", "getstatusoutput")}
_SHELLS = {("os", n) for n in ("system", "popen", "spawnl", "spawnlp", "execl", "execlp")}


def test_tools_are_started_with_argument_lists_never_a_shell():
    """Every process the package starts (Yosys, Verilator, make, Icarus, g++) gets an
    argument list: no ``shell=True``, no ``os.system`` / ``os.popen``, no string command
    built from config values. Checked on the syntax tree of every package module."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    calls = 0
    problems = []
    for folder in _PACKAGE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                base = node.func.value
                name = (base.id if isinstance(base, ast.Name) else None, node.func.attr)
                where = f"{path.relative_to(root)}:{node.lineno}"
                if name in _SHELLS or name[1] in ("getoutput", "getstatusoutput"):
                    problems.append(f"{where}: {name[0]}.{name[1]} runs a shell")
                if name not in _SPAWNERS:
                    continue
                calls += 1
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                                  and kw.value.value is False):
                        problems.append(f"{where}: shell= is not False")
                if node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr,
                                                           ast.BinOp)):
                    problems.append(f"{where}: the command is a string, not an argument list")
    print(f"\n{calls} process starts checked in {', '.join(_PACKAGE_DIRS)}")
    assert calls >= 3, "the scan found no subprocess call: is it looking at the package?"
    assert not problems, "\n".join(problems)


# ---- the parser is light ------------------------------------------------------------------

_HEAVY = ("torch", "amaranth", "matplotlib", "cocotb", "sklearn")

_HELP_PROBE = """
import contextlib, io, json, sys
from flows.cli import build_parser
from flows.commands import COMMANDS, command_name
parser = build_parser()
loaded = {}
for module in ("",) + COMMANDS:
    argv = [command_name(module), "--help"] if module else ["--help"]
    if module == "prove":
        continue          # its --method help lists verif.formal.METHODS (imports Amaranth)
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    assert "usage: insitugen" in out.getvalue(), argv
    loaded[" ".join(argv)] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(loaded))
"""


def test_help_of_every_command_loads_no_heavy_package():
    """``insitugen --help`` and ``insitugen CMD --help`` build every subparser but import no
    torch, Amaranth, matplotlib, cocotb or scikit-learn (fresh interpreter: this one has)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = f"HEAVY = {_HEAVY!r}\n" + _HELP_PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=root, check=True).stdout
    loaded = json.loads(out)
    from flows.commands import COMMANDS

    assert len(loaded) == len(COMMANDS)     # insitugen --help and every command but prove
    assert all(not mods for mods in loaded.values()), loaded


def test_lazy_choices_are_checked_from_their_source(capsys):
    from verif.formal import METHODS

    with pytest.raises(SystemExit) as e:
        main(["prove", "x.toml", "--method", "bogus"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err and all(repr(m) in err for m in METHODS)
# ---- tool file arguments and build folders --------------------------------------------------

def test_lint_reads_the_named_file_whatever_its_name(tmp_path, monkeypatch, capsys):
    """Verilator expands ``$VAR`` in file names and takes ``-x.v`` as an option: lint must
    look at the file we wrote, not at ``x/<home>.v`` (planted, broken) or at nothing."""
    from gen.verilog import lint_verilog
    from insitugen.errors import ToolError
    home = tmp_path / "planted"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "planted.v").write_text("module broken(; endmodule\n")
    cfg = _config_file(tmp_path, SMALL)
    for name in ("x$HOME.v", "-x.v", "+define+A.v", "a b.v"):
        assert main(["verilog", cfg, f"--output={name}", "--lint"]) == 0, name
        assert "Verilator lint clean" in capsys.readouterr().out
        with open(tmp_path / name, "a") as f:        # now break the file we wrote
            f.write("module broken(; endmodule\n")
        with pytest.raises(ToolError, match=rf"^Verilator lint of '{re.escape(name)}' failed:"
                                            rf"\n%Error: {re.escape(name)}:\d+:\d+: syntax"):
            lint_verilog(name)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".v") == sorted(
        ["x$HOME.v", "-x.v", "+define+A.v", "a b.v"])


@pytest.mark.parametrize("folder, shown", [("with space", "a space"), ("dollar$HOME", "'$'"),
                                            ("quote'd", "'''"), ("new\nline", "a newline"),
                                            ('dq"x', "'\"'"), ("colon:x", "':'")])
def test_build_folder_make_cannot_use_is_refused(tmp_path, monkeypatch, capsys, folder, shown):
    cfg = _config_file(tmp_path, SMALL)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    build = out_dir / folder
    fix = "pass --build-dir with a plain path"
    _assert_refused(capsys, ["sim", cfg, "--build-dir", str(build)], out_dir, folder,
                    expect=rf"^insitugen: error: build folder '.*' holds {re.escape(shown)}, "
                           rf"which GNU Make .* cannot handle in a path: {fix} \(letters")
    # the same through the cache root (a HOME with a space)
    monkeypatch.setenv("INSITUGEN_CACHE", str(build))
    _assert_refused(capsys, ["sim", cfg], out_dir, f"cache {folder}",
                    expect=rf"^insitugen: error: simulator cache folder '.*' holds "
                           rf"{re.escape(shown)}, .* cannot handle in a path: set "
                           rf"INSITUGEN_CACHE to a plain, writable folder or pass --build-dir")


# ---- outputs that cannot be written ----------------------------------------------------------

def _readonly_folder(tmp_path):
    """A folder that refuses new files: mode 0o555, or (as root, whom modes do not stop)
    the read-only ``/sys``."""
    import tempfile
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        fd, probe = tempfile.mkstemp(dir=ro)
    except OSError:
        return ro
    os.close(fd)
    os.unlink(probe)
    ro.chmod(0o755)
    return __import__("pathlib").Path("/sys")


#: (argv with RO for the read-only folder, the option named in the refusal)
_UNWRITABLE = [
    (["verilog", "{cfg}", "-o", "{ro}/x.v"], "--output file"),
    (["verilog", "{cfg}", "-o", "{ro}/new/x.v"], "--output file"),
    (["golden", "{cfg}", "--out", "{ro}/W.npz"], "--out file"),
    (["sim", "{cfg}", "--out", "{ro}/W.npz"], "--out file"),
    (["sim", "{cfg}", "--build-dir", "{ro}/build"], "--build-dir folder"),
    (["sim", "{cfg}", "--coverage", "{ro}/cov"], "--coverage folder"),
    (["synth", "{cfg}", "--json", "{ro}/r.json"], "--json file"),
    (["synth", "{cfg}", "--markdown", "{ro}/r.md"], "--markdown file"),
    (["memory", "resnet18", "--base-in", "2", "--base-out", "8", "--qb", "3", "--qu", "6",
      "--qv", "3", "--json", "{ro}/m.json"], "--json file"),
    (["prove", "{cfg}", "--json", "{ro}/p.json"], "--json file"),
    (["flow", "{cfg}", "--out-dir", "{ro}/flow"], "--out-dir folder"),
    (["export", "student.pt", "--out", "{ro}/layers"], "--out folder"),
    (["sweep", "space.toml", "--out", "{ro}/sweep"], "--out folder"),
    (["train-digits", "--out", "{ro}/digits"], "--out folder"),
    (["train-cifar", "--data", "{ro}", "--out", "{ro}/cifar"], "--out folder"),
]


def test_unwritable_outputs_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """Every command names the output it cannot write, exit 2, before any work: ``sim
    --out`` in a read-only folder is never a failed hardware check."""
    ro = _readonly_folder(tmp_path)
    cfg = _config_file(tmp_path, SMALL)
    monkeypatch.setenv("INSITUGEN_CACHE", str(tmp_path / "cache"))
    for argv, option in _UNWRITABLE:
        argv = [a.format(cfg=cfg, ro=ro) for a in argv]
        err = _assert_refused(capsys, argv, ro, " ".join(argv),
                              expect=rf"^insitugen: error: {option} '{re.escape(str(ro))}/.*"
                                     r"is not writable \(.*\): choose a writable folder$")
        assert "checks" not in err
    # nothing was started: no simulator build, no cache folder
    assert not (tmp_path / "cache").exists()


def test_cache_or_temp_folder_unwritable_is_named(tmp_path, monkeypatch, capsys):
    ro = _readonly_folder(tmp_path)
    cfg = _config_file(tmp_path, SMALL)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.setenv("INSITUGEN_CACHE", str(ro / "cache"))
    _assert_refused(capsys, ["sim", cfg], out_dir, "cache",
                    expect=r"^insitugen: error: simulator cache folder '.*' .*is not writable "
                           r".*\(set INSITUGEN_CACHE to a plain, writable folder or pass "
                           r"--build-dir\)$")


def test_non_regular_outputs_are_refused_never_replaced(tmp_path, capsys):
    """``--out`` on a link, a FIFO, a device or a folder: refused, the thing untouched
    (``os.replace`` would have turned a device node into a regular file)."""
    import stat
    cfg = _config_file(tmp_path, SMALL)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = tmp_path / "target.npz"
    target.write_bytes(b"keep")
    (out_dir / "link.npz").symlink_to(target)
    (out_dir / "dangling.npz").symlink_to(tmp_path / "nowhere.npz")
    os.mkfifo(out_dir / "fifo.npz")
    things = {"link.npz": "is a symbolic link", "dangling.npz": "is a symbolic link",
              "fifo.npz": r"is a named pipe \(FIFO\), not a regular file"}
    try:
        os.mknod(out_dir / "null.npz", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        things["null.npz"] = "is a device, not a regular file"
    except PermissionError:         # not root: a FIFO and the links still cover the rule
        pass
    modes = {n: os.lstat(out_dir / n).st_mode for n in things}
    for name, why in things.items():
        for argv in (["golden", cfg, "--out", str(out_dir / name)],
                     ["verilog", cfg, "-o", str(out_dir / name)]):
            _assert_refused(capsys, argv, out_dir, " ".join(argv),
                            expect=rf"^insitugen: error: (--out|--output) file '.*{name}' "
                                   rf"{why}: insitugen writes a new file and renames it into "
                                   rf"place, so it never replaces one; name a regular file$")
        assert os.lstat(out_dir / name).st_mode == modes[name], name
    assert target.read_bytes() == b"keep"
    # the library writer refuses too, whoever calls it
    from insitugen.errors import OutputError
    from insitugen.files import atomic_write_text
    with pytest.raises(OutputError, match="is a symbolic link"):
        atomic_write_text(out_dir / "link.npz", "x")
    assert target.read_bytes() == b"keep"


def test_every_output_option_is_checked_up_front():
    """Each command's options that name an output are in flows.preflight's tables, so a
    new option cannot skip the up-front check."""
    from flows.cli import build_parser
    from flows.preflight import OUTPUT_FILES, OUTPUT_FOLDERS
    output_like = {"out", "output", "json", "markdown", "out_dir", "build_dir", "coverage",
                   "workdir", "csv", "plot"}
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    missing = []
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.dest in output_like and action.dest not in (
                    OUTPUT_FILES.get(name, ()) + OUTPUT_FOLDERS.get(name, ())):
                missing.append(f"{name} --{action.dest}")
    assert not missing, missing


# ---- checkpoints and tools that are not what they claim ---------------------------------------

def _checkpoint_variants(tmp_path):
    """(name, checkpoint path, the message export must refuse it with)."""
    import fractions

    import torch

    from golden.mlgify import build_mlg_model, save_checkpoint
    mlg = {"base_in": 2, "base_out": 4, "qb": 3, "qu": 6, "qv": 3}
    model, _ = build_mlg_model("smallcnn", 10, 1, mlg)
    good = tmp_path / "good.pt"
    save_checkpoint(good, model, "smallcnn", 10, 1, mlg)
    payload = torch.load(good, weights_only=True)
    out = []

    def variant(name, change, expect):
        p = copy_payload = {**payload, "model": dict(payload["model"]),
                            "state_dict": {k: v.clone() for k, v in
                                           payload["state_dict"].items()}}
        change(copy_payload)
        path = tmp_path / f"{name}.pt"
        torch.save(p, path)
        out.append((name, path, expect))

    first_w = next(k for k, v in payload["state_dict"].items() if v.ndim >= 2)
    for nc in (10**9, 10**6, 0, -1, "10", True, 2.5):
        variant(f"classes-{nc}", lambda p, nc=nc: p["model"].update(num_classes=nc),
                rf"model field 'num_classes' = {re.escape(repr(nc))} is out of range: "
                rf"allowed \[1, 100000\]")
    variant("channels", lambda p: p["model"].update(in_channels=10**7),
            r"model field 'in_channels' = 10000000 is out of range")
    for bad, word in ((float("inf"), "inf"), (float("-inf"), "inf"), (float("nan"), "NaN")):
        variant(f"weights-{word}{bad}",
                lambda p, bad=bad: p["state_dict"][first_w].view(-1).__setitem__(3, bad),
                rf"tensor '{re.escape(first_w)}' holds {word}: the training diverged")
    variant("weights-zero", lambda p: p["state_dict"][first_w].zero_(),
            rf"weight tensor '{re.escape(first_w)}' \[[\d, ]+\] is all zero")
    variant("pickled", lambda p: p["extra"].update(obj=fractions.Fraction(1, 3)),
            r"it holds pickled Python objects \(it needs the Python global "
            r"fractions\.Fraction\), which are never loaded$")
    return out


def test_hostile_checkpoints_refused(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, path, expect in _checkpoint_variants(tmp_path):
        err = _assert_refused(capsys, ["export", str(path), "--out", str(out_dir / "layers")],
                              out_dir, name,
                              expect=rf"^insitugen: error: checkpoint '.*{re.escape(path.name)}'"
                                     rf"(:| cannot be loaded safely .*:) .*{expect}")
        assert "weights_only=False" not in err and "\x1b" not in err, err


def test_yosys_that_is_not_yosys_is_named(tmp_path, capsys):
    cfg = _config_file(tmp_path, SMALL)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    liar = tmp_path / "liar"
    liar.write_text("#!/bin/sh\necho 'not a synthesizer'\n")
    liar.chmod(0o755)
    for exe, expect in (("/bin/true", r"printed no version \(exit 0, no output\): it is not "
                                      r"Yosys; pass the path of a yosys binary with --yosys"),
                        ("/bin/false", r"exited 1 and printed nothing: is it Yosys\? pass the "
                                       r"path of a yosys binary"),
                        (str(liar), r"printed 'not a synthesizer', not a Yosys version line")):
        _assert_refused(capsys, ["synth", cfg, "--yosys", exe, "--json",
                                 str(out_dir / "r.json")], out_dir, exe,
                        expect=rf"^insitugen: error: '{re.escape(exe)} -V' {expect}")


# ---- sizes: refused up front with the estimate, --force to override ----------------------------

LARGEST = GeneratorConfig(out_channels=4096, in_channels=4096, kernel=11, base_in=64,
                          base_out=4096, lanes=1024)


def _oversized_configs(rng: random.Random, n: int):
    """Valid configs whose code memory alone passes the 128 Mbit build limit (counted from
    the config's code shapes, not from the estimate under test)."""
    from gen.limits import LIMITS
    from insitugen.errors import ConfigError
    out = []
    while len(out) < n:
        try:
            cfg = GeneratorConfig(
                out_channels=rng.randrange(1024, 4097), in_channels=rng.randrange(1024, 4097),
                kernel=rng.choice([3, 5, 7, 11]), base_in=rng.choice([0, 8, 32, 64]),
                base_out=rng.choice([0, 256, 1024, 4096]), lanes=rng.choice([1, 64, 1024]),
                qb=rng.randrange(3, 9), qu=rng.randrange(3, 9), qv=rng.randrange(3, 9))
        except ConfigError:
            continue
        if cfg.code_memory_bits > LIMITS["memory_bits"]:
            out.append(cfg)
    return out


def test_oversized_configs_refused_with_the_estimate(tmp_path, capsys):
    """The largest valid config and random oversized ones: verilog / sim / synth / flow
    answer with one line carrying the estimate and the override, before elaborating."""
    rng = random.Random(4096)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    expect = (r"^insitugen: error: config is too large to build: .*[\d.]+ [kMGT]?bit of code "
              r"memory \(limit 128\.0 Mbit\); \d+ lanes x \d+ slice pairs, [\d,]+ memory words: "
              r"use fewer lanes, narrower codes or a smaller base_out / layer, or pass --force$")
    configs = [LARGEST] + _oversized_configs(rng, 24)
    commands = (["verilog", "-o", str(out_dir / "x.v")], ["sim"],
                ["synth", "--json", str(out_dir / "r.json")],
                ["flow", "--out-dir", str(out_dir / "flow")])
    for n, cfg in enumerate(configs):
        path = _config_file(tmp_path, cfg)
        for cmd in commands if n < 2 else commands[n % 4:n % 4 + 1]:
            _assert_refused(capsys, [cmd[0], path, *cmd[1:]], out_dir,
                            f"{cmd[0]} {cfg.to_dict()}", expect=expect)


def test_many_lanes_of_wide_codes_refused_and_force_lets_it_through(tmp_path, capsys):
    from gen.limits import check_build, estimate_build, forced
    from insitugen.errors import ConfigError
    # the W1-recomputing order: 6 x 6 U x B pairs and 6 x 12 V x W1 pairs in every lane
    cfg = GeneratorConfig(out_channels=64, in_channels=64, base_in=2, base_out=8, lanes=1024,
                          qb=16, qu=16, qv=16, product_order="w1", pipeline_stages=0)
    est = estimate_build(cfg)
    assert est.slice_pairs == 36 + 72 and est.memory_bits < 10**6
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _assert_refused(capsys, ["verilog", _config_file(tmp_path, cfg), "-o", str(out_dir / "x.v")],
                    out_dir, "1024 lanes x 16-bit codes",
                    expect=r"too large to build: ~[\d,]+ s to elaborate \(limit 300 s\); 1024 "
                           r"lanes x 108 slice pairs")
    with pytest.raises(ConfigError):
        check_build(cfg)
    with forced():
        check_build(cfg)            # --force: no refusal (nothing is built here)
    with pytest.raises(ConfigError):
        check_build(cfg)


def test_build_estimate_tracks_the_real_verilog():
    """The cost model is within a factor of two of the Verilog actually written, on a
    memory-heavy and a lane-heavy config (sizes, not times: deterministic)."""
    from gen.limits import estimate_build
    from gen.verilog import emit_verilog
    for cfg in (GeneratorConfig(out_channels=256, in_channels=8, base_in=2, base_out=64,
                                lanes=4),
                GeneratorConfig(out_channels=8, in_channels=8, base_in=2, base_out=4,
                                lanes=48, qb=8, qu=8, qv=8)):
        real = len(emit_verilog(cfg).encode())
        est = estimate_build(cfg).verilog_bytes
        assert real / 2 < est < real * 2, (cfg, real, est)


def test_golden_on_the_largest_layer_is_one_line(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    _assert_refused(capsys, ["golden", _config_file(tmp_path, LARGEST), "--out",
                             str(out_dir / "W.npz")], out_dir, "golden largest",
                    expect=r"^insitugen: error: config is too large for the golden model: about "
                           r"[\d.]+ TB of memory \(limit [\d.]+ [kMG]B; the weights alone are "
                           r"16\.2 GB as int64\): use a smaller layer or base_in, or pass --force$")


def test_second_flow_on_a_locked_folder_is_refused(tmp_path, capsys):
    """While one flow holds its --out-dir, another is refused at once and touches nothing
    (the folder never mixes two configs' files)."""
    from insitugen.paths import locked_folder
    cfg = _config_file(tmp_path, SMALL)
    out = tmp_path / "flow_out"
    out.mkdir()
    (out / "insitugen_generator.v").write_text("// the running flow's file\n")
    with locked_folder(out):
        _assert_refused(capsys, ["flow", cfg, "--out-dir", str(out), "--no-synth"], out,
                        "second flow",
                        expect=r"^insitugen: error: --out-dir folder '.*flow_out' is in use by "
                               r"another insitugen run: wait for that flow to finish or pass "
                               r"another --out-dir$")
    assert (out / "insitugen_generator.v").read_text() == "// the running flow's file\n"
    with locked_folder(out):        # released: it can be taken again
        pass


# ---- processes and interrupts ----------------------------------------------------------------

def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


def test_tool_group_is_killed_on_timeout(tmp_path):
    """A tool's own children (make's compilers, say) die with it on a timeout or Ctrl-C;
    ``subprocess.run`` alone would leave the background ``sleep`` running."""
    import subprocess
    import time

    from eda.process import run_tool
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        run_tool(["sh", "-c", f"sleep 300 & echo $! > '{pidfile}'; wait"], timeout=1.0)
    pid = int(pidfile.read_text())
    for _ in range(100):            # killed at once; reaping may take a moment
        if _gone(pid):
            break
        time.sleep(0.05)
    assert _gone(pid), f"grandchild {pid} survived"
    done = run_tool(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True,
                    text=True)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_tools_die_with_a_killed_insitugen(tmp_path):
    """``kill -9`` of the process running a tool (nothing of ours gets to clean up) still
    takes the tool and its own children down: the guard gets SIGTERM from the kernel and
    kills the tool's process group."""
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "pid"
    script = ("import sys; from eda.process import run_tool; "
              f"run_tool(['sh', '-c', \"sleep 300 & echo $! > '{pidfile}'; wait\"])")
    runner = subprocess.Popen([sys.executable, "-c", script],
                              env={**os.environ, "PYTHONPATH": str(
                                  __import__("pathlib").Path(__file__).resolve().parents[1])})
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    assert not _gone(pid)
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    for _ in range(100):
        if _gone(pid):
            break
        time.sleep(0.05)
    assert _gone(pid), f"the tool's child {pid} outlived insitugen"


def _processes_under(folder: Path) -> list[int]:
    """Pids of live processes whose working folder is ``folder`` (a simulator runs in its
    build folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if Path(os.readlink(entry / "cwd")) == folder and not _gone(int(entry.name)):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_simulator_dies_with_a_killed_insitugen(tmp_path):
    """``kill -9`` of ``insitugen sim`` while the simulator runs: the simulator (started by
    cocotb's runner in a guarded child, verif.sim_process) does not outlive it."""
    import signal
    import subprocess
    import sys
    import time

    cfg = GeneratorConfig(out_channels=64, in_channels=64, base_in=2, base_out=16, lanes=4)
    build = (tmp_path / "build").resolve()
    sim = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "sim", _config_file(tmp_path, cfg), "--seed", "1",
         "--build-dir", str(build), "--backpressure", "none"],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240          # a cold Verilator build comes first
    while time.monotonic() < deadline and not (build / "params.json").exists():
        assert sim.poll() is None, "insitugen sim ended before the simulation started"
        time.sleep(0.2)
    assert (build / "params.json").exists(), "the simulation never started"
    time.sleep(1.0)                             # the simulator is running now
    running = _processes_under(build)
    assert running, "no simulator process found in the build folder"
    sim.send_signal(signal.SIGKILL)
    sim.wait()
    for _ in range(100):
        if not _processes_under(build):
            break
        time.sleep(0.05)
    assert not _processes_under(build), "the simulator outlived insitugen"


def test_stale_temp_folders_of_dead_runs_are_removed(tmp_path):
    import subprocess

    from eda.process import remove_stale_temp_folders, stale_temp_folders
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"insitugen-synth-pid{dead.pid}-abc"
    live = tmp_path / f"insitugen-synth-pid{os.getpid()}-def"
    other = tmp_path / f"insitugen-prove-pid{dead.pid}-ghi"
    for d in (stale, live, other):
        (d / "sub").mkdir(parents=True)
    assert stale_temp_folders("synth", tmp_path) == [stale]
    assert remove_stale_temp_folders("synth", tmp_path) == 1
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_interrupt_swallowed_by_a_destructor_still_exits_130(tmp_path, monkeypatch, capsys):
    """A SIGINT whose KeyboardInterrupt is raised inside ``__del__`` is ignored by
    Python; the command line must still end with 'interrupted' and exit 130, not 0."""
    import gc
    import signal

    import flows.commands.golden as golden_cmd

    class Swallower:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)     # the handler raises inside __del__

    def run(args):
        Swallower()
        gc.collect()
        return 0
    monkeypatch.setattr(golden_cmd, "run", run)
    rc = main(["golden", _config_file(tmp_path, SMALL), "--out", str(tmp_path / "W.npz")])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip().endswith("insitugen: interrupted"), (rc, err)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_long_commands_stop_at_the_next_step_after_a_swallowed_interrupt():
    import gc
    import signal

    from flows.signals import interrupts, stop_if_interrupted

    class Swallower:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    with interrupts():
        stop_if_interrupted()               # nothing yet
        Swallower()
        gc.collect()                        # the KeyboardInterrupt dies inside __del__
        with pytest.raises(KeyboardInterrupt):
            stop_if_interrupted()
    with interrupts():                      # a new command starts clean
        stop_if_interrupted()


def test_sweep_space_errors_clip_huge_names_and_values(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    space = tmp_path / "space.toml"
    for text, expect in ((f"[grid]\n{'k' * 100_000} = [1]\n",
                          r"\[grid\] key 'k+\.\.\.k+ \(100000 characters\)' is not a generator"),
                         (f"[grid]\nqu = {'[' * 3000}{']' * 3000}\n", "nests arrays or tables"),
                         (f"[grid]\nqu = [{', '.join(['1'] * 30_000)}, 1]\n",
                          r"'qu' lists a value twice: \[1, 1, .*\(\d+ characters\)$")):
        space.write_text(text)
        _assert_refused(capsys, ["sweep", str(space), "--out", str(out_dir / "sw")], out_dir,
                        expect[:30], expect=rf"^insitugen: error: sweep space '.*space\.toml'"
                                            rf"(:| ).*{expect}")


def test_flow_refuses_a_link_among_its_outputs_before_any_work(tmp_path, capsys):
    cfg = _config_file(tmp_path, SMALL)
    out = tmp_path / "flow_out"
    out.mkdir()
    victim = tmp_path / "victim.md"
    victim.write_text("keep")
    (out / "synth.md").symlink_to(victim)
    _assert_refused(capsys, ["flow", cfg, "--out-dir", str(out)], out, "flow link",
                    expect=r"^insitugen: error: output file '.*synth\.md' is a symbolic link: "
                           r"insitugen writes a new file")
    assert victim.read_text() == "keep"


def test_other_inputs_that_are_not_files_are_named(tmp_path, capsys):
    """A folder or FIFO given as a checkpoint or a liberty: said so (never opened: a FIFO
    would block), not 'does not exist'."""
    cfg = _config_file(tmp_path, SMALL)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, why in ((tmp_path, "is a directory, not a file"),
                      (fifo, r"is a named pipe \(FIFO\), not a regular file")):
        _assert_refused(capsys, ["export", str(path), "--out", str(out_dir / "x")], out_dir,
                        f"checkpoint {path}", expect=rf"^insitugen: error: checkpoint '.*' {why}$")
        _assert_refused(capsys, ["synth", cfg, "--liberty", str(path)], out_dir,
                        f"liberty {path}", expect=rf"^insitugen: error: liberty file '.*' {why}: "
                                                  rf"pass the path of a \.lib file")


@pytest.mark.parametrize("command", ["verilog", "sim", "synth", "flow", "golden"])
def test_force_lifts_the_size_limits_of_each_command(tmp_path, monkeypatch, capsys, command):
    """``--force`` on the command line reaches the limit checks (the command itself is
    replaced: nothing that large is built here)."""
    import importlib

    from gen.limits import check_build, check_golden, check_simulation
    module = importlib.import_module(f"flows.commands.{command}")

    def run(args):
        check_simulation(LARGEST)
        check_build(LARGEST)
        check_golden(LARGEST)
        return 0
    monkeypatch.setattr(module, "run", run)
    cfg = _config_file(tmp_path, SMALL)
    out = {"verilog": ["-o", str(tmp_path / "x.v")], "golden": ["--out", str(tmp_path / "W.npz")],
           "flow": ["--out-dir", str(tmp_path / "f")]}.get(command, [])
    assert main([command, cfg, *out]) == 2
    assert "too large" in capsys.readouterr().err
    assert main([command, cfg, *out, "--force"]) == 0
    assert main([command, cfg, *out]) == 2          # the override ends with the command


def test_sim_out_that_fails_late_is_an_output_error_not_a_failed_check(tmp_path, monkeypatch,
                                                                      capsys):
    """Even past the up-front check (a folder that turns read-only mid-run), a weights file
    that cannot be written is reported as such once the RTL passed: never as 'RTL failed'."""
    import flows.cli
    ro = _readonly_folder(tmp_path)
    monkeypatch.setattr(flows.cli, "check_outputs", lambda command, args: None)
    monkeypatch.setenv("INSITUGEN_CACHE", str(tmp_path / "cache"))
    rc = main(["sim", _config_file(tmp_path, SMALL), "--seed", "3", "--out", str(ro / "W.npz")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2, err
    assert re.match(r"^insitugen: error: the RTL's weights passed every check, but output "
                    rf"file '{re.escape(str(ro))}/W\.npz': its folder '{re.escape(str(ro))}' is "
                    r"not writable \(.*\): choose a writable folder$", err), err
    assert not (ro / "W.npz").exists()
    # and a writable --out gets exactly the weights the golden model computes
    from golden.codes import random_codes
    from golden.generate import generate
    out = tmp_path / "W.npz"
    assert main(["sim", _config_file(tmp_path, SMALL), "--seed", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    with np.load(out, allow_pickle=False) as z:
        assert z["W"].shape == (4, 3, 3, 3)
        assert np.array_equal(z["W"], generate(SMALL, random_codes(SMALL, 3)).numpy())


def test_golden_codes_out_carries_metadata_that_the_loader_checks(tmp_path, capsys):
    """``insitugen golden --codes-out`` writes the codes with their metadata: the same
    config reads them back to the same weights; a config with the same shapes but 5-bit
    U codes (which 6-bit codes would pass as far as the shapes go) is refused by the
    metadata, in one line."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg = GeneratorConfig(out_channels=4, in_channels=3, kernel=3, base_in=3, base_out=2,
                          lanes=3, shift=4)
    path = _config_file(tmp_path, cfg)
    codes, w1, w2 = out_dir / "c.npz", out_dir / "w1.npz", out_dir / "w2.npz"
    assert main(["golden", path, "--seed", "5", "--out", str(w1),
                 "--codes-out", str(codes)]) == 0
    capsys.readouterr()
    with np.load(codes, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert meta["axes"]["U"] == ["o", "c", "i"] and meta["shapes"]["U"] == [2, 3, 3]
    assert main(["golden", path, "--codes", str(codes), "--out", str(w2)]) == 0
    capsys.readouterr()
    with np.load(w1) as a, np.load(w2) as b:
        assert np.array_equal(a["W"], b["W"])
    other = _config_file(tmp_path, cfg.replace(qu=5))     # same shapes, other code bits
    _assert_refused(capsys, ["golden", other, "--codes", str(codes), "--out",
                             str(out_dir / "w3.npz")], out_dir, "codes of another config",
                    expect=r"was written for bits U = 6, this config has 5")

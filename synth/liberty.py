# SPDX-License-Identifier: Apache-2.0
"""A small reader of NLDM Liberty files: cell areas, flops, pin capacitances, delays.

Only what the area and delay reports need: per cell its ``area``, whether it is
sequential (an ``ff`` / ``latch`` group), its input pin capacitances, and its
timing arcs as ``cell_rise`` / ``cell_fall`` lookup tables (index_1 = input
transition, index_2 = output load, both as the library's units, ns and pF for
IHP sg13g2). Tables are evaluated by bilinear interpolation (linear
extrapolation outside the table), as a static timing tool does.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from insitugen.errors import ToolError, clip
from insitugen.paths import describe_file


@dataclass(frozen=True)
class Table:
    index_1: tuple[float, ...]      # input transition
    index_2: tuple[float, ...]      # output load
    values: tuple[tuple[float, ...], ...]

    def at(self, slew: float, load: float) -> float:
        def bracket(axis, v):
            if len(axis) == 1:
                return 0, 0, 0.0
            i = min(max(bisect.bisect_right(axis, v) - 1, 0), len(axis) - 2)
            return i, i + 1, (v - axis[i]) / (axis[i + 1] - axis[i])
        if len(self.values) == 1 and len(self.index_2) <= 1:
            return self.values[0][0]
        rows = self.values
        if len(rows) == 1:              # one-dimensional table over index_1 (load only)
            j0, j1, u = bracket(self.index_1, load)
            return rows[0][j0] + u * (rows[0][j1] - rows[0][j0])
        i0, i1, t = bracket(self.index_1, slew)
        j0, j1, u = bracket(self.index_2, load)
        lo = rows[i0][j0] + u * (rows[i0][j1] - rows[i0][j0])
        hi = rows[i1][j0] + u * (rows[i1][j1] - rows[i1][j0])
        return lo + t * (hi - lo)


@dataclass(frozen=True)
class Arc:
    related_pin: str
    pin: str
    timing_type: str
    tables: tuple[Table, ...]       # cell_rise / cell_fall

    def delay(self, slew: float, load: float) -> float:
        return max(t.at(slew, load) for t in self.tables)


@dataclass
class Cell:
    name: str
    area: float
    sequential: bool
    dont_use: bool
    inputs: dict[str, float] = field(default_factory=dict)      # pin -> capacitance
    outputs: list[str] = field(default_factory=list)
    arcs: list[Arc] = field(default_factory=list)
    leakage_power: float = 0.0      # cell_leakage_power, in the library's power unit
    #: pin -> (rise_power tables, fall_power tables) of its internal_power groups
    internal_power: dict[str, tuple[tuple[Table, ...], tuple[Table, ...]]] = field(
        default_factory=dict)

    @property
    def combinational_arcs(self) -> list[Arc]:
        return [a for a in self.arcs if a.timing_type in ("combinational", "")]

    @property
    def clock_to_q_arcs(self) -> list[Arc]:
        return [a for a in self.arcs if a.timing_type in ("rising_edge", "falling_edge")]


@dataclass
class Library:
    name: str
    path: Path
    cells: dict[str, Cell]
    time_unit: str
    nom_voltage: float = 1.0

    @property
    def sequential_cells(self) -> list[str]:
        return sorted(n for n, c in self.cells.items() if c.sequential)

    @property
    def nand2(self) -> Cell:
        """The library's smallest-drive 2-input NAND (``*nand2_1``, else any ``nand2*``): 1 GE."""
        names = sorted(self.cells)
        for pattern in (r"(^|_)nand2_1$", r"(^|_)nand2_?x?1$", r"(^|_)nand2"):
            hits = [n for n in names if re.search(pattern, n, re.I)
                    and not re.search(r"nand2b", n, re.I)]
            if hits:
                return min((self.cells[n] for n in hits), key=lambda c: c.area)
        raise ToolError(f"liberty '{self.path}' has no NAND2 cell (a cell named like "
                        f"'*nand2_1'): gate equivalents need one")


def _matching_brace(text: str, open_pos: int) -> int:
    depth = 0
    for i in range(open_pos, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    raise ToolError("liberty file has unbalanced braces")


def groups(body: str, kind: str):
    """(argument, group body) of each ``kind (arg) { ... }`` directly or deeper in ``body``."""
    for m in re.finditer(rf"\b{kind}\s*\(([^)]*)\)\s*\{{", body):
        end = _matching_brace(body, m.end() - 1)
        yield m.group(1).strip().strip('"'), body[m.end():end], m.start(), end


def _numbers(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.findall(r"[-+0-9.eE]+", s.replace("\\", " ")))


def table_indices(body: str) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """The ``index_1`` / ``index_2`` a table or template group states (None where absent)."""
    found = []
    for name in ("index_1", "index_2"):
        m = re.search(rf"{name}\s*\(\s*\"([^\"]*)\"", body)
        found.append(_numbers(m.group(1)) if m else None)
    return found[0], found[1]


def lookup_table(body: str,
                 template: tuple[tuple[float, ...] | None, tuple[float, ...] | None] = (None, None)
                 ) -> Table:
    """A lookup table; an index the table does not state comes from its ``lu_table_template``
    (``template``), as Liberty specifies."""
    i1, i2 = table_indices(body)
    vals = re.search(r"values\s*\((.*?)\)\s*;", body, re.S)
    if vals is None:
        raise ToolError("liberty timing table without values")
    rows = tuple(_numbers(r) for r in re.findall(r"\"([^\"]*)\"", vals.group(1)))
    return Table(i1 or template[0] or (0.0,), i2 or template[1] or (0.0,), rows)


def attribute(body: str, name: str) -> str | None:
    m = re.search(rf"\b{name}\s*:\s*\"?([^\";\n]*)\"?\s*;", body)
    return m.group(1).strip() if m else None


def own_text(body: str) -> str:
    """``body`` without nested groups (so attributes read are the group's own)."""
    out, depth = [], 0
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=8)
def _read(path: str, mtime: float) -> Library:
    text = Path(path).read_text(errors="replace")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lib = re.search(r"\blibrary\s*\(([^)]*)\)", text)
    if lib is None:
        raise ToolError(f"'{path}' is not a Liberty file (no 'library (...)' group)")
    time_unit = attribute(text[:20000], "time_unit") or "1ns"
    # an index a table does not state comes from its template, as Liberty specifies
    templates = {name: table_indices(body)
                 for kind in ("lu_table_template", "power_lut_template")
                 for name, body, _, _ in groups(text, kind)}
    cells: dict[str, Cell] = {}
    for name, body, _, _ in groups(text, "cell"):
        own = own_text(body)
        area = float(attribute(own, "area") or 0.0)
        seq = re.search(r"\b(ff|latch|ff_bank|latch_bank|statetable)\s*\(", body) is not None
        cell = Cell(name=name, area=area, sequential=seq,
                    dont_use=(attribute(own, "dont_use") or "").lower() == "true",
                    leakage_power=float(attribute(own, "cell_leakage_power") or 0.0))
        for pin, pbody, _, _ in groups(body, "pin"):
            pown = own_text(pbody)
            rise, fall = (tuple(lookup_table(b, templates.get(t, (None, None)))
                                for _, ibody, _, _ in groups(pbody, "internal_power")
                                for t, b, _, _ in groups(ibody, kind))
                          for kind in ("rise_power", "fall_power"))
            cell.internal_power[pin] = (rise, fall)
            direction = (attribute(pown, "direction") or "").lower()
            if direction == "input":
                cell.inputs[pin] = float(attribute(pown, "capacitance") or 0.0)
            elif direction == "output":
                cell.outputs.append(pin)
                for _, tbody, _, _ in groups(pbody, "timing"):
                    town = own_text(tbody)
                    tables = tuple(lookup_table(b, templates.get(tmpl, (None, None)))
                                   for kind in ("cell_rise", "cell_fall")
                                   for tmpl, b, _, _ in groups(tbody, kind))
                    if tables:
                        cell.arcs.append(Arc(related_pin=attribute(town, "related_pin") or "",
                                             pin=pin,
                                             timing_type=attribute(town, "timing_type") or "",
                                             tables=tables))
        cells[name] = cell
    if not cells:
        raise ToolError(f"liberty file '{path}' defines no cells")
    return Library(name=lib.group(1).strip().strip('"'), path=Path(path), cells=cells,
                   time_unit=time_unit,
                   nom_voltage=float(attribute(text[:20000], "nom_voltage") or 1.0))


#: Folder of the Liberty files shipped with the package (provenance and licence: its README).
PDK_DIR = Path(__file__).resolve().parent / "pdk"

#: Names ``--liberty`` accepts instead of a path -> file in :data:`PDK_DIR`.
SHIPPED_LIBERTIES: dict[str, str] = {
    "ihp": "sg13g2_stdcell_typ_1p20V_25C.lib",
    "ihp-sg13g2": "sg13g2_stdcell_typ_1p20V_25C.lib",
}


def resolve_liberty(value: str | os.PathLike) -> Path:
    """The Liberty file ``value`` names: a shipped library's name (:data:`SHIPPED_LIBERTIES`,
    e.g. ``ihp``; a file of that name is reached as ``./ihp``) or the path of a ``.lib`` file.

    The one place that checks a liberty exists: every command and function taking a
    liberty calls it, so a missing file is the same one-line error everywhere."""
    name = os.fspath(value)
    shipped = SHIPPED_LIBERTIES.get(name.lower())
    if shipped is not None:
        path = PDK_DIR / shipped
        if not path.is_file():
            raise ToolError(f"the shipped liberty '{path}' is missing from this installation: "
                            f"reinstall insitugen (pip install -e .)")
        return path
    path = Path(name)
    problem = describe_file(path)       # missing, a folder, a FIFO (never opened)
    if problem:
        names = ", ".join(sorted(SHIPPED_LIBERTIES))
        raise ToolError(f"liberty file '{clip(str(path))}' {problem}: pass the path of a .lib "
                        f"file or a shipped library ({names})")
    return path


def read_liberty(path: str | os.PathLike) -> Library:
    """Parse a Liberty file, a path or a shipped name (cached by path and modification time)."""
    p = resolve_liberty(path)
    return _read(str(p.resolve()), p.stat().st_mtime)

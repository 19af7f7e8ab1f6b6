# SPDX-License-Identifier: Apache-2.0
"""Valid/ready stream protocol checks, in every simulation of every tier.

The rules a producer must keep (Amaranth ``lib.stream``, AXI-Stream alike),
checked at every rising clock edge outside reset:

1. **No valid drop** (``valid_drops``): once ``valid`` is high it stays high until
   the handshake (``valid & ready`` at an edge).
2. **Stable payload** (``payload_changes``): while ``valid & ~ready`` the payload
   does not change at the next edge.
3. **One last per pass**: the monitor counts handshakes whose ``last`` bit is set
   (``lasts``) and all handshakes (``handshakes``); the testbench asserts both
   against the passes and beats it asked for (:func:`check_counts`).

While reset is high nothing is checked and the stall state clears.

The same monitor also counts what back-pressure did, for functional coverage
(:func:`verif.coverage.sample_stream`): beats taken without a stall
(``beats_no_stall``), stalled beats that were the first of a pass
(``stalled_first``: the first handshake after reset or after a ``last``), the
last of a pass (``stalled_last``) or neither (``stalled_middle``), beats that
waited at least :data:`LONG_STALL` edges (``long_stalls``), ``stall_cycles`` and
``longest_stall``; ``first_violation`` is the edge number (``cycles``, counted
from time 0) of the first broken rule, 0 when none.

Two implementations of the one rule set, one per simulator family:

* :func:`monitor_verilog` -- Verilog placed in the cocotb testbench top
  (:func:`verif.tb_top.tb_top_verilog` puts one on every stream of the
  design, inputs and outputs), so the check runs at simulator speed on every
  clock of every Verilator / Icarus run, the 3.2-million-cycle layers included;
  the testbench reads the counters once at the end (:func:`read_monitor`).
* :class:`StreamRules` -- the same rules in Python, stepped once per edge: the
  monitor of the Amaranth-simulator tier (:func:`add_amaranth_monitor`) and the
  reference the Verilog monitor is tested against
  (``tests/test_protocol_coverage.py`` runs a misbehaving producer and compares
  both, counter by counter).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

__all__ = ["COUNTERS", "LONG_STALL", "ProtocolError", "StreamRules", "monitor_verilog",
           "monitor_signal", "read_monitor", "check_counts", "add_amaranth_monitor",
           "stream_prefixes"]

#: A beat that waited at least this many edges counts as a long stall.
LONG_STALL = 8

#: The monitor's counters, in this order in both implementations.
COUNTERS = ("cycles", "handshakes", "lasts", "valid_drops", "payload_changes",
            "first_violation", "stall_cycles", "longest_stall", "beats_no_stall",
            "stalled_first", "stalled_middle", "stalled_last", "long_stalls")


class ProtocolError(AssertionError):
    """A stream broke the valid/ready protocol (the message lists every problem)."""


# ---- the rules in Python ------------------------------------------------------------------

class StreamRules:
    """The protocol rules as a state machine stepped once per rising edge.

    ``last_of(payload) -> bool`` says whether a payload carries ``last`` (None: the
    stream has none, so a pass is not delimited and no beat counts as last).
    """

    def __init__(self, name: str, last_of: Callable[[Any], bool] | None = None):
        self.name = name
        self.last_of = last_of
        self.counts = {c: 0 for c in COUNTERS}
        self._stalled = False
        self._held = None
        self._wait = 0
        self._first = True

    def _violate(self, counter: str) -> None:
        self.counts[counter] += 1
        if not self.counts["first_violation"]:
            self.counts["first_violation"] = self.counts["cycles"]

    def step(self, valid, ready, payload, reset=False) -> None:
        """One rising edge, with the values the design samples there."""
        c = self.counts
        c["cycles"] += 1
        if reset:
            self._stalled, self._wait, self._first = False, 0, True
            return
        if self._stalled:
            if not valid:
                self._violate("valid_drops")
            elif payload != self._held:
                self._violate("payload_changes")
        if valid and ready:
            last = bool(self.last_of(payload)) if self.last_of is not None else False
            c["handshakes"] += 1
            c["lasts"] += last
            if self._wait == 0:
                c["beats_no_stall"] += 1
            else:
                c["stalled_first"] += self._first
                c["stalled_last"] += last
                c["stalled_middle"] += not self._first and not last
                c["long_stalls"] += self._wait >= LONG_STALL
            self._first = last
            self._stalled, self._wait = False, 0
        elif valid:
            if not self._stalled:
                self._held = payload
            self._stalled = True
            self._wait += 1
            c["stall_cycles"] += 1
            c["longest_stall"] = max(c["longest_stall"], self._wait)
        else:
            self._stalled, self._wait = False, 0

    def check(self, *, expected_last: int | None = None,
              expected_handshakes: int | None = None) -> None:
        check_counts(self.name, self.counts, expected_last=expected_last,
                     expected_handshakes=expected_handshakes)


def check_counts(name: str, counts: Mapping[str, int], *, expected_last: int | None = None,
                 expected_handshakes: int | None = None, since: Mapping[str, int] | None = None
                 ) -> None:
    """Raise :class:`ProtocolError` if ``counts`` record a broken rule, or ``last`` beats /
    handshakes other than expected. ``since``: an earlier reading of the same monitor;
    the expected numbers then apply to the difference (violations count in all)."""
    base = since or {}
    problems = []
    if counts["valid_drops"]:
        problems.append(f"valid fell before the handshake {counts['valid_drops']} time(s)")
    if counts["payload_changes"]:
        problems.append(f"payload changed while stalled {counts['payload_changes']} time(s)")
    if problems:
        problems[0] += f" (first at edge {counts['first_violation']})"
    lasts = counts["lasts"] - base.get("lasts", 0)
    if expected_last is not None and lasts != expected_last:
        problems.append(f"{lasts} beat(s) with last, expected {expected_last} (one per pass)")
    hs = counts["handshakes"] - base.get("handshakes", 0)
    if expected_handshakes is not None and hs != expected_handshakes:
        problems.append(f"{hs} handshake(s), expected {expected_handshakes}")
    if problems:
        raise ProtocolError(f"stream '{name}' broke the valid/ready protocol: "
                            + "; ".join(problems))


# ---- the rules in Verilog (cocotb testbench top) ------------------------------------------------

def monitor_signal(prefix: str, counter: str) -> str:
    """Name of a monitor counter in the testbench top (``mon_<prefix>_<counter>``)."""
    return f"mon_{prefix}_{counter}"


def stream_prefixes(port_names) -> list[str]:
    """Streams among a module's ports: every ``P`` with ``P__valid``, ``P__ready``,
    ``P__payload``."""
    names = set(port_names)
    return [n[:-len("__valid")] for n in port_names
            if n.endswith("__valid") and {n[:-5] + "ready", n[:-5] + "payload"} <= names]


def monitor_verilog(prefix: str, payload_range: str, last_bit: int | None = None,
                    clk: str = "clk", rst: str = "rst") -> str:
    """Verilog (module items, for the testbench top) checking stream ``prefix``.

    ``payload_range``: the payload port's range (``"[40:0]"``, ``""`` for 1 bit);
    ``last_bit``: the payload bit that is ``last`` (None: no last). The counters are
    32-bit registers, readable from cocotb (``public_flat_rd``); see the module
    docstring for what each counts. The behaviour equals :class:`StreamRules`.
    """
    v, r, p = f"{prefix}__valid", f"{prefix}__ready", f"{prefix}__payload"
    m = lambda c: monitor_signal(prefix, c)                       # noqa: E731
    last = f"{p}[{int(last_bit)}]" if last_bit is not None else "1'b0"
    rng = f"{payload_range} " if payload_range else ""
    decl = [f"  // stream protocol monitor of '{prefix}' (verif.protocol)",
            f"  reg {rng}mon_{prefix}_held = 0;",
            f"  reg mon_{prefix}_stalled = 1'b0;",
            f"  reg mon_{prefix}_first = 1'b1;",
            f"  reg [31:0] mon_{prefix}_wait = 32'd0;",
            f"  wire mon_{prefix}_last = {last};"]
    decl += [f"  reg [31:0] {m(c)} /*verilator public_flat_rd*/ = 32'd0;" for c in COUNTERS]
    fv = m("first_violation")
    body = f"""  always @(posedge {clk}) begin
    {m('cycles')} <= {m('cycles')} + 32'd1;
    if ({rst}) begin
      mon_{prefix}_stalled <= 1'b0;
      mon_{prefix}_wait <= 32'd0;
      mon_{prefix}_first <= 1'b1;
    end else begin
      if (mon_{prefix}_stalled && !{v}) begin
        {m('valid_drops')} <= {m('valid_drops')} + 32'd1;
        if ({fv} == 32'd0) {fv} <= {m('cycles')} + 32'd1;
      end
      if (mon_{prefix}_stalled && {v} && ({p} != mon_{prefix}_held)) begin
        {m('payload_changes')} <= {m('payload_changes')} + 32'd1;
        if ({fv} == 32'd0) {fv} <= {m('cycles')} + 32'd1;
      end
      if ({v} && {r}) begin
        {m('handshakes')} <= {m('handshakes')} + 32'd1;
        if (mon_{prefix}_last) {m('lasts')} <= {m('lasts')} + 32'd1;
        if (mon_{prefix}_wait == 32'd0) {m('beats_no_stall')} <= {m('beats_no_stall')} + 32'd1;
        else begin
          if (mon_{prefix}_first) {m('stalled_first')} <= {m('stalled_first')} + 32'd1;
          if (mon_{prefix}_last) {m('stalled_last')} <= {m('stalled_last')} + 32'd1;
          if (!mon_{prefix}_first && !mon_{prefix}_last)
            {m('stalled_middle')} <= {m('stalled_middle')} + 32'd1;
          if (mon_{prefix}_wait >= 32'd{LONG_STALL})
            {m('long_stalls')} <= {m('long_stalls')} + 32'd1;
        end
        mon_{prefix}_first <= mon_{prefix}_last;
        mon_{prefix}_stalled <= 1'b0;
        mon_{prefix}_wait <= 32'd0;
      end else if ({v}) begin
        if (!mon_{prefix}_stalled) mon_{prefix}_held <= {p};
        mon_{prefix}_stalled <= 1'b1;
        mon_{prefix}_wait <= mon_{prefix}_wait + 32'd1;
        {m('stall_cycles')} <= {m('stall_cycles')} + 32'd1;
        if (mon_{prefix}_wait + 32'd1 > {m('longest_stall')})
          {m('longest_stall')} <= mon_{prefix}_wait + 32'd1;
      end else begin
        mon_{prefix}_stalled <= 1'b0;
        mon_{prefix}_wait <= 32'd0;
      end
    end
  end"""
    return "\n".join(decl) + "\n" + body


def read_monitor(dut, prefix: str) -> dict[str, int]:
    """The counters of the Verilog monitor of stream ``prefix`` (cocotb, at any time)."""
    return {c: int(getattr(dut, monitor_signal(prefix, c)).value.to_unsigned())
            for c in COUNTERS}


# ---- the rules on Amaranth's simulator ------------------------------------------------------

def add_amaranth_monitor(sim, stream, rules: StreamRules, reset=None) -> StreamRules:
    """Step ``rules`` at every clock edge of Amaranth simulator ``sim`` with the values of
    ``stream`` (an Amaranth ``lib.stream`` interface) there. A background process: it
    never keeps the simulation running. ``reset``: an optional 1-bit signal."""
    from amaranth.hdl import Value

    payload = Value.cast(stream.payload)
    watched = [stream.valid, stream.ready, payload] + ([reset] if reset is not None else [])

    async def monitor(ctx):
        async for _, _, *values in ctx.tick().sample(*watched):
            rules.step(values[0], values[1], values[2],
                       reset=bool(values[3]) if reset is not None else False)

    sim.add_process(monitor)
    return rules

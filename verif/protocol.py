"""A valid/ready stream protocol checker for cocotb 2.x testbenches.

Watches one Amaranth ``lib.stream`` interface of the design (Verilog ports
``<prefix>__valid``, ``<prefix>__ready``, ``<prefix>__payload``) on every rising
clock edge and checks the rules a producer must keep (Amaranth ``lib.stream``,
AXI-Stream alike):

1. **No valid drop**: once ``valid`` is high it stays high until the handshake
   (``valid & ready`` at an edge).
2. **Stable payload**: while ``valid & ~ready`` the payload does not change at the
   next edge.
3. Optionally, **one last per pass**: :meth:`StreamProtocolChecker.count_last`
   counts handshakes whose ``last`` field is set; ``check(expected_last=N)``
   asserts it.

Values are sampled as they are at each rising edge (what the consumer
registers), before the testbench's writes of that edge take effect. While the
reset signal (``dut.rst`` by default) is high nothing is checked.

Usage::

    checker = StreamProtocolChecker(dut, "weights", dut.clk, last_field=LAST_BIT)
    checker.start()                                  # cocotb.start_soon under the hood
    ...                                              # drive the test
    checker.check(expected_last=passes)              # raises AssertionError listing violations

Cost: one ``RisingEdge`` await and two 1-bit reads per cycle; the payload is read
only while a beat stalls (to compare it at the next edge) and, with
``last_field``, on handshakes. For huge runs where even that matters, pass
``enabled=False`` (or set the environment variable ``INSITUGEN_PROTOCOL_CHECK=0``
for every checker of the run): :meth:`start` then watches nothing and
:meth:`check` only reports that checking was off (``checker.enabled`` says so).

``on_beat(index, stall_cycles, last)`` (optional) is called at every handshake
with the beat's index, how many edges it waited with ``valid & ~ready`` and its
``last`` flag -- the hook for back-pressure coverage
(:func:`insitugen.verif.coverage.sample_beat`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ProtocolViolation", "StreamProtocolChecker", "ProtocolError", "checks_enabled"]

ENV_SWITCH = "INSITUGEN_PROTOCOL_CHECK"


def checks_enabled() -> bool:
    """False when ``INSITUGEN_PROTOCOL_CHECK`` is ``0``/``false``/``off`` (checkers off for a run)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "off", "no")


class ProtocolError(AssertionError):
    """A stream broke the valid/ready protocol (the message lists every violation)."""


@dataclass(frozen=True)
class ProtocolViolation:
    cycle: int            # rising edges since the checker started (first edge = 1)
    stream: str
    rule: str             # "valid_drop" | "payload_change" | "last_count" | "handshakes"
    detail: str

    def __str__(self) -> str:
        return f"cycle {self.cycle}: {self.stream}: {self.rule}: {self.detail}"


def _is_high(value) -> bool:
    # X / Z count as low: a valid that is not driven is not a valid.
    try:
        return bool(value)
    except ValueError:
        return False


class StreamProtocolChecker:
    """Check one valid/ready stream of ``dut`` every clock (see the module docstring).

    ``prefix``: the stream's port prefix (``"o"`` for ``o__valid`` ...).
    ``payload_signals``: handles or port names whose stability is checked (default:
    ``<prefix>__payload``). ``last_field``: where the ``last`` flag is: a bit index
    into the first payload signal, a 1-bit handle / port name, or a callable
    taking the first payload's value and returning a bool; ``None``: no last.
    ``reset``: reset handle (default ``dut.rst`` if present; ``None`` to check always).
    ``fail_fast``: raise :class:`ProtocolError` at the first violation (inside the
    monitor task, which fails the test) instead of recording it for :meth:`check`.
    """

    def __init__(self, dut, prefix: str, clk, *payload_signals, last_field: Any = None,
                 reset: Any = "default", enabled: bool = True, fail_fast: bool = False,
                 on_beat: Callable[[int, int, bool], None] | None = None,
                 max_violations: int = 100):
        self.name = prefix
        self._dut = dut
        self.clk = clk
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        sigs = payload_signals or (f"{prefix}__payload",)
        self.payload = [getattr(dut, s) if isinstance(s, str) else s for s in sigs]
        if isinstance(last_field, str):
            last_field = getattr(dut, last_field)
        self._last_field = last_field
        if reset == "default":
            reset = getattr(dut, "rst", None)
        self.reset = reset
        self.enabled = bool(enabled) and checks_enabled()
        self.fail_fast = fail_fast
        self.on_beat = on_beat
        self.max_violations = max_violations
        self.violations: list[ProtocolViolation] = []
        self.cycles = 0
        self.handshakes = 0
        self.stall_cycles = 0          # edges with valid & ~ready, in all
        self.longest_stall = 0
        self._lasts = 0
        self._task = None

    # ---- running ------------------------------------------------------------------
    def start(self):
        """Start watching (``cocotb.start_soon``); returns the task (None when disabled)."""
        import cocotb

        if not self.enabled:
            return None
        self._task = cocotb.start_soon(self._run())
        return self._task

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def _last_of(self) -> bool:
        lf = self._last_field
        if lf is None:
            return False
        if isinstance(lf, int):
            return _is_high(self.payload[0].value[lf])
        if callable(lf) and not hasattr(lf, "value"):
            return bool(lf(self.payload[0].value))
        return _is_high(lf.value)

    def _violate(self, rule: str, detail: str) -> None:
        v = ProtocolViolation(self.cycles, self.name, rule, detail)
        if len(self.violations) < self.max_violations:
            self.violations.append(v)
        if self.fail_fast:
            raise ProtocolError(str(v))

    async def _run(self) -> None:
        from cocotb.triggers import RisingEdge

        edge = RisingEdge(self.clk)
        valid_sig, ready_sig, payload, reset = self.valid, self.ready, self.payload, self.reset
        stalled = False          # previous edge had valid & ~ready
        held = None              # payload values at that edge
        wait = 0                 # edges the current beat has stalled
        while True:
            await edge
            self.cycles += 1
            if reset is not None and _is_high(reset.value):
                stalled, wait = False, 0
                continue
            valid = _is_high(valid_sig.value)
            if stalled:
                if not valid:
                    self._violate("valid_drop", "valid fell before the handshake "
                                  f"(after {wait} stalled edge(s))")
                else:
                    now = [s.value for s in payload]
                    if now != held:
                        self._violate("payload_change", "payload changed while stalled: "
                                      f"{[str(h) for h in held]} -> {[str(n) for n in now]}")
            if not valid:
                stalled, wait = False, 0
                continue
            if _is_high(ready_sig.value):
                last = self._last_of()
                if last:
                    self._lasts += 1
                if self.on_beat is not None:
                    self.on_beat(self.handshakes, wait, last)
                self.handshakes += 1
                stalled, wait = False, 0
            else:
                if not stalled:
                    held = [s.value for s in payload]
                stalled = True
                wait += 1
                self.stall_cycles += 1
                if wait > self.longest_stall:
                    self.longest_stall = wait

    # ---- results ------------------------------------------------------------------
    def count_last(self) -> int:
        """Handshakes seen with the ``last`` field set (0 without ``last_field``)."""
        return self._lasts

    def check(self, *, expected_last: int | None = None,
              expected_handshakes: int | None = None) -> None:
        """Raise :class:`ProtocolError` listing every violation seen (with cycle numbers),
        or when the counts of ``last`` beats / handshakes differ from the expected ones.
        Disabled checkers pass (``enabled`` is False: nothing was watched)."""
        if not self.enabled:
            return
        problems = list(self.violations)
        if expected_last is not None and self._lasts != expected_last:
            problems.append(ProtocolViolation(self.cycles, self.name, "last_count",
                                              f"{self._lasts} beat(s) with last, expected "
                                              f"{expected_last}"))
        if expected_handshakes is not None and self.handshakes != expected_handshakes:
            problems.append(ProtocolViolation(self.cycles, self.name, "handshakes",
                                              f"{self.handshakes} handshake(s), expected "
                                              f"{expected_handshakes}"))
        if problems:
            more = (f" (first {self.max_violations} kept)"
                    if len(self.violations) >= self.max_violations else "")
            raise ProtocolError(f"stream '{self.name}' broke the valid/ready protocol"
                                f"{more}:\n  " + "\n  ".join(str(p) for p in problems))

    def summary(self) -> dict[str, Any]:
        """Counts for a testbench's result.json."""
        return {"stream": self.name, "enabled": self.enabled, "cycles": self.cycles,
                "handshakes": self.handshakes, "lasts": self._lasts,
                "stall_cycles": self.stall_cycles, "longest_stall": self.longest_stall,
                "violations": [str(v) for v in self.violations]}

# SPDX-License-Identifier: Apache-2.0
"""Formal harnesses, one per file, proven by Yosys' built-in SAT solver.

* :mod:`verif.proofs.sat` -- the shared runner: emit a harness as RTLIL, prove its
  ``ok`` output is 1 in every cycle, parse a counterexample; :class:`ProofReport`.
* :mod:`verif.proofs.requantizer` -- the requantizer against an independent formulation.
* :mod:`verif.proofs.slicing` -- the slicing identity of a sliced operand.
* :mod:`verif.proofs.unit` -- what every recombination harness shares: the unit, its
  handshakes and the expected output ``latency`` cycles later.
* :mod:`verif.proofs.product` -- the recombination end to end from free operands.
* :mod:`verif.proofs.decomposed` -- the recombination of wide operands as linear proofs.

The entry points (``prove``, ``prove_generator``) and ``insitugen prove`` are in
:mod:`verif.formal`.
"""

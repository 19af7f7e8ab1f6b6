# SPDX-License-Identifier: Apache-2.0
"""cocotb testbenches: drivers, monitors and scoreboards, run through cocotb_tools.runner.

:mod:`verif.runner` (``run_sim``) builds (:mod:`verif.build`) and runs a block's
testbench (:mod:`verif.tb_recombination`, :mod:`verif.tb_generator`) inside the
testbench top (:mod:`verif.tb_top`) on the stimulus of :mod:`verif.stimulus`;
:mod:`verif.backpressure` holds the valid/ready patterns, :mod:`verif.simulators` the
choices of a run, :mod:`verif.protocol` the stream monitors, :mod:`verif.coverage` the
functional coverage, :mod:`verif.formal` (harnesses in :mod:`verif.proofs`) the proofs.
"""

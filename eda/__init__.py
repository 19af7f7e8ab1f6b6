# SPDX-License-Identifier: Apache-2.0
"""Tool adapters: finding, versioning and running the external tools (Yosys, Verilator,
Icarus Verilog).

One module per tool (:mod:`eda.yosys`, :mod:`eda.verilator`, :mod:`eda.icarus`), usable by
every room above the base floor (``gen``, ``verif``, ``synth``, ``flows``). This room
imports only the base package ``insitugen`` (errors, versions), never another room, so a
tool is found and run the same way wherever it is used. A missing tool is one
:class:`~insitugen.errors.ToolError` line naming the tool and how to install it.
"""

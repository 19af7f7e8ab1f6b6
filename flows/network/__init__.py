# SPDX-License-Identifier: Apache-2.0
"""``insitugen network``: does generating the weights pay, layer by layer, for a whole network?

Per layer of a shipped model, an MLG checkpoint or an exported layer folder
(:mod:`flows.network.layers`): the generator's exact cycles (:mod:`flows.network.generation`,
the schedule arithmetic of the RTL), the convolution's cycles on the same engine
(:mod:`flows.network.engine`), time at a clock, energy from a per-operation table with a
source for every figure (:mod:`flows.network.energy`), and the report as text, JSON, CSV,
Markdown (:mod:`flows.network.report`) and two PNG plots (:mod:`flows.network.plots`).
The model and its assumptions are written out in ``docs/network.md``.
"""

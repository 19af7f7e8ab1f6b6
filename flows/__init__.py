# SPDX-License-Identifier: Apache-2.0
"""The top floor: the ``insitugen`` command line and the flows that run the rooms
(one layer's flow, the design-space sweep). Nothing below imports from here."""

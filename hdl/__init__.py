"""Amaranth components (no torch): the recombination unit and the generator datapath."""

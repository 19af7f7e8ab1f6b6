"""The base floor every room stands on: the frozen config, the one width
derivation, the error types and the tool-version record. Nothing here imports
torch, Amaranth or any other room of the project."""

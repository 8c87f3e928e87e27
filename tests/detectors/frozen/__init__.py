"""Frozen copies of the pre-optimisation default pipeline (commit 18d097d): the reference the
optimised code must reproduce bit for bit. Not used outside tests; do not edit."""

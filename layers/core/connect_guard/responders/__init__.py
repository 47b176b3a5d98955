"""Responders: one module per control, each a pure decision plus the actions it takes."""

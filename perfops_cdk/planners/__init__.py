"""Planners: pure functions from declarations (and what exists) to plans."""

"""Constructs: declare intent and validate it. They never touch AWS or nix."""

"""The perfops command line."""

"""Reusable stacks built from perfops_cdk constructs."""

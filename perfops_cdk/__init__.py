"""perfops_cdk."""

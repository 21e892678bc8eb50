"""What the CLI's commands do, as library functions that return data."""

from perfops_cdk.operations.loading import DEFAULT_PARALLEL
from perfops_cdk.operations.run import deploy, destroy
from perfops_cdk.operations.status import Status, status
from perfops_cdk.operations.units import Confirm, Report, UnitRun

__all__ = [
    "DEFAULT_PARALLEL",
    "Confirm",
    "Report",
    "Status",
    "UnitRun",
    "deploy",
    "destroy",
    "status",
]

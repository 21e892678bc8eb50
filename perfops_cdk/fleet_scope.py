"""The one seam that says where a project's hosts can be: ``fleet_scope(project)``.

``perfops hosts``, ``ssh``, ``ssh-config``, ``tunnel`` and ``clients`` find hosts by
their tags in AWS; all they need from the project is, per stack, the deployer uuid and
the regions to look in: every region stack the last synthesis wrote (what the code
declares, and the empty stacks of regions it dropped that may still hold hosts) and the
stacks the ledger still remembers of a PerfOpsStack removed from the app. It reads
``cdktf.out`` without re-synthesizing; only when ``cdktf.out`` is absent does it
synthesize first. Nothing here reads Terraform state.
"""

from __future__ import annotations

from perfops_cdk.operations.loading import load, regions_of
from perfops_cdk.planners.hosts import StackScope
from perfops_cdk.project import Project


def fleet_scope(project: Project) -> tuple[StackScope, ...]:
    """Per stack of the project: its deployer uuid and the regions it may have hosts in.

    A stack without a region stack (no deployment yet) has no scope.
    """
    if not (project.outdir / "manifest.json").is_file():
        project.synth()
    regions: dict[tuple[str, str], set[str]] = {}
    for uuid, app_stack, region in regions_of(load(project).units):
        regions.setdefault((app_stack, uuid), set()).add(region)
    return tuple(
        StackScope(stack=stack, uuid=uuid, regions=tuple(sorted(found)))
        for (stack, uuid), found in sorted(regions.items())
    )

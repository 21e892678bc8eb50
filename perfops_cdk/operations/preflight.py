"""Read-only checks before anything is created: every AMI the stacks boot exists, and
every region offers the listed types and has the vCPU quota for the hosts."""

from __future__ import annotations

from collections.abc import Sequence

from perfops_cdk.effects import aws, ec2_capacity
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations.loading import DEFAULT_PARALLEL, concurrently
from perfops_cdk.planners.preflight import Finding, RegionFacts, check, finding_lines
from perfops_cdk.planners.stacks import REGION, HostGroup, Unit


def _available(region: str, ami_ids: Sequence[str]) -> set[str]:
    client = aws.client("ec2", region)
    images = aws.paginate(
        client,
        "describe_images",
        "Images",
        Filters=[{"Name": "image-id", "Values": sorted(set(ami_ids))}],
    )
    return {i["ImageId"] for i in images if i.get("State") == "available"}


def check_amis(groups: Sequence[HostGroup], *, parallel: int = DEFAULT_PARALLEL) -> None:
    """One DescribeImages per region; a missing AMI is one line naming the image, the
    region and the fix, raised before any region is planned."""
    by_region: dict[str, list[HostGroup]] = {}
    for group in groups:
        by_region.setdefault(group.region, []).append(group)
    regions = sorted(by_region)
    found = concurrently(regions, lambda r: _available(r, [g.ami for g in by_region[r]]), parallel)
    for region, available in zip(regions, found, strict=True):
        for group in by_region[region]:
            if group.ami in available:
                continue
            if group.prebuilt_image:
                fix = f"fix ami_ids of {group.image_path} (or copy the AMI to {region})"
            else:
                fix = f"run: perfops images sync --names {group.image} --regions {region}"
            raise PerfOpsError(
                f"{group.app_stack}/{group.deployment}: image {group.image!r} has no AMI "
                f"{group.ami} in {region} (it does not exist or is not available); {fix}"
            )


def _checked(units: Sequence[Unit]) -> list[Unit]:
    return [u for u in units if u.kind == REGION and u.groups and u.uuid and u.app_stack]


def regions_checked(units: Sequence[Unit]) -> list[str]:
    """The regions check_capacity looks at among ``units``."""
    return sorted({u.region for u in _checked(units) if u.region})


class PreflightFailed(PerfOpsError):
    """Some region cannot hold what the app declares; ``findings`` say which and why."""

    def __init__(self, findings: Sequence[Finding], checked: Sequence[str]) -> None:
        regions = sorted({f.region for f in findings if f.blocking})
        super().__init__(
            f"preflight: {len(regions)} region(s) cannot hold the fleet "
            f"({', '.join(regions)}); change the declaration, raise the quota, or add --force"
        )
        self.findings = tuple(findings)
        self.checked = tuple(checked)  # every region looked at

    def lines(self) -> list[str]:
        """The findings as lines to print (planners/preflight.finding_lines)."""
        return finding_lines(self.findings, self.checked)


def check_capacity(
    units: Sequence[Unit], *, parallel: int = DEFAULT_PARALLEL, force: bool = False
) -> list[Finding]:
    """Per region, in parallel, read-only: types offered, vCPUs against the quotas.

    Returns every finding; raises PreflightFailed (before anything is created) when one
    blocks, unless ``force``.
    """
    regions = _checked(units)

    def facts(unit: Unit) -> RegionFacts:
        assert unit.region and unit.uuid and unit.app_stack
        types = sorted({t for g in unit.groups for t in g.instance_types})
        return ec2_capacity.region_facts(unit.region, types, unit.uuid, unit.app_stack)

    found = [
        f
        for unit, got in zip(regions, concurrently(regions, facts, parallel), strict=True)
        for f in check(unit.groups, got)
    ]
    if not force and any(f.blocking for f in found):
        raise PreflightFailed(found, regions_checked(units))
    return found

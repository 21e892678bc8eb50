"""Read-only checks before anything is created: every AMI the stacks boot exists."""

from __future__ import annotations

from collections.abc import Sequence

from perfops_cdk.effects import aws
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.operations.loading import DEFAULT_PARALLEL, concurrently
from perfops_cdk.planners.stacks import HostGroup


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

"""EC2 tags: filters that select by them, specifications that set them in the creating
call, and adding the ones a resource lacks without ever overwriting one it has."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from perfops_cdk.effects import aws

__all__ = [
    "complete_snapshot_tags",
    "missing_tags",
    "tag_filters",
    "tag_resources",
    "tag_specifications",
]


def tag_filters(tags: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """Describe filters matching every tag in ``tags`` (a None value: any value)."""
    return [
        {"Name": "tag-key", "Values": [k]} if v is None else {"Name": f"tag:{k}", "Values": [v]}
        for k, v in tags.items()
    ]


def tag_specifications(tags: Mapping[str, str], *resource_types: str) -> dict[str, Any]:
    """``TagSpecifications`` keyword so that AWS tags what a call creates in that call."""
    if not tags:
        return {}
    listed = [{"Key": k, "Value": v} for k, v in tags.items()]
    return {"TagSpecifications": [{"ResourceType": t, "Tags": listed} for t in resource_types]}


def missing_tags(wanted: Mapping[str, str], have: Mapping[str, str]) -> dict[str, str]:
    """Those of ``wanted`` whose keys ``have`` lacks. Tags already there stay as they
    are: an AMI found by name may be another deployer's."""
    return {k: v for k, v in wanted.items() if k not in have}


def tag_resources(ec2: Any, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
    """Set ``tags`` on the resources (create_tags overwrites, so it is re-runnable)."""
    if resource_ids and tags:
        aws.call(
            ec2,
            "create_tags",
            Resources=list(resource_ids),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )


def complete_snapshot_tags(ec2: Any, snapshot_ids: Sequence[str], tags: Mapping[str, str]) -> None:
    """Add to each snapshot those of ``tags`` it lacks."""
    if not snapshot_ids:
        return
    described = aws.call(ec2, "describe_snapshots", SnapshotIds=list(snapshot_ids))
    for snapshot in described.get("Snapshots", []):
        have = {t["Key"]: t["Value"] for t in snapshot.get("Tags", [])}
        tag_resources(ec2, [snapshot["SnapshotId"]], missing_tags(tags, have))

"""The example fleet of perf-ops' README: steady-state load plus new-network growth."""

from __future__ import annotations

from perfops_cdk import Deployment, ImageAsset, PerfOpsStack, RootVolume, Spot


def declare_demo_fleet(stack: PerfOpsStack, image: ImageAsset) -> list[Deployment]:
    """Two deployments sharing one image across four regions."""
    pre_sync = Deployment(
        stack,
        "preSyncDeploy1",
        image=image,
        instance_type="r5d.2xlarge",
        regions={"eu-west-1": 1, "eu-central-1": 1, "us-east-1": 1},
        security_groups=["allow-ssh", "allow-egress"],
        ssh_cidrs=["203.0.113.0/24"],
        root_volume=RootVolume(size_gib=100),
    )
    full_sync = Deployment(
        stack,
        "fullSyncDeploy1",
        image=image,
        instance_type="r5d.xlarge",
        regions={"eu-west-2": 2, "us-east-1": 2},
        security_groups=["allow-egress"],
        spot=Spot(max_price="0.20"),
        tags={"purpose": "full-sync"},
    )
    return [pre_sync, full_sync]

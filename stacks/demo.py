"""The example fleet of perf-ops' README: steady-state load plus new-network growth."""

from __future__ import annotations

from perfops_cdk import (
    ContainerService,
    Deployment,
    HostContainers,
    ImageAsset,
    PerfOpsStack,
    RootVolume,
    Spot,
)

# Where the k6 clients send their load; a stand-in address for the demo.
K6_TARGET = "http://10.0.0.5:8080/"


def k6_clients(prefix: str, network: str, count: int, start: int) -> ContainerService:
    """A service of ``count`` k6 clients named and addressed from ``start``."""
    return ContainerService(
        name=f"k6-{prefix}{start:03d}",
        entry_folder="k6",
        container_name_prefix=prefix,
        host_address="10.254.0.1",
        network=network,
        container_count=count,
        container_name_start_num=start,
        ip_start_addr=start,
        environment={"PERFOPS_K6_TARGET": K6_TARGET},
    )


def declare_demo_fleet(stack: PerfOpsStack, image: ImageAsset) -> list[Deployment]:
    """Two deployments sharing one image across four regions, with k6 load clients:
    250 per pre-sync host (two services of 125, created in parallel), 50 per full-sync
    host on instance-store NVMe."""
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
    HostContainers(
        pre_sync,
        "clients",
        services=[k6_clients("a", "10.254.1", 125, 1), k6_clients("a", "10.254.1", 125, 126)],
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
    HostContainers(
        full_sync, "clients", services=[k6_clients("b", "10.254.2", 50, 1)], nvme_raid0=True
    )
    return [pre_sync, full_sync]

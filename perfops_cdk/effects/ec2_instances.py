"""Read a deployer's hosts from EC2 (by the ``perf-ops`` tag): one paginated call."""

from __future__ import annotations

from typing import Any

from perfops_cdk.effects import aws
from perfops_cdk.effects.ec2_hosts import LISTED_STATES
from perfops_cdk.planners.containers import CONTAINERS_TAG
from perfops_cdk.planners.lifetime import LIFETIME_TAG
from perfops_cdk.planners.status import Host
from perfops_cdk.props.tags import TAG_DEPLOYMENT, TAG_STACK, TAG_UUID


def _count(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def hosts(region: str, uuid: str, ec2: Any | None = None) -> list[Host]:
    """Every instance tagged ``perf-ops=<uuid>`` in ``region``, whatever its stack, but
    the terminated ones (they stay listed for about an hour: 400 more after each deploy
    and destroy of a fleet, each costing the answer time)."""
    client = ec2 or aws.client("ec2", region)
    found = []
    reservations = aws.paginate(
        client,
        "describe_instances",
        "Reservations",
        Filters=[
            {"Name": f"tag:{TAG_UUID}", "Values": [uuid]},
            {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
        ],
    )
    for reservation in reservations:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            found.append(
                Host(
                    instance_id=instance["InstanceId"],
                    region=region,
                    app_stack=tags.get(TAG_STACK, "?"),
                    deployment=tags.get(TAG_DEPLOYMENT, "?"),
                    state=instance["State"]["Name"],
                    ami=instance.get("ImageId", "?"),
                    instance_type=instance.get("InstanceType", "?"),
                    lifecycle=instance.get("InstanceLifecycle") or "on-demand",
                    availability_zone=instance.get("Placement", {}).get("AvailabilityZone", ""),
                    launch_time=str(instance.get("LaunchTime", "")),
                    public_ip=instance.get("PublicIpAddress", ""),
                    private_ip=instance.get("PrivateIpAddress", ""),
                    containers=_count(tags.get(CONTAINERS_TAG)),
                    lifetime=tags.get(LIFETIME_TAG),
                )
            )
    return found

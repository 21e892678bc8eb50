"""Find and remove a stack's resources in a region by its tags, and read its hosts.

Every lookup filters on both the deployer's uuid (``perf-ops``) and the stack
(``perf-ops:stack``), so nothing here reaches another deployer's or stack's
resources, or anything untagged. Removal waits for what blocks the next step
(terminated instances before their security groups) within explicit time budgets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from perfops_cdk.effects import aws
from perfops_cdk.errors import EffectError
from perfops_cdk.planners.leftovers import LIVE_INSTANCE_STATES, Resource, sort
from perfops_cdk.props.tags import TAG_DEPLOYMENT, TAG_NAME, TAG_STACK, TAG_UUID

ACTIVE_FLEET_STATES = frozenset({"submitted", "active", "modifying"})
OPEN_SPOT_STATES = ("open", "active")
TERMINATE_BUDGET_S = 600.0
GROUP_BUDGET_S = 300.0


def _tags(raw: Iterable[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw or ()}


def _owned(tags: dict[str, str], uuid: str, stack: str) -> bool:
    return tags.get(TAG_UUID) == uuid and tags.get(TAG_STACK) == stack


def _resource(region: str, kind: str, id: str, state: str, tags: dict[str, str]) -> Resource:
    return Resource(
        region=region,
        kind=kind,
        id=id,
        state=state,
        name=tags.get(TAG_NAME, ""),
        deployment=tags.get(TAG_DEPLOYMENT, ""),
        tags=tags,
    )


def find(region: str, uuid: str, stack: str, ec2: Any | None = None) -> list[Resource]:
    """Every live fleet, instance, spot request, launch template, security group and
    volume in ``region`` tagged with ``uuid`` and ``stack``."""
    client = ec2 or aws.client("ec2", region)
    filters = [
        {"Name": f"tag:{TAG_UUID}", "Values": [uuid]},
        {"Name": f"tag:{TAG_STACK}", "Values": [stack]},
    ]
    found: list[Resource] = []
    for reservation in aws.paginate(
        client,
        "describe_instances",
        "Reservations",
        Filters=[*filters, {"Name": "instance-state-name", "Values": sorted(LIVE_INSTANCE_STATES)}],
    ):
        for i in reservation["Instances"]:
            tags = _tags(i.get("Tags"))
            found.append(_resource(region, "instance", i["InstanceId"], i["State"]["Name"], tags))
    # DescribeFleets has no tag filter: read all, keep ours.
    for fleet in aws.paginate(client, "describe_fleets", "Fleets"):
        tags = _tags(fleet.get("Tags"))
        if fleet.get("FleetState") in ACTIVE_FLEET_STATES and _owned(tags, uuid, stack):
            found.append(_resource(region, "fleet", fleet["FleetId"], fleet["FleetState"], tags))
    for request in aws.paginate(
        client,
        "describe_spot_instance_requests",
        "SpotInstanceRequests",
        Filters=[*filters, {"Name": "state", "Values": list(OPEN_SPOT_STATES)}],
    ):
        if request.get("InstanceId"):
            continue  # fulfilled: it goes with its instance, which is looked at itself
        tags = _tags(request.get("Tags"))
        found.append(
            _resource(
                region, "spot-request", request["SpotInstanceRequestId"], request["State"], tags
            )
        )
    for template in aws.paginate(
        client, "describe_launch_templates", "LaunchTemplates", Filters=filters
    ):
        tags = _tags(template.get("Tags"))
        found.append(_resource(region, "launch-template", template["LaunchTemplateId"], "", tags))
    for group in aws.paginate(
        client, "describe_security_groups", "SecurityGroups", Filters=filters
    ):
        tags = _tags(group.get("Tags"))
        found.append(_resource(region, "security-group", group["GroupId"], "", tags))
    for volume in aws.paginate(client, "describe_volumes", "Volumes", Filters=filters):
        tags = _tags(volume.get("Tags"))
        found.append(_resource(region, "volume", volume["VolumeId"], volume["State"], tags))
    return sort(found)


def live(region: str, fleets: Iterable[str], instances: Iterable[str]) -> set[str]:
    """Which of these fleet and instance ids EC2 shows active or live, whatever their
    tags. An id EC2 no longer knows (a host terminated hours ago) is simply absent:
    instances are looked up by filter, which does not fail on such ids as
    ``InstanceIds`` does; fleets by listing the region's."""
    client = aws.client("ec2", region)
    wanted, found = set(fleets), set()
    if wanted:
        for fleet in aws.paginate(client, "describe_fleets", "Fleets"):
            if fleet["FleetId"] in wanted and fleet.get("FleetState") in ACTIVE_FLEET_STATES:
                found.add(fleet["FleetId"])
    ids = sorted(set(instances))
    for start in range(0, len(ids), 200):  # values per filter
        for reservation in aws.paginate(
            client,
            "describe_instances",
            "Reservations",
            Filters=[
                {"Name": "instance-id", "Values": ids[start : start + 200]},
                {"Name": "instance-state-name", "Values": sorted(LIVE_INSTANCE_STATES)},
            ],
        ):
            found.update(i["InstanceId"] for i in reservation["Instances"])
    return found


def remove(resources: Sequence[Resource], ec2: Any | None = None) -> list[str]:
    """Delete ``resources`` (all of one region) in dependency order; one line each.

    "Already gone" counts as removed. Raises EffectError naming what could not go.
    """
    if not resources:
        return []
    region = resources[0].region
    client = ec2 or aws.client("ec2", region)
    by_kind: dict[str, list[str]] = {}
    for item in resources:
        by_kind.setdefault(item.kind, []).append(item.id)
    lines: list[str] = []
    fleets = by_kind.get("fleet", [])
    for start in range(0, len(fleets), 25):  # DeleteFleets takes 25 instant fleets
        batch = fleets[start : start + 25]
        _tolerant(client, "delete_fleets", FleetIds=batch, TerminateInstances=True)
        lines += [f"{region}: deleted fleet {f} and its instances" for f in batch]
    if spot := by_kind.get("spot-request"):
        _tolerant(client, "cancel_spot_instance_requests", SpotInstanceRequestIds=spot)
        lines += [f"{region}: cancelled spot request {s}" for s in spot]
    instances = by_kind.get("instance", [])
    if instances:
        _tolerant(client, "terminate_instances", InstanceIds=instances)
        lines += [f"{region}: terminated instance {i}" for i in instances]
    if instances or fleets:
        _wait_terminated(client, instances)
    for template in by_kind.get("launch-template", []):
        _tolerant(client, "delete_launch_template", LaunchTemplateId=template)
        lines.append(f"{region}: deleted launch template {template}")
    for group in by_kind.get("security-group", []):
        _delete_group(client, group)
        lines.append(f"{region}: deleted security group {group}")
    for volume in by_kind.get("volume", []):
        _tolerant(client, "delete_volume", VolumeId=volume)
        lines.append(f"{region}: deleted volume {volume}")
    return lines


_GONE_SUFFIXES = (".NotFound", ".Malformed", "NotFoundException")


def _tolerant(client: Any, operation: str, **kwargs: Any) -> None:
    try:
        aws.call(client, operation, **kwargs)
    except EffectError as error:
        if not aws.error_code(error).endswith(_GONE_SUFFIXES):
            raise


def _wait_terminated(client: Any, instances: list[str]) -> None:
    if not instances:
        return
    try:
        client.get_waiter("instance_terminated").wait(
            InstanceIds=instances,
            WaiterConfig={"Delay": 5, "MaxAttempts": int(TERMINATE_BUDGET_S / 5)},
        )
    except Exception as exc:  # botocore WaiterError: a timeout, or EC2 refused the look-up
        raise EffectError(
            f"{client.meta.region_name}: waiting up to {TERMINATE_BUDGET_S:.0f} s for "
            f"{len(instances)} instance(s) to terminate failed: {exc}"
        ) from None


def _delete_group(client: Any, group: str) -> None:
    """Delete a security group, waiting while terminating instances still hold it."""
    deadline = time.monotonic() + GROUP_BUDGET_S
    while True:
        try:
            _tolerant(client, "delete_security_group", GroupId=group)
            return
        except EffectError as error:
            if aws.error_code(error) != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(5)

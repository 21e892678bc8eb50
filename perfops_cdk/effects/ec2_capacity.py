"""What EC2 says about a region's capacity for the preflight: read-only calls only.

Per region: one ``DescribeInstanceTypeOfferings`` (zones of the listed types), one
``DescribeInstances`` (what already runs there, to net it out of the quotas), one
``DescribeInstanceTypes`` (vCPUs), and ``GetServiceQuota`` for the standard on-demand
and spot vCPU quotas. A quota that cannot be read comes back as None with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws
from perfops_cdk.planners.preflight import ON_DEMAND_STANDARD, SPOT_STANDARD, RegionFacts
from perfops_cdk.props.tags import TAG_STACK, TAG_UUID

_LIVE = ["pending", "running"]


def region_facts(region: str, types: Sequence[str], uuid: str, app_stack: str) -> RegionFacts:
    ec2 = aws.client("ec2", region)
    offerings = aws.paginate(
        ec2,
        "describe_instance_type_offerings",
        "InstanceTypeOfferings",
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": sorted(set(types))}],
    )
    zones: dict[str, set[str]] = {}
    for offer in offerings:
        zones.setdefault(offer["InstanceType"], set()).add(offer["Location"])
    running: list[tuple[str, str]] = []  # (type, market) of what others run here
    for reservation in aws.paginate(
        ec2,
        "describe_instances",
        "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": _LIVE}],
    ):
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            if tags.get(TAG_UUID) == uuid and tags.get(TAG_STACK) == app_stack:
                continue  # this stack's own hosts: the declaration replaces them
            market = "spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand"
            running.append((instance["InstanceType"], market))
    vcpus = _vcpus(ec2, sorted(set(zones) | {t for t, _ in running}))
    in_use = {"on-demand": 0, "spot": 0}
    for instance_type, market in running:
        in_use[market] += vcpus.get(instance_type, 0)
    quotas: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    service_quotas = aws.client("service-quotas", region)
    for code, _ in (ON_DEMAND_STANDARD, SPOT_STANDARD):
        quotas[code], reason = _quota(service_quotas, code)
        if reason:
            errors[code] = reason
    return RegionFacts(
        region=region,
        zones={t: tuple(sorted(z)) for t, z in zones.items()},
        vcpus=vcpus,
        quotas=quotas,
        quota_errors=errors,
        in_use=in_use,
    )


def _vcpus(ec2: Any, types: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(types), 100):
        described = aws.paginate(
            ec2,
            "describe_instance_types",
            "InstanceTypes",
            InstanceTypes=list(types[start : start + 100]),
        )
        for item in described:
            found[item["InstanceType"]] = int(item["VCpuInfo"]["DefaultVCpus"])
    return found


def _quota(client: Any, code: str) -> tuple[float | None, str]:
    try:
        answer = client.get_service_quota(ServiceCode="ec2", QuotaCode=code)
    except ClientError as error:
        detail = error.response.get("Error", {})
        return None, f"could not be read ({detail.get('Code', 'error')})"
    except BotoCoreError as error:
        return None, f"could not be read ({error})"
    return float(answer["Quota"]["Value"]), ""

"""Read a project's hosts from EC2 by their tags: one paginated DescribeInstances per
region, regions in parallel."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws
from perfops_cdk.errors import EffectError
from perfops_cdk.planners.hosts import UUID_TAG, Instance
from perfops_cdk.props.tags import MANAGED_BY

# Terminated instances stay visible for about an hour; they are not hosts any more.
LISTED_STATES = ("pending", "running", "shutting-down", "stopping", "stopped")
MAX_REGION_WORKERS = 17


def describe(region: str, uuids: Sequence[str], ec2: Any | None = None) -> list[Instance]:
    """Every non-terminated instance in ``region`` tagged ``perf-ops`` = one of ``uuids``
    and ``managed-by`` = perfops_cdk."""
    client = ec2 or aws.client("ec2", region)
    filters = [
        {"Name": f"tag:{UUID_TAG}", "Values": sorted(uuids)},
        {"Name": "tag:managed-by", "Values": [MANAGED_BY]},
        {"Name": "instance-state-name", "Values": list(LISTED_STATES)},
    ]
    found: list[Instance] = []
    try:
        for page in client.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                found.extend(Instance.from_ec2(region, raw) for raw in reservation["Instances"])
    except (ClientError, BotoCoreError) as error:
        raise aws.effect_error(client, "DescribeInstances", error) from None
    return found


def describe_regions(
    regions: Iterable[str], uuids: Sequence[str], *, workers: int = MAX_REGION_WORKERS
) -> list[Instance]:
    """``describe`` in every region at once. Every region gets its answer before a
    failure is raised, which then names each region that failed."""
    targets = sorted(set(regions))
    if not targets or not uuids:
        return []
    # Clients are made (or found in aws.client's cache) here, one after the other:
    # making one is CPU-bound work that threads would only fight over.
    clients = {region: aws.client("ec2", region) for region in targets}

    def one(region: str) -> list[Instance] | EffectError:
        try:
            return describe(region, uuids, clients[region])
        except EffectError as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        results = list(pool.map(one, targets))
    failures = [str(r) for r in results if isinstance(r, EffectError)]
    if failures:
        count = len(failures)
        raise EffectError(f"could not list hosts in {count} region(s): " + "; ".join(failures))
    return [instance for r in results if not isinstance(r, EffectError) for instance in r]

"""Read the hosts of a deployer from EC2 (by the ``perf-ops`` tag)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from perfops_cdk.effects import aws
from perfops_cdk.errors import EffectError
from perfops_cdk.planners.status import Host


def hosts(region: str, uuid: str, ec2: Any | None = None) -> list[Host]:
    """Every instance tagged ``perf-ops=<uuid>`` in ``region``, of any state."""
    client = ec2 or aws.client("ec2", region)
    found = []
    try:
        pages = client.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:perf-ops", "Values": [uuid]}]
        )
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
                    found.append(
                        Host(
                            instance_id=instance["InstanceId"],
                            region=region,
                            deployment=tags.get("deployment", "?"),
                            state=instance["State"]["Name"],
                            ami=instance.get("ImageId", "?"),
                            instance_type=instance.get("InstanceType", "?"),
                        )
                    )
    except (ClientError, BotoCoreError) as error:
        raise EffectError(f"ec2 describe_instances in {region}: {error}") from None
    return found

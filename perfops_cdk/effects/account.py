"""What ``perfops doctor --aws`` reads from an account: who is calling, which regions
are enabled, the state bucket, and whether calls perfops makes would be allowed.

Read-only. The permission probes are EC2 ``DryRun`` calls (AWS answers
``DryRunOperation`` when the call would have succeeded and ``UnauthorizedOperation``
when it would not, evaluating the caller's policies, permission boundaries and SCPs
for that region) and one ``iam:SimulatePrincipalPolicy``, when the caller may run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from perfops_cdk.effects import aws
from perfops_cdk.effects.denied import DENIED_CODES, denial
from perfops_cdk.errors import EffectError

DRY_RUN_ALLOWED = "DryRunOperation"
PROBE_GROUP = "perfops-doctor-probe"


@attrs.frozen
class Caller:
    account: str
    arn: str

    @property
    def principal_arn(self) -> str:
        """The IAM ARN policies attach to: an assumed role's session is its role."""
        parts = self.arn.split(":")
        if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
            role = parts[5].split("/")[1]
            return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"
        return self.arn


@attrs.frozen
class Bucket:
    """The state bucket as S3 answers: ``exists`` None when S3 would not say."""

    name: str
    exists: bool | None
    versioning: str = ""  # Enabled | Suspended | "" (never enabled)
    error: str = ""


@attrs.frozen
class Probe:
    """One DryRun call: allowed, denied (with the action AWS named) or unknown."""

    region: str
    action: str
    outcome: str  # allowed | denied | unknown
    detail: str = ""


def caller(region: str) -> Caller:
    """``sts:GetCallerIdentity`` (needs no permission, only valid credentials)."""
    found = aws.call(aws.client("sts", region), "get_caller_identity")
    return Caller(account=str(found["Account"]), arn=str(found["Arn"]))


def region_statuses(region: str) -> dict[str, str]:
    """Every region of the partition and its opt-in status (``DescribeRegions``)."""
    found = aws.call(aws.client("ec2", region), "describe_regions", AllRegions=True)
    return {r["RegionName"]: r.get("OptInStatus", "") for r in found.get("Regions", [])}


def bucket(name: str, region: str) -> Bucket:
    """Whether the bucket exists and is versioned: one ``GetBucketVersioning``."""
    client = aws.client("s3", region)
    try:
        found = client.get_bucket_versioning(Bucket=name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return Bucket(name, exists=False)
        error = aws.effect_error(client, "get_bucket_versioning", exc)
        return Bucket(name, exists=None, error=str(error))
    except BotoCoreError as exc:
        return Bucket(name, exists=None, error=str(exc))
    return Bucket(name, exists=True, versioning=str(found.get("Status", "")))


def _tags(resource: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def probe_calls(
    tags: Mapping[str, str], ami: str | None, instance_type: str | None
) -> list[tuple[str, str, dict[str, Any]]]:
    """(IAM action, boto3 operation, arguments) of the DryRun probes: the creates
    Terraform makes, tagged as perfops tags them; RunInstances with the app's AMI."""
    calls: list[tuple[str, str, dict[str, Any]]] = [
        (
            "ec2:CreateSecurityGroup",
            "create_security_group",
            {
                "GroupName": PROBE_GROUP,
                "Description": "perfops doctor: dry run only",
                "TagSpecifications": _tags("security-group", tags),
            },
        ),
        (
            "ec2:CreateLaunchTemplate",
            "create_launch_template",
            {
                "LaunchTemplateName": PROBE_GROUP,
                "LaunchTemplateData": {"InstanceType": instance_type or "t3.micro"},
                "TagSpecifications": _tags("launch-template", tags),
            },
        ),
    ]
    if ami and instance_type:
        calls.append(
            (
                "ec2:RunInstances",
                "run_instances",
                {
                    "ImageId": ami,
                    "InstanceType": instance_type,
                    "MinCount": 1,
                    "MaxCount": 1,
                    "TagSpecifications": _tags("instance", tags) + _tags("volume", tags),
                },
            )
        )
    return calls


def dry_run(region: str, action: str, operation: str, arguments: Mapping[str, Any]) -> Probe:
    """One call with ``DryRun=True``; nothing is created whatever the answer."""
    client = aws.client("ec2", region, max_attempts=3)
    try:
        getattr(client, operation)(DryRun=True, **arguments)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        if code == DRY_RUN_ALLOWED:
            return Probe(region, action, "allowed")
        found = denial(message, code=code, service="ec2", operation=action.split(":")[1])
        if found is not None or code in DENIED_CODES:
            return Probe(region, action, "denied", found.line() if found else message)
        return Probe(region, action, "unknown", f"{code}: {message}")
    except BotoCoreError as exc:
        return Probe(region, action, "unknown", str(exc))
    # An emulator may ignore DryRun and create the thing: a real call succeeded.
    return Probe(region, action, "allowed", "the call did not honour DryRun")


def simulate(
    region: str, principal: str, actions: Sequence[str], context: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """``iam:SimulatePrincipalPolicy`` of ``actions`` for any resource: action ->
    ``allowed`` / ``implicitDeny`` / ``explicitDeny``. Raises EffectError when the
    caller may not simulate (or the endpoint cannot)."""
    client = aws.client("iam", region, max_attempts=3)
    entries = [
        {
            "ContextKeyName": key,
            "ContextKeyValues": list(values),
            "ContextKeyType": "stringList" if len(values) > 1 else "string",
        }
        for key, values in context.items()
    ]
    decisions: dict[str, str] = {}
    for start in range(0, len(actions), 50):
        try:
            pages = client.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal,
                ActionNames=list(actions[start : start + 50]),
                ContextEntries=entries,
            )
            for page in pages:
                for result in page.get("EvaluationResults", []):
                    decisions[result["EvalActionName"]] = result["EvalDecision"]
        except ClientError as exc:
            raise aws.effect_error(client, "simulate_principal_policy", exc) from exc
        except (BotoCoreError, ResponseParserError) as exc:  # the emulator lacks the call
            raise EffectError(
                f"simulate_principal_policy: no usable answer ({type(exc).__name__})"
            ) from exc
    return decisions

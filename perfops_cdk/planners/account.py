"""``perfops doctor --aws`` as lines: what the account answered, judged, with the fix.

Pure functions: each takes what the effects read (effects/account.py) and returns
``Finding``s, one line each. The planners never call AWS, so every rule here is
tested with tables, including answers the emulator cannot give.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
ENABLED = frozenset({"opt-in-not-required", "opted-in"})

# Every action of examples/iam/{image-sync,deploy,state-bucket}.json (a test keeps the
# two equal): what the simulation asks about.
DEPLOYER_ACTIONS: tuple[str, ...] = (
    "ebs:CompleteSnapshot",
    "ebs:PutSnapshotBlock",
    "ebs:StartSnapshot",
    "ec2:AuthorizeSecurityGroupEgress",
    "ec2:AuthorizeSecurityGroupIngress",
    "ec2:CancelSpotInstanceRequests",
    "ec2:CopyImage",
    "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate",
    "ec2:CreateSecurityGroup",
    "ec2:CreateTags",
    "ec2:DeleteFleets",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteSecurityGroup",
    "ec2:DeleteSnapshot",
    "ec2:DeleteVolume",
    "ec2:DeregisterImage",
    "ec2:DescribeFleets",
    "ec2:DescribeImages",
    "ec2:DescribeImportSnapshotTasks",
    "ec2:DescribeInstanceTypeOfferings",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeInstances",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeRegions",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSnapshots",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeVolumes",
    "ec2:ImportSnapshot",
    "ec2:RegisterImage",
    "ec2:RevokeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress",
    "ec2:RunInstances",
    "ec2:TerminateInstances",
    "iam:CreateServiceLinkedRole",
    "iam:PassRole",
    "iam:SimulatePrincipalPolicy",
    "pricing:GetProducts",
    "s3:AbortMultipartUpload",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteObject",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetObject",
    "s3:ListBucket",
    "s3:PutBucketTagging",
    "s3:PutObject",
    "servicequotas:GetServiceQuota",
    "sts:GetCallerIdentity",
)
POLICIES = "examples/iam/"


@attrs.frozen
class Finding:
    """One line of the report: a status, what it is about, what was found, the fix."""

    status: str
    topic: str
    text: str
    fix: str = ""

    def line(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{self.status:>4} {self.topic}: {self.text}{fix}"


@attrs.frozen
class StateBackend:
    """An S3 state backend of a synthesized stack (``terraform.backend.s3``)."""

    bucket: str
    region: str
    key: str

    @classmethod
    def from_stack(cls, config: Mapping[str, object]) -> StateBackend | None:
        terraform = config.get("terraform")
        backend = terraform.get("backend", {}) if isinstance(terraform, Mapping) else {}
        s3 = backend.get("s3") if isinstance(backend, Mapping) else None
        if not isinstance(s3, Mapping):
            return None
        return cls(bucket=str(s3["bucket"]), region=str(s3["region"]), key=str(s3["key"]))


def identity(account: str, arn: str) -> Finding:
    return Finding(OK, "identity", f"{arn} (account {account})")


def no_identity(error: str) -> Finding:
    return Finding(
        FAIL,
        "identity",
        f"no valid AWS credentials ({error})",
        "export AWS_PROFILE=<profile> (aws configure / aws sso login) or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )


def regions(used: Iterable[str], statuses: Mapping[str, str], account: str) -> list[Finding]:
    """One line per region the app uses: enabled for the account, or how to enable it."""
    findings = []
    for region in sorted(set(used)):
        status = statuses.get(region)
        if status in ENABLED:
            findings.append(Finding(OK, f"region {region}", f"enabled ({status})"))
        elif status is None:
            findings.append(
                Finding(
                    FAIL,
                    f"region {region}",
                    "not a region of this account's partition",
                    "remove it from the deployments' regions",
                )
            )
        else:
            findings.append(
                Finding(
                    FAIL,
                    f"region {region}",
                    f"opt-in region not enabled for account {account} ({status})",
                    f"aws account enable-region --region-name {region} (takes minutes), "
                    "or remove it from the deployments' regions",
                )
            )
    return findings


def no_regions(error: str) -> Finding:
    return Finding(
        FAIL,
        "regions",
        f"cannot list the account's regions ({error})",
        f"grant ec2:DescribeRegions ({POLICIES}deploy.json)",
    )


def state_bucket(
    backend: StateBackend, exists: bool | None, versioning: str, error: str = ""
) -> Finding:
    """The S3 state bucket: present and versioned, or what to do."""
    topic = f"state s3://{backend.bucket}"
    if exists is None:
        return Finding(
            FAIL,
            topic,
            f"cannot tell whether it exists ({error})",
            f"grant s3:GetBucketVersioning on it ({POLICIES}state-bucket.json)",
        )
    if not exists:
        return Finding(
            FAIL,
            topic,
            f"does not exist (region {backend.region})",
            f"aws s3api create-bucket --bucket {backend.bucket} --region {backend.region} "
            f"--create-bucket-configuration LocationConstraint={backend.region}, then "
            "enable versioning",
        )
    if versioning != "Enabled":
        return Finding(
            WARN,
            topic,
            "exists but is not versioned: a lost or damaged state cannot be recovered",
            f"aws s3api put-bucket-versioning --bucket {backend.bucket} "
            "--versioning-configuration Status=Enabled",
        )
    return Finding(OK, topic, f"exists and is versioned (a key per region beside {backend.key})")


def local_state(state_dir: str) -> Finding:
    return Finding(
        OK,
        "state",
        f"local files under {state_dir}; S3State(bucket, key, region) shares them with a team",
    )


def probes(found: Iterable[tuple[str, str, str, str]]) -> list[Finding]:
    """(region, action, outcome, detail) of DryRun calls -> one line each; denied
    ones name the action to grant."""
    findings = []
    for region, action, outcome, detail in sorted(found):
        topic = f"dry run {action} in {region}"
        if outcome == "allowed":
            findings.append(Finding(OK, topic, "would be allowed"))
        elif outcome == "denied":
            findings.append(
                Finding(
                    FAIL,
                    topic,
                    detail or f"not authorized to perform {action}",
                    f"grant {action} ({POLICIES}deploy.json); an SCP or permission "
                    "boundary may deny it too",
                )
            )
        else:
            findings.append(Finding(WARN, topic, f"could not check ({detail})"))
    return findings


def simulation(decisions: Mapping[str, str], actions: Sequence[str]) -> list[Finding]:
    """The policy simulation: one line for all allowed, one per denied action."""
    denied = [a for a in actions if decisions.get(a, "allowed") != "allowed"]
    if not denied:
        return [Finding(OK, "simulated policy", f"all {len(actions)} actions perfops uses allowed")]
    return [
        Finding(
            FAIL,
            f"simulated {action}",
            f"{decisions[action]} for this principal",
            f"grant it ({POLICIES}, docs/iam.md lists which command needs it)",
        )
        for action in denied
    ]


def no_simulation(error: str) -> Finding:
    return Finding(
        SKIP,
        "simulated policy",
        f"not run ({error}); the dry runs above still check the creates",
        f"grant iam:SimulatePrincipalPolicy on yourself ({POLICIES}deploy.json)",
    )


def failed(findings: Iterable[Finding]) -> bool:
    return any(f.status == FAIL for f in findings)

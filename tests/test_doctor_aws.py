"""`perfops doctor --aws`: the account's answers judged as one line each with the fix, and
access denials reduced to the IAM action to grant."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from perfops_cdk.cli.main import app
from perfops_cdk.effects import aws
from perfops_cdk.effects.denied import denial
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.planners import account as checks
from perfops_cdk.planners.account import FAIL, OK, WARN, StateBackend

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
BACKEND = StateBackend(bucket="team-state", region="eu-west-1", key="perf/fleet.tfstate")

DEPLOYMENTS = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack, S3State
from perfops_cdk.app import main


def define(app: App) -> None:
    backend = S3State(bucket="team-state", key="perf/fleet.tfstate", region="eu-west-1")
    stack = PerfOpsStack(app, "perf-ops", uuid="doctor01", backend=backend)
    image = ImageAsset.from_ami_ids(
        stack, "node", name="node-v1",
        ami_ids={"eu-west-1": "ami-03cf127a", "ap-east-1": "ami-03cf127a"},
    )
    Deployment(stack, "web", image=image, instance_type="t3.micro",
               regions={"eu-west-1": 1, "ap-east-1": 1})


main(define)
"""


@pytest.mark.parametrize(
    ("text", "code", "expected"),
    [
        (  # EC2: the action, then an encoded authorization message
            "You are not authorized to perform this operation. User: "
            "arn:aws:iam::111122223333:user/ci is not authorized to perform: "
            "ec2:CreateFleet on resource: arn:aws:ec2:eu-west-1:111122223333:fleet/* "
            "Encoded authorization failure message: AbCdEf",
            "UnauthorizedOperation",
            "arn:aws:iam::111122223333:user/ci is not authorized to perform ec2:CreateFleet",
        ),
        (  # Terraform's provider wraps the SDK's error
            "creating EC2 Launch Template (x): operation error EC2: CreateLaunchTemplate, "
            "https response error StatusCode: 403, RequestID: 1, api error AccessDenied: "
            "User: arn:aws:iam::123456789012:user/d is not authorized to perform: "
            "ec2:CreateLaunchTemplate",
            "",
            "arn:aws:iam::123456789012:user/d is not authorized to perform "
            "ec2:CreateLaunchTemplate",
        ),
        (  # S3 names nobody and no action: the action comes from the call
            "operation error S3: HeadObject, https response error StatusCode: 403, "
            "api error Forbidden: Forbidden",
            "",
            "not authorized to perform s3:GetObject",
        ),
        (  # Service Quotas' SDK id is two words
            "operation error Service Quotas: GetServiceQuota, https response error "
            "StatusCode: 400, api error AccessDeniedException: no",
            "",
            "not authorized to perform servicequotas:GetServiceQuota",
        ),
    ],
)
def test_a_denial_names_the_action_to_grant(text: str, code: str, expected: str) -> None:
    """However AWS or Terraform word it, a denial becomes the action (and principal)."""
    found = denial(text, code=code)
    assert found is not None
    assert found.line().startswith(expected + ";")
    assert "examples/iam/" in found.line()


def test_a_bare_s3_denial_is_named_from_the_call() -> None:
    """S3's "Access Denied" says nothing; the operation botocore made names the action."""
    found = denial("Access Denied", code="AccessDenied", service="s3", operation="HeadBucket")
    assert found is not None and found.action == "s3:ListBucket"


@pytest.mark.parametrize(
    "text", ["InvalidAMIID.NotFound: no such image", "api error Throttling: Rate exceeded"]
)
def test_other_errors_are_not_denials(text: str) -> None:
    """Only access denials are rewritten; other errors keep AWS's words."""
    assert denial(text) is None


@pytest.mark.parametrize(
    ("status", "expected", "fix"),
    [
        ("opt-in-not-required", OK, ""),
        ("opted-in", OK, ""),
        ("not-opted-in", FAIL, "aws account enable-region --region-name ap-east-1"),
        (None, FAIL, "remove it from the deployments' regions"),
    ],
)
def test_each_region_is_enabled_or_says_how(status: str | None, expected: str, fix: str) -> None:
    """A region the app uses is fine when enabled; an opt-in region not enabled (or a
    name the partition lacks) is one failing line with the command that fixes it."""
    statuses = {"ap-east-1": status} if status else {}
    [finding] = checks.regions(["ap-east-1"], statuses, "111122223333")
    assert finding.status == expected
    assert fix in finding.fix


@pytest.mark.parametrize(
    ("exists", "versioning", "expected", "fix"),
    [
        (True, "Enabled", OK, ""),
        (True, "Suspended", WARN, "put-bucket-versioning --bucket team-state"),
        (True, "", WARN, "Status=Enabled"),
        (False, "", FAIL, "create-bucket --bucket team-state --region eu-west-1"),
        (None, "", FAIL, "grant s3:GetBucketVersioning"),
    ],
)
def test_state_bucket_exists_and_is_versioned(
    exists: bool | None, versioning: str, expected: str, fix: str
) -> None:
    """The S3 state bucket: present and versioned, else the command that makes it so."""
    finding = checks.state_bucket(BACKEND, exists, versioning, "AccessDenied")
    assert finding.status == expected
    assert fix in finding.fix
    assert "\n" not in finding.line()


def test_denied_probes_and_simulation_name_the_action() -> None:
    """A denied dry run or simulated action is a failing line naming what to grant."""
    [denied, allowed] = checks.probes(  # sorted by action
        [
            ("eu-west-1", "ec2:CreateSecurityGroup", "allowed", ""),
            ("eu-west-1", "ec2:CreateLaunchTemplate", "denied", ""),
        ]
    )
    assert denied.status == FAIL and "grant ec2:CreateLaunchTemplate" in denied.fix
    assert allowed.status == OK
    decisions = {"ec2:CreateFleet": "implicitDeny", "ec2:DescribeImages": "allowed"}
    [line] = checks.simulation(decisions, ["ec2:CreateFleet", "ec2:DescribeImages"])
    assert line.status == FAIL and line.topic == "simulated ec2:CreateFleet"


def test_policy_documents_and_simulated_actions_agree() -> None:
    """The simulation asks about exactly the actions the shipped policies grant."""
    granted: set[str] = set()
    for name in ("image-sync.json", "deploy.json", "state-bucket.json"):
        for statement in json.loads((REPO / "examples/iam" / name).read_text())["Statement"]:
            actions = statement["Action"]
            granted.update([actions] if isinstance(actions, str) else actions)
    assert granted == set(checks.DEPLOYER_ACTIONS)


def test_doctor_aws_reports_identity_regions_and_state_bucket(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the emulator: who is calling, each region the app uses, the S3 state
    bucket (missing, then unversioned, then versioned), one line each with the fix."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    (root / "deployments.py").write_text(textwrap.dedent(DEPLOYMENTS))
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    assert runner.invoke(app, ["synth"]).exit_code == 0

    missing = runner.invoke(app, ["doctor", "--aws"])
    lines = missing.output.splitlines()
    assert missing.exit_code == 1, missing.output
    assert any(line.startswith("  ok identity: arn:aws:") for line in lines), lines
    assert "  ok region eu-west-1: enabled (opt-in-not-required)" in lines
    [region] = [line for line in lines if "region ap-east-1:" in line]
    assert region.startswith("FAIL region ap-east-1: opt-in region not enabled")
    assert "fix: aws account enable-region --region-name ap-east-1" in region
    [bucket] = [line for line in lines if "state s3://team-state" in line]  # once
    assert bucket.startswith("FAIL") and "aws s3api create-bucket --bucket team-state" in bucket
    assert any("dry run ec2:CreateSecurityGroup in eu-west-1: would be allowed" in x for x in lines)

    s3 = aws.client("s3", "eu-west-1")
    s3.create_bucket(
        Bucket="team-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    unversioned = runner.invoke(app, ["doctor", "--aws"]).output
    assert "warn state s3://team-state: exists but is not versioned" in unversioned

    s3.put_bucket_versioning(Bucket="team-state", VersioningConfiguration={"Status": "Enabled"})
    versioned = runner.invoke(app, ["doctor", "--aws"]).output
    assert "  ok state s3://team-state: exists and is versioned" in versioned

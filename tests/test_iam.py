"""The shipped IAM policies (examples/iam/) carry the whole flow, and a missing action
fails with one line naming it.

perfops and real Terraform run as IAM users created through the emulator's IAM API,
against a moto server in its own process that enforces IAM (tests/iam_server.py) and
records every check. What moto can and cannot check is in docs/iam.md; iamkit.py turns
the shipped policies into what moto can evaluate. Slow: the module took 6.5 to 12
minutes on 2 cores shared with other work (the flow 5 to 8, each missing action 1 to 2).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from iamkit import REPO, EnforcingEmulator, as_moto_sees_it, load_policy

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.nix,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

REGION = "eu-west-1"
MOTO_AMI = "ami-03cf127a"  # served by the emulator in every region
STATE_KEY = "perf-ops/fleet.tfstate"  # what examples/iam/state-bucket.json expects
DOCS = REPO / "docs" / "iam.md"
# Denied and harmless: the provider's aws_ami data source asks for an *instance's* UEFI
# data with the AMI id and ignores any error (hashicorp/terraform-provider-aws#47508).
TOLERATED = frozenset({"ec2:GetInstanceUefiData"})

DEMO_APP = """
from images import declare_images
from perfops_cdk import App, PerfOpsStack, S3State
from perfops_cdk.app import main
from stacks.demo import declare_demo_fleet


def define(app: App) -> None:
    backend = S3State(bucket={bucket!r}, key={key!r}, region={region!r})
    stack = PerfOpsStack(app, "perf-ops", home_region={region!r}, backend=backend)
    declare_demo_fleet(stack, declare_images(stack)["demo"])


main(define)
"""

SMALL_APP = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack, S3State
from perfops_cdk.app import main


def define(app: App) -> None:
    backend = S3State(bucket={bucket!r}, key={key!r}, region={region!r})
    stack = PerfOpsStack(app, "perf-ops", backend=backend)
    image = ImageAsset.from_ami_ids(stack, "node", name="node", ami_ids={{{region!r}: {ami!r}}})
    Deployment(stack, "web", image=image, instance_type="t3.micro", regions={{{region!r}: 1}},
               security_groups=["allow-egress"])


main(define)
"""


def shipped(bucket: str, without: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """The deployer's three policies, the state bucket named, as moto can check them."""
    state = json.loads(
        (REPO / "examples" / "iam" / "state-bucket.json")
        .read_text()
        .replace("YOUR-STATE-BUCKET", bucket)
    )
    documents = {
        "image-sync": load_policy("image-sync.json"),
        "deploy": load_policy("deploy.json"),
        "state-bucket": state,
    }
    return {name: as_moto_sees_it(doc, without=without) for name, doc in documents.items()}


class Project:
    """A perfops project whose CLI runs with one IAM user's keys against the emulator."""

    def __init__(self, root: Path, app: str, url: str, keys: Mapping[str, str], uuid: str):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
        (root / "deployments.py").write_text(app)
        self.env = {
            **os.environ,
            **keys,
            "PERFOPS_AWS_ENDPOINT": url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "PERF_UUID": uuid,
            "PYTHONPATH": str(REPO),
            "COLUMNS": "120",
        }

    def perfops(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "perfops_cdk.cli.main", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )


def _ok(result: subprocess.CompletedProcess[str], *codes: int) -> str:
    output = result.stdout + result.stderr
    assert result.returncode in (codes or (0,)), f"exit {result.returncode}:\n{output}"
    return output


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnforcingEmulator]:
    emulator = EnforcingEmulator(tmp_path_factory.mktemp("iam") / "checks.jsonl")
    try:
        yield emulator
    finally:
        emulator.stop()


def _state_bucket(emulator: EnforcingEmulator, name: str) -> None:
    s3 = emulator.client("s3", REGION)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _plant_leftovers(emulator: EnforcingEmulator, uuid: str) -> None:
    """What a killed run could leave, tagged with the deployer and stack (as admin)."""
    ec2 = emulator.client("ec2", REGION)
    tags = [
        {"Key": "perf-ops", "Value": uuid},
        {"Key": "perf-ops:stack", "Value": "perf-ops"},
        {"Key": "Name", "Value": "stray"},
    ]

    def spec(kind: str) -> list[dict[str, Any]]:
        return [{"ResourceType": kind, "Tags": tags}]

    ec2.create_security_group(
        GroupName="stray", Description="stray", TagSpecifications=spec("security-group")
    )
    ec2.create_launch_template(
        LaunchTemplateName="stray",
        LaunchTemplateData={"ImageId": MOTO_AMI},
        TagSpecifications=spec("launch-template"),
    )
    ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=spec("volume"))
    ec2.run_instances(
        ImageId=MOTO_AMI,
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=spec("instance"),
    )
    ec2.request_spot_instances(
        InstanceCount=1,
        LaunchSpecification={"ImageId": MOTO_AMI, "InstanceType": "t3.micro"},
        TagSpecifications=spec("spot-instances-request"),
    )


def documented_actions() -> set[tuple[str, str]]:
    """(action, caller) rows of the table between the markers in docs/iam.md."""
    text = DOCS.read_text()
    block = text.split("<!-- observed: begin -->")[1].split("<!-- observed: end -->")[0]
    rows = set()
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            for caller in cells[1].split(", "):
                rows.add((cells[0].strip("`"), caller))
    return rows


def granted_actions() -> set[str]:
    """Every action the deployer's shipped policies allow."""
    return {
        action
        for document in shipped("any-bucket").values()
        for statement in document["Statement"]
        for action in statement["Action"]
    }


@pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build is not installed")
def test_shipped_policies_carry_the_whole_flow(
    enforcing: EnforcingEmulator, tmp_path: Path
) -> None:
    """With exactly the shipped policies: the image sync of the nix test image, deploy
    (S3 state), status, doctor --aws, destroy, a sweep of planted leftovers and images
    delete all succeed; moto denied nothing, and docs/iam.md lists every action perfops
    and Terraform used (and only granted ones)."""
    bucket = "perfops-state-flow"
    _state_bucket(enforcing, bucket)
    keys = enforcing.user("deployer", shipped(bucket))
    root = tmp_path / "project"
    for name in ("images.py", "stacks"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            root.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    shutil.copytree(REPO / "nix" / "test-image", root / "nix" / "test-image")
    app = DEMO_APP.format(bucket=bucket, key=STATE_KEY, region=REGION)
    project = Project(root, app, enforcing.url, keys, uuid="iamflow1")

    _ok(project.perfops("images", "sync"))
    _ok(project.perfops("deploy", "-y"))
    _ok(project.perfops("status"))
    doctor = _ok(project.perfops("doctor", "--aws"))
    assert f"state s3://{bucket}: exists and is versioned" in doctor
    # moto leaves an instant fleet's spot requests "active" after its instances are gone,
    # so destroy may list them; the sweep below removes them either way.
    _ok(project.perfops("destroy", "-y"), 0, 1)
    _plant_leftovers(enforcing, "iamflow1")
    swept = _ok(project.perfops("destroy", "-y", "--sweep"))
    assert "nothing left" in swept
    _ok(project.perfops("images", "delete", "--yes"))

    checks = enforcing.checks("deployer")
    assert [c for c in checks if not c.allowed and c.action not in TOLERATED] == []
    used = {(c.action, c.who) for c in checks if c.allowed}
    documented = documented_actions()
    assert used <= documented, f"docs/iam.md lacks {sorted(used - documented)}"
    granted = granted_actions()
    assert {action for action, _ in documented} <= granted, "docs/iam.md lists ungranted"


@pytest.mark.parametrize(
    "removed",
    [
        "ec2:CreateLaunchTemplate",  # Terraform's apply
        "ec2:DescribeFleets",  # perfops' own check for orphans, before Terraform
        "s3:GetObject",  # Terraform's S3 backend, reading the state
    ],
)
def test_a_missing_action_fails_with_one_line_naming_it(
    enforcing: EnforcingEmulator, tmp_path: Path, removed: str
) -> None:
    """A deployer whose policy lacks one action the deploy needs gets a failed deploy
    and a single line saying which principal is not authorized to perform which action."""
    slug = re.sub(r"[^a-z0-9]", "", removed.lower())
    bucket = f"perfops-state-{slug}"
    _state_bucket(enforcing, bucket)
    user = f"without-{slug}"
    keys = enforcing.user(user, shipped(bucket, without=[removed]))
    app = SMALL_APP.format(bucket=bucket, key=STATE_KEY, region=REGION, ami=MOTO_AMI)
    project = Project(tmp_path / "project", app, enforcing.url, keys, uuid=f"x{slug[:9]}")

    result = project.perfops("deploy", "-y")

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    denied = [line for line in output.splitlines() if "not authorized" in line]
    assert denied, output
    assert all(f"not authorized to perform {removed};" in line for line in denied), denied
    if not removed.startswith("s3:"):  # S3 says "Access Denied", naming nobody
        assert all(f":user/{user} is not authorized" in line for line in denied), denied
    assert [c.action for c in enforcing.checks(user) if not c.allowed] != []


def test_doctor_names_a_missing_permission(enforcing: EnforcingEmulator, tmp_path: Path) -> None:
    """`perfops doctor --aws` finds a create the deployer may not make before any deploy
    (a dry run), as one failing line naming the action and the policy to fix."""
    bucket = "perfops-state-doctor"
    _state_bucket(enforcing, bucket)
    keys = enforcing.user("doctor-probe", shipped(bucket, without=["ec2:CreateLaunchTemplate"]))
    app = SMALL_APP.format(bucket=bucket, key=STATE_KEY, region=REGION, ami=MOTO_AMI)
    project = Project(tmp_path / "project", app, enforcing.url, keys, uuid="doctor01")
    _ok(project.perfops("synth"))

    result = project.perfops("doctor", "--aws")

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"  ok state s3://{bucket}: exists and is versioned" in " ".join(lines)
    [failed] = [line for line in lines if line.startswith("FAIL")]
    assert failed.startswith(f"FAIL dry run ec2:CreateLaunchTemplate in {REGION}: ")
    assert ":user/doctor-probe is not authorized to perform ec2:CreateLaunchTemplate" in failed
    assert "fix: grant ec2:CreateLaunchTemplate (examples/iam/deploy.json)" in failed

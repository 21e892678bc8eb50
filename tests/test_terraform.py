"""Synthesized JSON against the real terraform binary and AWS provider (from the mirror)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stackkit import UUID

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack, S3State, Spot, UserDataPart
from perfops_cdk.app import synth
from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.terraform import Workspace, find_mirror

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

REGIONS = ("eu-west-1", "us-east-1")


def synthesized(project: Path, amis: dict[str, str]) -> list[Workspace]:
    """The region stacks of the fleet, one workspace each."""
    out = synth(lambda app: declare_fleet(app, amis, project), project / "cdktf.out")
    return [Workspace(out / "stacks" / f"perf-ops-{region}", project) for region in REGIONS]


def declare_fleet(app: App, amis: dict[str, str], project: Path) -> None:
    """An on-demand deployment in two regions and a spot one in one region."""
    stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=project)
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=amis)
    Deployment(
        stack,
        "steady",
        image=image,
        instance_type="r5d.xlarge",
        regions={"eu-west-1": 1, "us-east-1": 2},
        security_groups=["allow-ssh", "allow-egress"],
        ssh_cidrs=["198.51.100.0/24"],
        user_data=[UserDataPart(name="hello", script="echo hello")],
    )
    Deployment(
        stack,
        "burst",
        image=image,
        instance_type="c5.large",
        regions={"eu-west-1": 1},
        spot=Spot(max_price="0.10"),
    )


def register_amis(regions: tuple[str, ...] = REGIONS) -> dict[str, str]:
    """AMIs in the emulator, one per region, as the image pipeline would leave them."""
    return {
        region: aws.client("ec2", region).register_image(
            Name="node-v1-test",
            Architecture="x86_64",
            RootDeviceName="/dev/xvda",
            VirtualizationType="hvm",
        )["ImageId"]
        for region in regions
    }


def test_synth_output_validates_against_the_provider_schema(tmp_path: Path) -> None:
    """`terraform validate` accepts every attribute we emit (checked by the real schema)."""
    for workspace in synthesized(tmp_path, {r: "ami-0123456789abcdef0" for r in REGIONS}):
        workspace.init()
        report = workspace.validate()
        assert report["valid"] is True, report["diagnostics"]
        assert report["error_count"] == 0


def test_provider_comes_from_the_local_mirror(tmp_path: Path) -> None:
    """Offline, init installs hashicorp/aws from the machine's mirror without a registry."""
    mirror = find_mirror()
    if mirror is None:
        pytest.skip("no provider mirror on this machine; init uses the public registry")
    workspace = synthesized(tmp_path, {r: "ami-0123456789abcdef0" for r in REGIONS})[0]
    workspace.init()
    installed = list(
        (workspace.dir / ".terraform/providers/registry.terraform.io/hashicorp/aws").glob(
            "5.100.0/*"
        )
    )
    assert installed and installed[0].resolve().is_relative_to(mirror.resolve())


@pytest.fixture(scope="module")
def applied(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[Workspace], dict[str, str]]]:
    """The fleet applied to its own emulator; destroyed by the last test of the module."""
    emulator = Emulator().start()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator.environment().items():
            patch.setenv(key, value)
        project = tmp_path_factory.mktemp("applied")
        amis = register_amis()
        workspaces = synthesized(project, amis)
        for workspace in workspaces:
            workspace.init()
            workspace.apply()
        yield workspaces, amis
    emulator.stop()


def _instances(region: str) -> list[dict[str, Any]]:
    pages = (
        aws.client("ec2", region)
        .get_paginator("describe_instances")
        .paginate(Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}])
    )
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def test_apply_creates_each_host_in_its_region(
    applied: tuple[list[Workspace], dict[str, str]],
) -> None:
    """boto3 sees every host in the right region, AMI, type, tags and IMDSv2 settings."""
    _, amis = applied
    seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for region in REGIONS:
        for instance in _instances(region):
            tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
            seen.setdefault((tags["deployment"], region), []).append(instance)
            assert instance["ImageId"] == amis[region]
            assert tags["perf-ops"] == UUID and tags["managed-by"] == "perfops_cdk"
            assert tags["perf-ops:stack"] == "perf-ops"
            assert tags["Name"] == f"perf-ops-{UUID}-perf-ops-{tags['deployment']}-{region}"
    assert {k: len(v) for k, v in seen.items()} == {
        ("steady", "eu-west-1"): 1,
        ("steady", "us-east-1"): 2,
        ("burst", "eu-west-1"): 1,
    }
    assert {i["InstanceType"] for i in seen[("burst", "eu-west-1")]} == {"c5.large"}
    assert {i["InstanceType"] for i in seen[("steady", "us-east-1")]} == {"r5d.xlarge"}


def test_hosts_launch_from_templates_with_imdsv2_and_encrypted_roots(
    applied: tuple[list[Workspace], dict[str, str]],
) -> None:
    """Every host's launch template (as EC2 holds it) requires IMDSv2 and an encrypted
    gp3 root. The emulator gap: moto's fleets do not pass a template's metadata options
    and block devices on to the instances they start, so this is asserted on the
    template EC2 launches from; on AWS the instances inherit them."""
    for region in REGIONS:
        ec2 = aws.client("ec2", region)
        templates = ec2.describe_launch_templates(
            Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
        )["LaunchTemplates"]
        assert templates
        for template in templates:
            [version] = ec2.describe_launch_template_versions(
                LaunchTemplateId=template["LaunchTemplateId"]
            )["LaunchTemplateVersions"]
            data = version["LaunchTemplateData"]
            assert data["MetadataOptions"]["HttpTokens"] == "required"
            [root] = data["BlockDeviceMappings"]
            assert root["Ebs"]["Encrypted"] is True
            assert root["Ebs"]["VolumeType"] == "gp3"


def test_second_plan_has_no_changes(
    applied: tuple[list[Workspace], dict[str, str]],
) -> None:
    """A second plan of every region stack is clean, spot hosts included."""
    workspaces, _ = applied
    for workspace in workspaces:
        assert workspace.planned_changes() == {}


def test_state_read_from_a_local_backend_is_what_terraform_pulls(
    applied: tuple[list[Workspace], dict[str, str]],
) -> None:
    """Workspace.state() reads a local backend's file itself (a pull costs a
    CPU-second per stack): the same document as ``terraform state pull``, and {} for a
    stack whose state file does not exist yet."""
    workspaces, _ = applied
    for workspace in workspaces:
        pulled = subprocess.run(
            ["terraform", "state", "pull"],
            cwd=workspace.dir,
            env={**os.environ, **workspace.env},
            capture_output=True,
            text=True,
            check=True,
        )
        direct = workspace.state()
        assert direct["resources"]
        assert direct == json.loads(pulled.stdout)
    fresh = workspaces[0].dir.parent / "fresh-stack"
    fresh.mkdir()
    config = json.loads((workspaces[0].dir / "cdk.tf.json").read_text())
    config["terraform"]["backend"] = {"local": {"path": "never-applied.tfstate"}}
    (fresh / "cdk.tf.json").write_text(json.dumps(config))
    assert Workspace(fresh, fresh).state() == {}


def test_destroy_leaves_nothing(applied: tuple[list[Workspace], dict[str, str]]) -> None:
    """After destroy no host of this uuid runs and its security groups are gone."""
    workspaces, _ = applied
    for workspace in workspaces:
        workspace.destroy()
    for region in REGIONS:
        assert {i["State"]["Name"] for i in _instances(region)} <= {"terminated"}
        groups = aws.client("ec2", region).describe_security_groups(
            Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
        )["SecurityGroups"]
        assert groups == []


def test_template_syntax_in_a_tag_reaches_aws_literally(emulator: Emulator, tmp_path: Path) -> None:
    """A tag written as Terraform template syntax is stored in EC2 as written (not the
    file it names), and a second plan is clean: Terraform and AWS agree on the value."""
    amis = register_amis(("eu-west-1",))
    tags = {"probe": '${file("/etc/passwd")}', "k${x}": "%{ if true }$${kept}"}

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=tmp_path)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=amis)
        Deployment(
            stack,
            "literal",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            tags=tags,
        )

    out = synth(define, tmp_path / "cdktf.out")
    workspace = Workspace(out / "stacks/perf-ops-eu-west-1", tmp_path)
    workspace.init()
    workspace.apply()
    try:
        [host] = _instances("eu-west-1")
        assert {t["Key"]: t["Value"] for t in host["Tags"]}.items() >= tags.items()
        assert workspace.planned_changes() == {}
    finally:
        workspace.destroy()


def test_shared_s3_state_is_locked_while_a_deployer_applies(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Two deployers share one S3 state: the second is refused while the first holds the
    lock, and afterwards sees the first one's hosts as already there."""
    aws.client("s3", "eu-west-1").create_bucket(
        Bucket="team-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    amis = register_amis(("eu-west-1",))

    def deployer(name: str) -> Workspace:
        project = tmp_path / name
        project.mkdir()

        def define(app: App) -> None:
            stack = PerfOpsStack(
                app,
                "perf-ops",
                uuid=UUID,
                project_dir=project,
                backend=S3State(bucket="team-state", key="fleet.tfstate", region="eu-west-1"),
            )
            image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=amis)
            Deployment(
                stack, "steady", image=image, instance_type="t3.micro", regions={"eu-west-1": 2}
            )

        out = synth(define, project / "cdktf.out")
        workspace = Workspace(out / "stacks/perf-ops-eu-west-1", project)
        workspace.init()
        return workspace

    first, second = deployer("alice"), deployer("bob")
    s3 = aws.client("s3", "eu-west-1")
    applying = subprocess.Popen(
        ["terraform", "apply", "-auto-approve", "-input=false", "-no-color"],
        cwd=first.dir,
        env={**os.environ, **first.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = s3.list_objects_v2(Bucket="team-state").get("Contents", [])
            if any(o["Key"] == "fleet.eu-west-1.tfstate.tflock" for o in listed):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the first deployer never took the lock")
        refused = subprocess.run(
            ["terraform", "plan", "-input=false", "-no-color", "-lock-timeout=0s"],
            cwd=second.dir,
            env={**os.environ, **second.env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0
        assert "Error acquiring the state lock" in refused.stderr
    finally:
        assert applying.wait(timeout=180) == 0
    assert second.planned_changes() == {}
    second.destroy()

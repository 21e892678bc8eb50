"""Hosts for CDKTF users (Deployment.hosts, the region stacks' outputs), deployed with
the cost shown first and a lifetime set: real terraform against the emulator, checked
through boto3."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from stackkit import synth_json

from perfops_cdk import Deployment, ImageAsset, PerfOpsStack
from perfops_cdk._cdktf import TerraformOutput
from perfops_cdk.effects import aws
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.errors import InvalidField
from perfops_cdk.planners import cost, lifetime, stacks

REPO = Path(__file__).resolve().parent.parent
UUID = "outputs1"
HAS_TERRAFORM = shutil.which("terraform") is not None


def test_nested_stack_dependencies_are_read_by_name() -> None:
    """cdktf names a dependency on a region stack by its construct path; the units
    know it by name, so a stack that reads a region stack's hosts runs after it."""
    manifest = {
        "stacks": {
            "perf-ops": {
                "constructPath": "perf-ops",
                "dependencies": ["perf-ops/perf-ops-eu-west-1"],
            },
            "perf-ops-eu-west-1": {
                "constructPath": "perf-ops/perf-ops-eu-west-1",
                "dependencies": [],
            },
        }
    }
    jsons: dict[str, dict[str, Any]] = {
        "perf-ops": {"//": {"perfops": {"kind": "app", "uuid": "u1"}}, "output": {"x": {}}},
        "perf-ops-eu-west-1": {
            "//": {
                "perfops": {
                    "kind": "region",
                    "app_stack": "perf-ops",
                    "region": "eu-west-1",
                    "uuid": "u1",
                }
            }
        },
    }
    units = stacks.read_units(manifest, jsons)
    assert [u.dependencies for u in units] == [("perf-ops-eu-west-1",), ()]
    assert [[u.name for u in w] for w in stacks.waves(units)] == [
        ["perf-ops-eu-west-1"],
        ["perf-ops"],
    ]
    assert [[u.name for u in w] for w in stacks.waves(units, reverse=True)] == [
        ["perf-ops"],
        ["perf-ops-eu-west-1"],
    ]


def _web(stack: PerfOpsStack, image: ImageAsset) -> Deployment:
    return Deployment(
        stack,
        "web",
        image=image,
        instance_type="t3.micro",
        regions={"eu-west-1": 2, "us-east-1": 1},
    )


def test_hosts_are_read_after_the_fleets_and_output_per_region(tmp_path: Path) -> None:
    """Each region stack reads the deployment's live hosts by its tags once its fleets
    exist, and outputs their ids, public and private IPs."""
    stacks_json = synth_json(tmp_path, _web)
    for region in ("eu-west-1", "us-east-1"):
        data = stacks_json[f"perf-ops-{region}"]
        source = data["data"]["aws_instances"]["web_live_hosts"]
        assert source["depends_on"] == ["aws_ec2_fleet.web_hosts"]
        assert source["instance_tags"] == {
            "perf-ops": "testuuid1",
            "perf-ops:stack": "perf-ops",
            "deployment": "web",
        }
        assert source["instance_state_names"] == ["pending", "running"]
        assert {k: v["value"] for k, v in data["output"].items()} == {
            "web_instance_ids": "${data.aws_instances.web_live_hosts.ids}",
            "web_public_ips": "${data.aws_instances.web_live_hosts.public_ips}",
            "web_private_ips": "${data.aws_instances.web_live_hosts.private_ips}",
        }


def _cross_stack(stack: PerfOpsStack, image: ImageAsset) -> None:
    hosts = _web(stack, image).hosts("eu-west-1")
    TerraformOutput(stack, "web_public_ips", value=hosts.public_ips)
    TerraformOutput(stack, "web_ids", value=hosts.ids)


def test_hosts_used_from_another_stack_become_a_cross_stack_reference(tmp_path: Path) -> None:
    """The PerfOpsStack using a region's hosts reads them from the region stack's state
    (terraform_remote_state), and the manifest makes it depend on that region stack."""
    stacks_json = synth_json(tmp_path, _cross_stack)
    app = stacks_json["perf-ops"]
    [remote] = app["data"]["terraform_remote_state"].values()
    assert remote["config"]["path"] == "../../../terraform.perf-ops.eu-west-1.tfstate"
    assert "terraform_remote_state" in app["output"]["web_public_ips"]["value"]
    manifest = json.loads((tmp_path / "cdktf.out/manifest.json").read_text())
    assert manifest["stacks"]["perf-ops"]["dependencies"] == ["perf-ops/perf-ops-eu-west-1"]
    # The region stack still reads the hosts once, after its fleets, and outputs them.
    region = stacks_json["perf-ops-eu-west-1"]
    [(name, source)] = region["data"]["aws_instances"].items()
    assert name == "web_live_hosts" and source["depends_on"] == ["aws_ec2_fleet.web_hosts"]
    assert source["//"]["metadata"]["path"] == "perf-ops/perf-ops-eu-west-1/web/live-hosts"
    assert region["output"]["web_instance_ids"]["value"] == (
        "${data.aws_instances.web_live_hosts.ids}"
    )


def test_hosts_of_a_region_without_hosts_is_one_line(tmp_path: Path) -> None:
    """Asking for hosts where the deployment has none names where it has some."""

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        _web(stack, image).hosts("eu-central-1")

    with pytest.raises(InvalidField) as caught:
        synth_json(tmp_path, declare)
    assert str(caught.value) == (
        "perf-ops/web: hosts(region): 'eu-central-1' is not allowed; this deployment has "
        "hosts in: eu-west-1, us-east-1"
    )


@pytest.mark.terraform
@pytest.mark.skipif(not HAS_TERRAFORM, reason="terraform is not installed")
def test_cross_stack_use_validates(tmp_path: Path) -> None:
    """`terraform validate` accepts the region stack and the stack that reads it."""
    synth_json(tmp_path, _cross_stack)
    for name in ("perf-ops-eu-west-1", "perf-ops"):
        workspace = Workspace(tmp_path / "cdktf.out/stacks" / name, tmp_path)
        workspace.init()
        report = workspace.validate()
        assert report["valid"] is True, report["diagnostics"]


APP = """
from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack, RootVolume
from perfops_cdk._cdktf import TerraformOutput
from perfops_cdk.app import main

AMIS = {amis}


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid="outputs1")
    image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
    web = Deployment(stack, "web", image=image, instance_type="t3.micro",
                     regions={{"eu-west-1": 2}}, lifetime="2h")
    Deployment(stack, "api", image=image, instance_type="t3.small",
               regions={{"eu-west-1": 1}}, root_volume=RootVolume(size_gib=20))
    hosts = web.hosts("eu-west-1")
    TerraformOutput(stack, "web_public_ips", value=hosts.public_ips)
    TerraformOutput(stack, "web_ids", value=hosts.ids)


main(define)
"""
# Made-up numbers: the test checks that the estimate uses them, not AWS' prices.
PRICES: dict[str, Any] = {
    "source": "test table",
    "ec2": {
        "eu-west-1": {"t3.micro": {"on-demand": "0.0100"}, "t3.small": {"on-demand": "0.0200"}}
    },
    "ebs": {"eu-west-1": {"gp3": "0.0730"}},
}


class Project:
    """A project directory with its own emulator, and the perfops CLI run in it."""

    def __init__(self, root: Path, emulator: Emulator) -> None:
        self.root = root
        self.env = {**os.environ, **emulator.environment(), "PYTHONPATH": str(REPO)}
        self.env["COLUMNS"] = "200"
        ami = aws.client("ec2", "eu-west-1").register_image(
            Name="node-v1-outputs", RootDeviceName="/dev/xvda"
        )["ImageId"]
        root.mkdir(parents=True, exist_ok=True)
        (root / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
        (root / "deployments.py").write_text(APP.format(amis=repr({"eu-west-1": ami})))
        (root / "prices.json").write_text(json.dumps(PRICES))

    def perfops(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI with stderr merged into stdout, so the order of lines is kept."""
        return subprocess.run(
            [sys.executable, "-m", "perfops_cdk.cli.main", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=900,
        )

    def outputs(self, stack: str) -> dict[str, Any]:
        return Workspace(self.root / "cdktf.out/stacks" / stack, self.root).outputs()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, str]]:
    """The project deployed with `perfops deploy -y --prices`; destroyed afterwards."""
    if not HAS_TERRAFORM:
        pytest.skip("terraform is not installed")
    emulator = Emulator().start()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in emulator.environment().items():
            patch.setenv(key, value)
        project = Project(tmp_path_factory.mktemp("outputs"), emulator)
        result = project.perfops("deploy", "-y", "--prices", "prices.json")
        assert result.returncode == 0, result.stdout
        yield project, result.stdout
        destroyed = project.perfops("destroy", "-y")
        assert destroyed.returncode == 0, destroyed.stdout
    emulator.stop()


def _live() -> list[dict[str, Any]]:
    pages = (
        aws.client("ec2", "eu-west-1")
        .get_paginator("describe_instances")
        .paginate(
            Filters=[
                {"Name": "tag:perf-ops", "Values": [UUID]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
    )
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def _of(deployment: str) -> list[dict[str, Any]]:
    return [
        i
        for i in _live()
        if {t["Key"]: t["Value"] for t in i["Tags"]}.get("deployment") == deployment
    ]


def _root_gib(deployment: str) -> int:
    """The root volume size of ``deployment``'s launch template as EC2 holds it (moto
    gives the volumes themselves the AMI's size, not the template's)."""
    ec2 = aws.client("ec2", "eu-west-1")
    [template] = [
        t
        for t in ec2.describe_launch_templates(
            Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
        )["LaunchTemplates"]
        if {x["Key"]: x["Value"] for x in t["Tags"]}["deployment"] == deployment
    ]
    [version] = ec2.describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"]
    )["LaunchTemplateVersions"]
    [mapping] = version["LaunchTemplateData"]["BlockDeviceMappings"]
    size: int = mapping["Ebs"]["VolumeSize"]
    return size


def _cost(hosts: list[dict[str, Any]]) -> tuple[int, Decimal]:
    """vCPUs and USD per hour of ``hosts`` as EC2 holds them (type, and the root volume
    of their launch template), priced from the test's price file: on-demand per hour,
    gp3 per GB-month / 730."""
    ec2 = aws.client("ec2", "eu-west-1")
    table = PRICES["ec2"]["eu-west-1"]
    gp3 = Decimal(PRICES["ebs"]["eu-west-1"]["gp3"])
    cores, usd = 0, Decimal(0)
    for host in hosts:
        kind = host["InstanceType"]
        [info] = ec2.describe_instance_types(InstanceTypes=[kind])["InstanceTypes"]
        cores += info["VCpuInfo"]["DefaultVCpus"]
        deployment = {t["Key"]: t["Value"] for t in host["Tags"]}["deployment"]
        usd += Decimal(table[kind]["on-demand"]) + gp3 * _root_gib(deployment) / 730
    return cores, usd


@pytest.mark.slow
@pytest.mark.terraform
def test_deploy_shows_the_fleet_and_its_cost_before_applying(
    deployed: tuple[Project, str],
) -> None:
    """With -y, the fleet (hosts, vCPUs, price per hour from the price file) and a
    single no-lifetime line come before anything is applied."""
    _, output = deployed
    lines = output.splitlines()
    fleet = next(i for i, line in enumerate(lines) if line.startswith("fleet:"))
    applying = next(i for i, line in enumerate(lines) if line.startswith("applying"))
    assert fleet < applying
    hosts = _live()
    cores, usd = _cost(hosts)
    assert lines[fleet] == (
        f"fleet: {len(hosts)} hosts, {cores} vCPUs, {cost.usd(usd)} USD/h "
        f"({cost.usd(usd * 24)} USD/day)"
    )
    assert "prices: test table" in lines
    no_lifetime = [line for line in lines if line.startswith("no lifetime:")]
    assert no_lifetime == [
        'no lifetime: the hosts of api run until destroyed (Deployment(lifetime="8h") or '
        "PerfOpsStack(lifetime=...) makes hosts terminate themselves)"
    ]


@pytest.mark.slow
@pytest.mark.terraform
def test_region_outputs_are_the_hosts_aws_has(deployed: tuple[Project, str]) -> None:
    """`terraform output` of the region stack lists the ids and IPs boto3 sees."""
    project, _ = deployed
    outputs = project.outputs("perf-ops-eu-west-1")
    for name in ("web", "api"):
        hosts = _of(name)
        assert sorted(outputs[f"{name}_instance_ids"]) == sorted(i["InstanceId"] for i in hosts)
        assert sorted(outputs[f"{name}_public_ips"]) == sorted(i["PublicIpAddress"] for i in hosts)
        assert sorted(outputs[f"{name}_private_ips"]) == sorted(
            i["PrivateIpAddress"] for i in hosts
        )
    by_id = {i["InstanceId"]: i["PrivateIpAddress"] for i in _of("web")}
    pairs = zip(outputs["web_instance_ids"], outputs["web_private_ips"], strict=True)
    assert all(by_id[i] == ip for i, ip in pairs)


@pytest.mark.slow
@pytest.mark.terraform
def test_another_stack_reads_the_hosts_after_the_region_stack_applied(
    deployed: tuple[Project, str],
) -> None:
    """The PerfOpsStack's own outputs, built from Deployment.hosts, hold the web hosts:
    perfops deploy applied the region stack first, then the stack that reads it."""
    project, output = deployed
    outputs = project.outputs("perf-ops")
    web = _of("web")
    assert sorted(outputs["web_ids"]) == sorted(i["InstanceId"] for i in web)
    assert sorted(outputs["web_public_ips"]) == sorted(i["PublicIpAddress"] for i in web)
    lines = output.splitlines()
    assert lines.index("applying perf-ops-eu-west-1") < lines.index("checking 1 stack(s): perf-ops")


@pytest.mark.slow
@pytest.mark.terraform
def test_hosts_with_a_lifetime_terminate_on_shutdown(deployed: tuple[Project, str]) -> None:
    """The launch template EC2 holds for web terminates on shutdown and tags hosts with
    the lifetime; api's template stops (EC2's default) and tags nothing."""
    ec2 = aws.client("ec2", "eu-west-1")
    behaviours = {}
    for template in ec2.describe_launch_templates(
        Filters=[{"Name": "tag:perf-ops", "Values": [UUID]}]
    )["LaunchTemplates"]:
        [version] = ec2.describe_launch_template_versions(
            LaunchTemplateId=template["LaunchTemplateId"]
        )["LaunchTemplateVersions"]
        deployment = {t["Key"]: t["Value"] for t in template["Tags"]}["deployment"]
        data = version["LaunchTemplateData"]
        behaviours[deployment] = data.get("InstanceInitiatedShutdownBehavior")
        [spec] = [s for s in data["TagSpecifications"] if s["ResourceType"] == "instance"]
        lifetime = {t["Key"]: t["Value"] for t in spec["Tags"]}.get("perf-ops:lifetime")
        assert lifetime == ("2h" if deployment == "web" else None)
    assert behaviours["web"] == "terminate"
    assert behaviours["api"] in (None, "stop")
    for host in _of("web"):
        assert {t["Key"]: t["Value"] for t in host["Tags"]}["perf-ops:lifetime"] == "2h"


@pytest.mark.slow
@pytest.mark.terraform
def test_status_shows_the_running_cost_and_time_left(deployed: tuple[Project, str]) -> None:
    """`perfops status --prices` prices the live hosts, each row by its own hosts, and
    shows web's time left."""
    project, _ = deployed
    result = project.perfops("status", "--prices", "prices.json")
    assert result.returncode == 0, result.stdout
    header, *rows = [line for line in result.stdout.splitlines() if "\t" in line]
    cells = {
        r["deployment"]: r
        for r in (dict(zip(header.split("\t"), row.split("\t"), strict=True)) for row in rows)
    }
    now = datetime.now(UTC)
    [first] = sorted(h["LaunchTime"] for h in _of("web"))[:1]
    left = first + timedelta(hours=2) - now  # the web hosts' perf-ops:lifetime tag
    assert cells["web"]["left"] in {
        lifetime.left_text(left + timedelta(minutes=d)) for d in (-1, 0)
    }
    assert cells["api"]["left"] == "-"
    for name in ("web", "api"):
        assert cells[name]["USD/h"] == cost.usd(_cost(_of(name))[1])

"""Synthesis cost: every construct is a jsii object (round trips to the node runtime to
create, a callback to synthesize), so a deployment's blocks in a region are written as
one cdktf element (perfops_cdk/_blocks.py) instead of one construct per resource."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stackkit import AMIS, make_stack, synth_json

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack


def _constructs(project: Path, deployments: int) -> int:
    project.mkdir()
    app = App(outdir=str(project / "cdktf.out"))
    stack, image = make_stack(project, app=app)
    for index in range(deployments):
        Deployment(
            stack,
            f"load{index}",
            image=image,
            instance_type="r5d.2xlarge",
            regions={region: 30 for region in AMIS},
            security_groups=["allow-ssh", "allow-egress"],
            ssh_cidrs=["203.0.113.0/24"],
        )
    return len(app.node.find_all())


def test_a_deployment_adds_two_constructs_per_region(tmp_path: Path) -> None:
    """Security groups, launch template, data sources, fleet batches and outputs of one
    deployment in one region: the region fleet and its one element, whatever their
    number (here 2 groups, 2 batches, 3 data sources, 3 outputs per region)."""
    one = _constructs(tmp_path / "one", 1)
    three = _constructs(tmp_path / "three", 3)
    per_deployment = (three - one) / 2
    assert per_deployment == 1 + 2 * len(AMIS)


def test_synthesis_does_not_import_boto3() -> None:
    """An app that only declares and synthesizes never loads boto3 (a third of a
    second of every synth): the constructs read the endpoint from effects/endpoint.py."""
    code = (
        "import sys\n"
        "from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack\n"
        "import perfops_cdk.app, perfops_cdk.constructs.deployment\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["False", "False"]


def test_blocks_are_changed_by_address_on_the_region_stack(tmp_path: Path) -> None:
    """With no construct per resource, the region stack's add_override is how a user
    changes one of perfops' blocks (docs/ecosystem.md); it reaches the JSON as written."""

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(stack, "web", image=image, instance_type="t3.micro", regions={"eu-west-1": 3})
        stack.region_stack("eu-west-1").add_override(
            "resource.aws_ec2_fleet.web_hosts.timeouts", {"create": "20m"}
        )

    fleet = synth_json(tmp_path, declare)["perf-ops-eu-west-1"]["resource"]["aws_ec2_fleet"]
    assert fleet["web_hosts"]["timeouts"] == {"create": "20m"}
    assert fleet["web_hosts"]["type"] == "instant"

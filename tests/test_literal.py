"""Every string perfops emits reaches Terraform literally; Expression and ref() do not."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from stackkit import synth_json

from perfops_cdk import (
    App,
    Deployment,
    Expression,
    ImageAsset,
    PerfOpsStack,
    Rule,
    SecurityGroup,
    UserDataPart,
)
from perfops_cdk._cdktf import RawResource, TerraformStack, ref

INJECTION = '${file("/etc/passwd")}'
ESCAPED = '$${file("/etc/passwd")}'  # what Terraform reads back as INJECTION


def test_every_string_reaches_terraform_literally(tmp_path: Path) -> None:
    """Tags, key names, group and rule descriptions and user data are escaped where they
    are emitted: Terraform reads them back as written, never evaluates them."""
    web = SecurityGroup(
        name="web",
        description="${var.group}",
        ingress=[Rule(from_port=80, cidrs=["10.0.0.0/8"], description="${var.rule}")],
    )

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "d",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            security_groups=[web],
            tags={"probe": INJECTION, "k${x}": "%{ if x }$${already}"},
            key_name="${var.key}",
            user_data=[UserDataPart(name="env", script='echo "${HOME}" %{x}')],
            raw_attributes={"hibernation": False, "placement_group": "${var.pg}"},
        )

    resources = synth_json(tmp_path, declare)["perf-ops-eu-west-1"]["resource"]
    template = resources["aws_launch_template"]["d_template"]
    fleet = resources["aws_ec2_fleet"]["d_hosts"]
    group = resources["aws_security_group"]["d_web"]
    specs = {s["resource_type"]: s["tags"] for s in template["tag_specifications"]}
    for tags in (template["tags"], fleet["tags"], specs["instance"], specs["volume"]):
        assert tags["probe"] == ESCAPED
        assert tags["k$${x}"] == "%%{ if x }$$${already}"
    assert template["key_name"] == "$${var.key}"
    assert template["placement_group"] == "$${var.pg}"
    # user data is base64: Terraform reads nothing in it, the host gets it as written
    assert 'echo "${HOME}" %{x}' in base64.b64decode(template["user_data"]).decode()
    assert (group["description"], group["tags"]["probe"]) == ("$${var.group}", ESCAPED)
    assert group["ingress"][0]["description"] == "$${var.rule}"
    # perfops' own expressions still reach Terraform as expressions
    assert template["vpc_security_group_ids"] == ["${aws_security_group.d_web.id}"]
    assert fleet["target_capacity_specification"]["total_target_capacity"] == (
        "${each.value.hosts}"
    )


def test_expression_in_raw_attributes_is_emitted_as_written(tmp_path: Path) -> None:
    """Expression is the one way to hand Terraform an expression on purpose."""

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "d",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            raw_attributes={
                "placement_group": Expression("${aws_placement_group.pg.id}"),
                "credit_specification": {"cpu_credits": Expression("${var.credits}")},
            },
        )

    stacks = synth_json(tmp_path, declare)
    template = stacks["perf-ops-eu-west-1"]["resource"]["aws_launch_template"]["d_template"]
    assert template["placement_group"] == "${aws_placement_group.pg.id}"
    assert template["credit_specification"] == {"cpu_credits": "${var.credits}"}


def test_references_in_raw_resources_still_resolve(tmp_path: Path) -> None:
    """Escaping leaves cdktf's tokens alone: a ref() inside a string still becomes a
    Terraform reference, while the literal text around it is escaped."""
    app = App(outdir=str(tmp_path))
    stack = TerraformStack(app, "s")
    first = RawResource(stack, "a", resource_type="null_resource", attributes={})
    RawResource(
        stack,
        "b",
        resource_type="null_resource",
        attributes={
            "triggers": {
                "id": ref(first, "id"),
                "mixed": f"${{x}}-{ref(first, 'id')}-%{{y}}",
                "list": [ref(first, "id"), "${z}"],
                "dollar": f"${ref(first, 'id')}",
                "literal": Expression("${var.kept}"),
            }
        },
    )
    app.synth()
    synthesized = json.loads((tmp_path / "stacks/s/cdk.tf.json").read_text())
    assert synthesized["resource"]["null_resource"]["b"]["triggers"] == {
        "id": "${null_resource.a.id}",
        "mixed": "$${x}-${null_resource.a.id}-%%{y}",
        "list": ["${null_resource.a.id}", "$${z}"],
        "dollar": '${"$"}${null_resource.a.id}',  # not the escape "$${"
        "literal": "${var.kept}",
    }

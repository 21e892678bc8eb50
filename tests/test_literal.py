"""Every string perfops emits reaches Terraform literally; Expression and ref() do not."""

from __future__ import annotations

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

    resources = synth_json(tmp_path, declare)["resource"]
    host = resources["aws_instance"]["d_euwest1"]
    group = resources["aws_security_group"]["d_euwest1_web"]
    assert host["tags"]["probe"] == ESCAPED
    assert host["tags"]["k$${x}"] == "%%{ if x }$$${already}"
    assert host["root_block_device"]["tags"]["probe"] == ESCAPED
    assert host["key_name"] == "$${var.key}"
    assert host["placement_group"] == "$${var.pg}"
    assert 'echo "$${HOME}" %%{x}' in host["user_data"]
    assert (group["description"], group["tags"]["probe"]) == ("$${var.group}", ESCAPED)
    assert group["ingress"][0]["description"] == "$${var.rule}"
    # perfops' own expressions still reach Terraform as expressions
    assert host["tags"]["Name"].endswith("-${count.index}")
    assert host["vpc_security_group_ids"] == ["${aws_security_group.d_euwest1_web.id}"]


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

    host = synth_json(tmp_path, declare)["resource"]["aws_instance"]["d_euwest1"]
    assert host["placement_group"] == "${aws_placement_group.pg.id}"
    assert host["credit_specification"] == {"cpu_credits": "${var.credits}"}


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

"""What a declaration synthesizes to: resources, providers, tags and safe defaults."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stackkit import AMIS, UUID, resources, synth_json

from perfops_cdk import (
    App,
    Capacity,
    Deployment,
    ImageAsset,
    PerfOpsStack,
    RootVolume,
    S3State,
    Spot,
    UserDataPart,
)
from perfops_cdk._cdktf import Construct
from perfops_cdk.app import main
from perfops_cdk.effects.aws import EMULATOR_ACCOUNT_ID
from perfops_cdk.effects.terraform import terraform_env

REPO = Path(__file__).resolve().parent.parent


def two_region_fleet(stack: PerfOpsStack, image: ImageAsset) -> None:
    Deployment(
        stack,
        "preSync",
        image=image,
        instance_type="r5d.2xlarge",
        regions={"eu-west-1": 1, "us-east-1": 2, "eu-central-1": 0},
        security_groups=["allow-ssh", "allow-egress"],
        ssh_cidrs=["203.0.113.0/24"],
        root_volume=RootVolume(size_gib=100, volume_type="gp3"),
        tags={"team": "perf"},
    )


def test_one_region_stack_per_region_with_hosts(tmp_path: Path) -> None:
    """Each region with hosts gets its own stack with one provider for that region; a
    region with 0 hosts gets none; the PerfOpsStack itself holds only its backend."""
    stacks = synth_json(tmp_path, two_region_fleet)
    assert set(stacks) == {"perf-ops", "perf-ops-eu-west-1", "perf-ops-us-east-1"}
    for region in ("eu-west-1", "us-east-1"):
        data = stacks[f"perf-ops-{region}"]
        assert data["provider"]["aws"] == [{"region": region}]
        assert data["terraform"]["required_providers"]["aws"] == {
            "source": "hashicorp/aws",
            "version": "5.100.0",
        }
    assert "resource" not in stacks["perf-ops"] and "provider" not in stacks["perf-ops"]


def test_hosts_are_batched_fleets_of_the_region_ami(tmp_path: Path) -> None:
    """Per region: one launch template with that region's AMI and instant fleets of at
    most 25 hosts each, keyed by batch."""

    def big(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "load",
            image=image,
            instance_type="r5d.2xlarge",
            regions={"eu-west-1": 60, "us-east-1": 2},
        )

    stacks = synth_json(tmp_path, big)
    for region, batches in (
        ("eu-west-1", {"0": 25, "1": 25, "2": 10}),
        ("us-east-1", {"0": 2}),
    ):
        resource = stacks[f"perf-ops-{region}"]["resource"]
        template = resource["aws_launch_template"]["load_template"]
        assert template["image_id"] == AMIS[region]
        assert template["instance_type"] == "r5d.2xlarge"
        fleet = resource["aws_ec2_fleet"]["load_hosts"]
        assert fleet["type"] == "instant" and fleet["terminate_instances"] is True
        assert {k: v["hosts"] for k, v in fleet["for_each"].items()} == batches
        assert fleet["target_capacity_specification"]["default_target_capacity_type"] == (
            "on-demand"
        )
        assert fleet["lifecycle"]["replace_triggered_by"] == ["terraform_data.load_spec[each.key]"]


def test_imdsv2_required_and_root_volume_encrypted(tmp_path: Path) -> None:
    """Safe defaults: IMDSv2 tokens required, encrypted root of the declared size and type."""
    templates = resources(synth_json(tmp_path, two_region_fleet), "aws_launch_template")
    assert len(templates) == 2
    for template in templates.values():
        assert template["metadata_options"]["http_tokens"] == "required"
        assert template["metadata_options"]["http_endpoint"] == "enabled"
        [root] = template["block_device_mappings"]
        ebs = root["ebs"]
        assert (ebs["encrypted"], ebs["volume_size"], ebs["volume_type"]) == ("true", 100, "gp3")
        assert root["device_name"] == "${data.aws_ami.preSync_ami.root_device_name}"


def test_every_resource_is_tagged(tmp_path: Path) -> None:
    """Groups, templates, fleets, hosts and volumes carry Name, the uuid, the stack,
    deployment, image and managed-by, and the user's tags."""
    stacks = synth_json(tmp_path, two_region_fleet)
    templates = resources(stacks, "aws_launch_template").values()
    tagged = [
        *resources(stacks, "aws_security_group").values(),
        *resources(stacks, "aws_ec2_fleet").values(),
        *templates,
        *(spec for t in templates for spec in t["tag_specifications"]),
    ]
    assert {s["resource_type"] for t in templates for s in t["tag_specifications"]} == {
        "instance",
        "volume",
        "spot-instances-request",
    }
    for resource in tagged:
        tags = resource["tags"]
        assert tags["perf-ops"] == UUID
        assert tags["perf-ops:stack"] == "perf-ops"
        assert tags["deployment"] == "preSync"
        assert tags["image"] == "node-v1"
        assert tags["managed-by"] == "perfops_cdk"
        assert tags["team"] == "perf"
        assert tags["Name"].startswith(f"perf-ops-{UUID}-perf-ops-preSync-")
    [template] = [t for k, t in resources(stacks, "aws_launch_template").items() if "us-east" in k]
    assert template["tags"]["Name"] == f"perf-ops-{UUID}-perf-ops-preSync-us-east-1"


def test_security_groups_per_region_named_with_uuid_and_stack(tmp_path: Path) -> None:
    """Each deployment gets its groups in each region, named so that neither two
    deployers nor two stacks of one deployer collide."""
    stacks = synth_json(tmp_path, two_region_fleet)
    groups = stacks["perf-ops-eu-west-1"]["resource"]["aws_security_group"]
    assert set(groups) == {"preSync_allow-ssh", "preSync_allow-egress"}
    ssh = groups["preSync_allow-ssh"]
    assert ssh["name"] == f"perf-ops-{UUID}-perf-ops-preSync-allow-ssh"
    assert [r["cidr_blocks"] for r in ssh["ingress"]] == [["203.0.113.0/24"]]
    assert [r["from_port"] for r in ssh["ingress"]] == [22]
    assert ssh["egress"] == []
    assert groups["preSync_allow-egress"]["ingress"] == []
    template = stacks["perf-ops-eu-west-1"]["resource"]["aws_launch_template"]["preSync_template"]
    assert template["vpc_security_group_ids"] == [
        "${aws_security_group.preSync_allow-ssh.id}",
        "${aws_security_group.preSync_allow-egress.id}",
    ]


def test_no_ingress_from_anywhere_unless_written(tmp_path: Path) -> None:
    """By default nothing admits traffic from 0.0.0.0/0; writing it explicitly does."""

    def default_groups(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(stack, "d", image=image, instance_type="t3.micro", regions={"eu-west-1": 1})

    def open_ssh(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "d",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            security_groups=["allow-ssh"],
            ssh_cidrs=["0.0.0.0/0"],
        )

    def ingress(stacks: dict[str, dict[str, Any]]) -> list[str]:
        groups = resources(stacks, "aws_security_group").values()
        return [c for g in groups for r in g["ingress"] for c in r["cidr_blocks"]]

    assert ingress(synth_json(tmp_path / "a", default_groups)) == []
    assert ingress(synth_json(tmp_path / "b", open_ssh)) == ["0.0.0.0/0"]


def test_spot_user_data_key_and_raw_attributes(tmp_path: Path) -> None:
    """Spot capacity, ordered user data, key pair and raw passthrough reach the hosts."""

    def spot(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "spot",
            image=image,
            instance_type="c5.large",
            regions={"eu-west-1": 1},
            spot=Spot(max_price="0.05"),
            key_name="ops",
            user_data=[
                UserDataPart(name="late", script="echo late", order=90),
                UserDataPart(name="early", script="echo early", order=10),
            ],
            raw_attributes={"ebs_optimized": "true"},
        )

    resource = synth_json(tmp_path, spot)["perf-ops-eu-west-1"]["resource"]
    fleet = resource["aws_ec2_fleet"]["spot_hosts"]
    assert fleet["target_capacity_specification"]["default_target_capacity_type"] == "spot"
    assert fleet["spot_options"] == {
        "allocation_strategy": "price-capacity-optimized",
        "instance_interruption_behavior": "terminate",
    }
    override = fleet["launch_template_config"][0]["dynamic"]["override"]["content"]
    assert override["max_price"] == "0.05"
    template = resource["aws_launch_template"]["spot_template"]
    assert template["key_name"] == "ops"
    assert template["ebs_optimized"] == "true"
    script = base64.b64decode(template["user_data"]).decode()
    assert script.startswith("#!/bin/sh\n")
    assert script.index("echo early") < script.index("echo late")


def test_capacity_spreads_types_and_buys_an_on_demand_base(tmp_path: Path) -> None:
    """Capacity.spot lists every acceptable type, and its on-demand base fills the
    first batches; the smallest type is the template's default."""

    def mixed(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack,
            "mixed",
            image=image,
            capacity=Capacity.spot(
                "r5d.2xlarge", "r5ad.2xlarge", "r5d.xlarge", on_demand_base=30, batch_size=20
            ),
            regions={"eu-west-1": 50},
        )

    resource = synth_json(tmp_path, mixed)["perf-ops-eu-west-1"]["resource"]
    fleet = resource["aws_ec2_fleet"]["mixed_hosts"]
    assert fleet["for_each"] == {
        "0": {"hosts": 20, "on_demand": 20},
        "1": {"hosts": 20, "on_demand": 10},
        "2": {"hosts": 10, "on_demand": 0},
    }
    offerings = synth_json(tmp_path, mixed)["perf-ops-eu-west-1"]["data"][
        "aws_ec2_instance_type_offerings"
    ]["mixed_offerings"]
    assert offerings["filter"] == [
        {"name": "instance-type", "values": ["r5d.2xlarge", "r5ad.2xlarge", "r5d.xlarge"]}
    ]
    assert resource["aws_launch_template"]["mixed_template"]["instance_type"] == "r5d.xlarge"


def test_template_name_follows_its_content(tmp_path: Path) -> None:
    """A template is never updated in place: its name carries a hash of its content, so
    a new AMI or user data is a new template, and the same content the same name."""

    def with_part(text: str) -> Callable[[PerfOpsStack, ImageAsset], None]:
        def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
            Deployment(
                stack,
                "d",
                image=image,
                instance_type="t3.micro",
                regions={"eu-west-1": 1},
                user_data=[UserDataPart(name="p", script=text)],
            )

        return declare

    def name(text: str, project: Path) -> str:
        stacks = synth_json(project, with_part(text))
        return str(
            stacks["perf-ops-eu-west-1"]["resource"]["aws_launch_template"]["d_template"]["name"]
        )

    first = name("echo one", tmp_path / "a")
    assert first.startswith(f"perf-ops-{UUID}-perf-ops-d-")
    assert name("echo one", tmp_path / "b") == first
    assert name("echo two", tmp_path / "c") != first


def test_region_dropped_from_the_code_keeps_an_empty_stack(tmp_path: Path) -> None:
    """A region that had hosts stays as an empty region stack (provider and backend,
    no resources) until perfops saw Terraform empty it, so its hosts can be destroyed."""
    synth_json(tmp_path, two_region_fleet)

    def west_only(stack: PerfOpsStack, image: ImageAsset) -> None:
        Deployment(
            stack, "preSync", image=image, instance_type="t3.micro", regions={"eu-west-1": 1}
        )

    stacks = synth_json(tmp_path, west_only)
    east = stacks["perf-ops-us-east-1"]
    assert east["provider"]["aws"] == [{"region": "us-east-1"}]
    assert "resource" not in east
    assert east["//"]["perfops"]["deployments"] == {}
    assert "resource" in stacks["perf-ops-eu-west-1"]


def test_deployments_in_constructs_of_their_own_are_named_by_their_path(
    tmp_path: Path,
) -> None:
    """Any construct under a PerfOpsStack is a valid scope; names join the path below
    the stack, so two "web" deployments in different groups stay apart."""

    def grouped(stack: PerfOpsStack, image: ImageAsset) -> None:
        for group in ("blue", "green"):
            Deployment(
                Construct(stack, group),
                "web",
                image=image,
                instance_type="t3.micro",
                regions={"eu-west-1": 1},
            )

    stacks = synth_json(tmp_path, grouped)
    groups = resources(stacks, "aws_security_group").values()
    assert sorted(g["name"] for g in groups) == [
        f"perf-ops-{UUID}-perf-ops-blue-web-allow-egress",
        f"perf-ops-{UUID}-perf-ops-green-web-allow-egress",
    ]
    assert {g["tags"]["deployment"] for g in groups} == {"blue-web", "green-web"}


def test_no_credentials_in_synth_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials in the environment never reach the synthesized JSON."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASENTINELKEY00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel/secret/value")
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", "http://127.0.0.1:4566")
    text = json.dumps(synth_json(tmp_path, two_region_fleet))
    assert "AKIASENTINELKEY00001" not in text
    assert "sentinel/secret/value" not in text
    assert "access_key" not in text and "secret_key" not in text


def test_emulator_endpoint_only_when_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PERFOPS_AWS_ENDPOINT makes a rehearsal: its providers are pinned to the emulator's
    account (a rehearsal's output applied against a real account fails before anything
    is created) and carry no ``endpoints`` block: Terraform gets the endpoint from
    AWS_ENDPOINT_URL, because the provider spends ~3 CPU-seconds validating that block
    on every start (docs/design.md). Without the variable, providers are plain."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    plain = synth_json(tmp_path / "a", two_region_fleet)
    assert plain["perf-ops-eu-west-1"]["provider"]["aws"] == [{"region": "eu-west-1"}]
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", "http://127.0.0.1:4566")
    local = synth_json(tmp_path / "b", two_region_fleet)
    for region in ("eu-west-1", "us-east-1"):
        [provider] = local[f"perf-ops-{region}"]["provider"]["aws"]
        assert "endpoints" not in provider
        assert provider["allowed_account_ids"] == [EMULATOR_ACCOUNT_ID]
        assert "skip_requesting_account_id" not in provider
        assert "skip_credentials_validation" not in provider


def test_terraform_gets_the_emulator_endpoint_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a rehearsal every Terraform run perfops starts has AWS_ENDPOINT_URL; outside
    one it has none."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    assert "AWS_ENDPOINT_URL" not in terraform_env()
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", "http://127.0.0.1:4566")
    assert terraform_env()["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"


def test_emulator_state_lives_apart_from_the_account_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the emulator, Terraform state, the ledger and the AMI state live under
    .perfops/emulator/<host>_<port>/: a rehearsal never leaks into a real deploy."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    real = synth_json(tmp_path, two_region_fleet)["perf-ops-eu-west-1"]
    assert real["terraform"]["backend"]["local"]["path"] == (
        "../../../terraform.perf-ops.eu-west-1.tfstate"
    )
    assert (tmp_path / "perfops-stacks.json").is_file()
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", "http://127.0.0.1:4566")
    rehearsal = synth_json(tmp_path, two_region_fleet)["perf-ops-eu-west-1"]
    assert rehearsal["terraform"]["backend"]["local"]["path"] == (
        "../../../.perfops/emulator/127.0.0.1_4566/terraform.perf-ops.eu-west-1.tfstate"
    )
    assert (tmp_path / ".perfops/emulator/127.0.0.1_4566/perfops-stacks.json").is_file()


def test_local_state_by_default_and_s3_backend_with_lockfile(tmp_path: Path) -> None:
    """State is local in the project by default; S3State uses S3 with an S3 lock file."""
    stacks = synth_json(tmp_path, two_region_fleet)
    assert stacks["perf-ops"]["terraform"]["backend"] == {
        "local": {"path": "../../../terraform.perf-ops.tfstate"}
    }
    assert stacks["perf-ops-us-east-1"]["terraform"]["backend"] == {
        "local": {"path": "../../../terraform.perf-ops.us-east-1.tfstate"}
    }

    def define(app: App) -> None:
        stack = PerfOpsStack(
            app,
            "perf-ops",
            uuid=UUID,
            project_dir=tmp_path / "team",
            backend=S3State(bucket="team-state", key="perf/fleet.tfstate", region="eu-west-1"),
        )
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
        two_region_fleet(stack, image)

    from perfops_cdk.app import synth

    out = synth(define, tmp_path / "s3.out")
    for stack, key in (
        ("perf-ops", "perf/fleet.tfstate"),
        ("perf-ops-eu-west-1", "perf/fleet.eu-west-1.tfstate"),
    ):
        data = json.loads((out / f"stacks/{stack}/cdk.tf.json").read_text())
        backend = data["terraform"]["backend"]["s3"]
        assert (backend["bucket"], backend["key"]) == ("team-state", key)
        assert backend["use_lockfile"] is True
        assert backend["encrypt"] is True


def test_failed_synth_leaves_previous_output_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad declaration exits 2 with one line and the earlier cdktf.out stays whole."""
    out = tmp_path / "cdktf.out"

    def good(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=tmp_path)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
        two_region_fleet(stack, image)

    def bad(app: App) -> None:
        good(app)
        stack = app.node.find_child("perf-ops")
        assert isinstance(stack, PerfOpsStack)
        Deployment(
            stack,
            "broken",
            image=ImageAsset.all_in(stack)[0],
            instance_type="t3.micro",
            regions={"eu-wset-1": 1},
        )

    os.environ["CDKTF_OUTDIR"] = str(out)
    try:
        main(good, [])
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        with pytest.raises(SystemExit) as exit_info:
            main(bad, [])
    finally:
        del os.environ["CDKTF_OUTDIR"]
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: perf-ops/broken: regions: 'eu-wset-1'")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cdktf.out")]


def test_deployments_script_exits_2_without_traceback(tmp_path: Path) -> None:
    """`python deployments.py` with a typo prints one line and exits 2."""
    script = tmp_path / "deployments.py"
    script.write_text(
        textwrap.dedent(f"""
        from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
        from perfops_cdk.app import main

        def define(app: App) -> None:
            stack = PerfOpsStack(app, "perf-ops", uuid="{UUID}")
            image = ImageAsset.from_ami_ids(stack, "node", name="node-v1",
                                            ami_ids={{"eu-west-1": "ami-0123abcd"}})
            Deployment(stack, "d1", image=image, instance_type="t3.micro",
                       regions={{"eu-west-1": 1}}, ssh_cidrs=["10.0.0.1/8"])

        main(define)
    """)
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: perf-ops/d1: ssh_cidrs: '10.0.0.1/8' is not allowed; has host bits set; "
        "did you mean '10.0.0.0/8'?"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cdktf.out").exists()


def test_resynth_keeps_terraform_lock_file_and_working_dir(tmp_path: Path) -> None:
    """Like the cdktf CLI, a new synth keeps each stack's lock file and .terraform."""
    stack_dir = tmp_path / "cdktf.out" / "stacks" / "perf-ops-eu-west-1"
    synth_json(tmp_path, two_region_fleet)
    (stack_dir / ".terraform.lock.hcl").write_text("# lock\n")
    (stack_dir / ".terraform").mkdir()
    synth_json(tmp_path, two_region_fleet)
    assert (stack_dir / ".terraform.lock.hcl").read_text() == "# lock\n"
    assert (stack_dir / ".terraform").is_dir()
    assert (stack_dir / "cdk.tf.json").exists()


def test_error_annotations_fail_synth_as_one_line(tmp_path: Path) -> None:
    """cdktf error Annotations are a one-line PerfOpsError naming the first construct and
    how many more there are; nothing is written."""
    from cdktf import Annotations

    from perfops_cdk import PerfOpsError
    from perfops_cdk.app import synth

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=tmp_path)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
        Annotations.of(image).add_error("not\nallowed here")
        Annotations.of(stack).add_error("nor this")

    with pytest.raises(PerfOpsError) as caught:
        synth(define, tmp_path / "cdktf.out")
    assert str(caught.value) in (
        "perf-ops/node: not allowed here (and 1 more)",
        "perf-ops: nor this (and 1 more)",
    )
    assert not (tmp_path / "cdktf.out").exists()


def test_warnings_reach_the_caller_as_data(tmp_path: Path) -> None:
    """synth() hands warning annotations to its caller (main prints them) after writing."""
    from perfops_cdk._cdktf import Annotation
    from perfops_cdk.app import synth

    def define(app: App) -> None:
        stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=tmp_path)
        image = ImageAsset.from_ami_ids(stack, "node", name="node-v1", ami_ids=AMIS)
        Deployment(
            stack,
            "d",
            image=image,
            instance_type="t3.micro",
            regions={"eu-west-1": 1},
            ssh_cidrs=["10.0.0.0/8"],
        )

    seen: list[Annotation] = []
    synth(define, tmp_path / "cdktf.out", on_annotation=seen.append)
    assert [(a.level, a.path) for a in seen] == [("warning", "perf-ops/d")]
    assert seen[0].message.startswith("ssh_cidrs: ['10.0.0.0/8'] admit nothing")

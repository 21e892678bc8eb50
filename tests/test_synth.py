"""What a declaration synthesizes to: resources, providers, tags and safe defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from stackkit import AMIS, UUID, synth_json

from perfops_cdk import (
    App,
    Deployment,
    ImageAsset,
    PerfOpsStack,
    RootVolume,
    S3State,
    Spot,
    UserDataPart,
)
from perfops_cdk.app import main

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


def test_one_aliased_provider_per_region_with_hosts(tmp_path: Path) -> None:
    """Regions with hosts get one aws provider each; a region with 0 hosts gets none."""
    data = synth_json(tmp_path, two_region_fleet)
    providers = {p["alias"]: p["region"] for p in data["provider"]["aws"]}
    assert providers == {"euwest1": "eu-west-1", "useast1": "us-east-1"}
    assert data["terraform"]["required_providers"]["aws"] == {
        "source": "hashicorp/aws",
        "version": "5.100.0",
    }


def test_hosts_per_region_with_the_region_ami_and_provider(tmp_path: Path) -> None:
    """One aws_instance per region, counted, with that region's AMI and provider."""
    instances = synth_json(tmp_path, two_region_fleet)["resource"]["aws_instance"]
    assert set(instances) == {"preSync_euwest1", "preSync_useast1"}
    west, east = instances["preSync_euwest1"], instances["preSync_useast1"]
    assert (west["count"], west["ami"], west["provider"]) == (1, AMIS["eu-west-1"], "aws.euwest1")
    assert (east["count"], east["ami"], east["provider"]) == (2, AMIS["us-east-1"], "aws.useast1")
    assert west["instance_type"] == "r5d.2xlarge"


def test_imdsv2_required_and_root_volume_encrypted(tmp_path: Path) -> None:
    """Safe defaults: IMDSv2 tokens required, encrypted root of the declared size and type."""
    for instance in synth_json(tmp_path, two_region_fleet)["resource"]["aws_instance"].values():
        assert instance["metadata_options"]["http_tokens"] == "required"
        assert instance["metadata_options"]["http_endpoint"] == "enabled"
        root = instance["root_block_device"]
        assert (root["encrypted"], root["volume_size"], root["volume_type"]) == (True, 100, "gp3")
        assert "instance_market_options" not in instance


def test_every_resource_is_tagged(tmp_path: Path) -> None:
    """Hosts, volumes and groups carry Name, perf-ops uuid, deployment, image, managed-by."""
    resources = synth_json(tmp_path, two_region_fleet)["resource"]
    tagged = [*resources["aws_instance"].values(), *resources["aws_security_group"].values()]
    tagged += [i["root_block_device"] for i in resources["aws_instance"].values()]
    for resource in tagged:
        tags = resource["tags"]
        assert tags["perf-ops"] == UUID
        assert tags["deployment"] == "preSync"
        assert tags["image"] == "node-v1"
        assert tags["managed-by"] == "perfops_cdk"
        assert tags["team"] == "perf"
        assert tags["Name"].startswith(f"perf-ops-{UUID}-preSync-")
    host = resources["aws_instance"]["preSync_useast1"]["tags"]["Name"]
    assert host == f"perf-ops-{UUID}-preSync-us-east-1-${{count.index}}"


def test_security_groups_per_region_named_with_uuid(tmp_path: Path) -> None:
    """Each deployment gets its groups in each region, named so deployers never collide."""
    groups = synth_json(tmp_path, two_region_fleet)["resource"]["aws_security_group"]
    assert set(groups) == {
        f"preSync_{r}_{g}" for r in ("euwest1", "useast1") for g in ("allow-ssh", "allow-egress")
    }
    ssh = groups["preSync_euwest1_allow-ssh"]
    assert ssh["name"] == f"perf-ops-{UUID}-preSync-allow-ssh"
    assert [r["cidr_blocks"] for r in ssh["ingress"]] == [["203.0.113.0/24"]]
    assert [r["from_port"] for r in ssh["ingress"]] == [22]
    assert ssh["egress"] == []
    assert groups["preSync_euwest1_allow-egress"]["ingress"] == []
    host = synth_json(tmp_path, two_region_fleet)["resource"]["aws_instance"]["preSync_euwest1"]
    assert host["vpc_security_group_ids"] == [
        "${aws_security_group.preSync_euwest1_allow-ssh.id}",
        "${aws_security_group.preSync_euwest1_allow-egress.id}",
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

    def ingress(data: dict[str, Any]) -> list[str]:
        groups = data["resource"]["aws_security_group"].values()
        return [c for g in groups for r in g["ingress"] for c in r["cidr_blocks"]]

    assert ingress(synth_json(tmp_path / "a", default_groups)) == []
    assert ingress(synth_json(tmp_path / "b", open_ssh)) == ["0.0.0.0/0"]


def test_spot_user_data_key_and_raw_attributes(tmp_path: Path) -> None:
    """Spot market options, ordered user data, key pair and raw passthrough reach the host."""

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
            raw_attributes={"ebs_optimized": True},
        )

    host = synth_json(tmp_path, spot)["resource"]["aws_instance"]["spot_euwest1"]
    assert host["instance_market_options"] == {
        "market_type": "spot",
        "spot_options": {
            "spot_instance_type": "one-time",
            "instance_interruption_behavior": "terminate",
            "max_price": "0.05",
        },
    }
    assert host["key_name"] == "ops"
    assert host["ebs_optimized"] is True
    script = host["user_data"]
    assert script.startswith("#!/bin/sh\n")
    assert script.index("echo early") < script.index("echo late")


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
    """PERFOPS_AWS_ENDPOINT points every provider at the emulator; without it, none does."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    plain = synth_json(tmp_path / "a", two_region_fleet)["provider"]["aws"]
    assert all(set(p) == {"alias", "region"} for p in plain)
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", "http://127.0.0.1:4566")
    local = synth_json(tmp_path / "b", two_region_fleet)["provider"]["aws"]
    for provider in local:
        assert provider["endpoints"] == [
            {s: "http://127.0.0.1:4566" for s in ("ec2", "s3", "sts", "iam")}
        ]
        assert provider["skip_credentials_validation"] is True


def test_local_state_by_default_and_s3_backend_with_lockfile(tmp_path: Path) -> None:
    """State is local in the project by default; S3State uses S3 with an S3 lock file."""
    data = synth_json(tmp_path, two_region_fleet)
    assert data["terraform"]["backend"] == {
        "local": {"path": str(tmp_path / "terraform.perf-ops.tfstate")}
    }

    def define(app: App) -> None:
        PerfOpsStack(
            app,
            "perf-ops",
            uuid=UUID,
            project_dir=tmp_path,
            backend=S3State(bucket="team-state", key="perf/fleet.tfstate", region="eu-west-1"),
        )

    from perfops_cdk.app import synth

    out = synth(define, tmp_path / "s3.out")
    backend = json.loads((out / "stacks/perf-ops/cdk.tf.json").read_text())["terraform"]["backend"]
    assert backend["s3"]["bucket"] == "team-state"
    assert backend["s3"]["use_lockfile"] is True
    assert backend["s3"]["encrypt"] is True


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
            image=stack.images[0],
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
    stack_dir = tmp_path / "cdktf.out" / "stacks" / "perf-ops"
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

"""Day two: every edit of the app converges with one ``perfops deploy``, and destroy
proves nothing is left. Real Terraform against the emulator; judged by what AWS holds.

Slow (each deploy runs Terraform per region stack): about a minute per test here.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fleetkit import (
    MOTO_AMI,
    UUID,
    Fleet,
    assert_converged,
    groups,
    live_hosts,
    tagged,
)

from perfops_cdk.effects import aws, terraform
from perfops_cdk.effects.emulator import Emulator, running_emulator
from perfops_cdk.effects.terraform import cli_config

pytestmark = [
    pytest.mark.terraform,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]


@pytest.fixture
def fleet(emulator: Emulator, tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "project")


def test_region_scaled_to_zero_then_dropped_converges(fleet: Fleet) -> None:
    """A region set to 0 loses its hosts and groups; dropping it from the code and
    adding another region converges too; destroy leaves nothing."""
    steps = [
        {"perf-ops": {"web": {"regions": {"eu-west-1": 2, "us-east-1": 1}}}},
        {"perf-ops": {"web": {"regions": {"eu-west-1": 2, "us-east-1": 0}}}},
        {"perf-ops": {"web": {"regions": {"eu-central-1": 1}}}},
    ]
    for declaration in steps:
        fleet.declare(declaration)
        fleet.deploy()
        assert_converged(declaration)
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "nothing left" in destroyed.stdout
    assert tagged() == []


def _checked_regions(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Regions whose vCPU quota the preflight looked up (the emulator cannot answer an
    EC2 quota, so the looked-up regions say so in one line, among the progress)."""
    pattern = r"^((?:[a-z]{2}-[a-z]+-\d(?:, )?)+): on-demand vCPU quota"
    return {r for found in re.findall(pattern, result.stderr, re.M) for r in found.split(", ")}


def test_preflight_checks_only_the_region_stacks_that_change(fleet: Fleet) -> None:
    """The preflight runs for the region stacks a deploy applies, not for those
    unchanged since their last apply: a no-change deploy looks nothing up, and scaling
    one region checks that region only."""
    first = {"perf-ops": {"web": {"regions": {"eu-west-1": 1, "us-east-1": 1}}}}
    fleet.declare(first)
    assert _checked_regions(fleet.deploy()) == {"eu-west-1", "us-east-1"}
    again = fleet.deploy()
    assert _checked_regions(again) == set()
    assert "deploy: no changes" in again.stdout
    scaled = {"perf-ops": {"web": {"regions": {"eu-west-1": 2, "us-east-1": 1}}}}
    fleet.declare(scaled)
    assert _checked_regions(fleet.deploy()) == {"eu-west-1"}
    assert_converged(scaled)


def test_deployment_renamed_then_removed_converges(fleet: Fleet) -> None:
    """Renaming a deployment replaces its hosts under the new name; removing the last
    deployment of a stack destroys its region stacks' resources."""
    first = {"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}}
    renamed = {"perf-ops": {"api": {"regions": {"eu-west-1": 1}}}}
    fleet.declare(first)
    fleet.deploy()
    assert_converged(first)
    fleet.declare(renamed)
    fleet.deploy()
    assert_converged(renamed)
    fleet.declare({"perf-ops": {}})
    fleet.deploy()
    assert tagged() == []


def test_stack_removed_from_the_app_is_destroyed_by_the_next_deploy(fleet: Fleet) -> None:
    """A PerfOpsStack deleted from the code is emptied by the next deploy (from what the
    ledger recorded), and the other stack is left as it was."""
    both = {
        "alpha": {"web": {"regions": {"eu-west-1": 1}}},
        "beta": {"web": {"regions": {"eu-west-1": 1, "us-east-1": 1}}},
    }
    fleet.declare(both)
    fleet.deploy()
    assert_converged(both)
    alpha_hosts = {k: v for k, v in live_hosts().items() if k[0] == "alpha"}
    only_alpha = {"alpha": both["alpha"]}
    fleet.declare(only_alpha)
    fleet.deploy()
    assert_converged(only_alpha)
    assert {k: v for k, v in live_hosts().items() if k[0] == "alpha"} == alpha_hosts


def test_image_swap_replaces_the_hosts(fleet: Fleet) -> None:
    """Hosts boot the new AMI after the image changes; nothing of the old one runs."""
    new_ami = aws.client("ec2", "eu-west-1").register_image(
        Name="node-v2-test", RootDeviceName="/dev/xvda", VirtualizationType="hvm"
    )["ImageId"]
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 2}}}}
    fleet.declare(declaration)
    fleet.deploy()
    fleet.images = {"node": {**fleet.images["node"], "eu-west-1": new_ami}}
    fleet.declare(declaration)
    fleet.deploy()
    assert_converged(declaration)
    reservations = aws.client("ec2", "eu-west-1").describe_instances(
        Filters=[
            {"Name": "tag:perf-ops", "Values": [UUID]},
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
        ]
    )["Reservations"]
    assert {i["ImageId"] for r in reservations for i in r["Instances"]} == {new_ami}


def test_same_deployment_id_in_two_stacks_do_not_collide(fleet: Fleet) -> None:
    """Two stacks of one uuid may both have a "web": names, tags and status keep them
    apart, and destroying one stack leaves the other's hosts."""
    both = {
        "alpha": {"web": {"regions": {"eu-west-1": 1}}},
        "beta": {"web": {"regions": {"eu-west-1": 2}}},
    }
    fleet.declare(both)
    fleet.deploy()
    assert_converged(both)
    status = fleet.perfops("status", "--no-synth")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = [line.split("\t") for line in status.stdout.splitlines()[1:]]
    assert sorted((r[0], r[1], r[3], r[4]) for r in rows) == [
        ("alpha", "web", "1", "1"),
        ("beta", "web", "2", "2"),
    ]
    destroyed = fleet.perfops("destroy", "-y", "--stack", "alpha")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert live_hosts() == {("beta", "web", "eu-west-1"): 2}


def test_status_reports_undeclared_hosts_and_exits_1(fleet: Fleet) -> None:
    """A host of this deployer that nothing declares (here: started by hand with the
    deployer's tags) gets a "not declared" row, and status exits 1 for scripts."""
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}}
    fleet.declare(declaration)
    fleet.deploy()
    assert fleet.perfops("status").returncode == 0
    tags = [
        {"Key": "perf-ops", "Value": UUID},
        {"Key": "perf-ops:stack", "Value": "perf-ops"},
        {"Key": "deployment", "Value": "forgotten"},
    ]
    stray = aws.client("ec2", "eu-west-1").run_instances(
        ImageId=MOTO_AMI,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )["Instances"][0]["InstanceId"]
    status = fleet.perfops("status")
    assert status.returncode == 1
    lines = status.stdout.splitlines()
    header = lines[0].split("\t")
    row = next(line for line in lines if "forgotten" in line).split("\t")
    assert row[1:5] == ["forgotten (not declared)", "eu-west-1", "0", "1"]
    assert row[header.index("instances")] == stray


def test_unknown_stack_on_the_command_line_is_one_line(fleet: Fleet) -> None:
    """``--stack nope`` names what exists, exits 2, and creates nothing."""
    fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
    for command in ("deploy", "destroy"):
        result = fleet.perfops(command, "-y", "--stack", "nope")
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: --stack: 'nope' is not a stack of this app; known: perf-ops, perf-ops-eu-west-1"
        ]
    assert tagged() == []


def test_missing_ami_fails_before_anything_is_created(fleet: Fleet) -> None:
    """An AMI that does not exist stops the deploy with one line naming the image, the
    region and the fix, before any group or host exists."""
    fleet.images = {"node": {"eu-west-1": "ami-0123456789abcdef0"}}
    fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
    result = fleet.perfops("deploy", "-y")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: perf-ops/web: image 'node' has no AMI ami-0123456789abcdef0 in eu-west-1 "
        "(it does not exist or is not available); fix ami_ids of perf-ops/node "
        "(or copy the AMI to eu-west-1)"
    )
    assert tagged() == []


def test_declining_the_prompt_changes_nothing(fleet: Fleet) -> None:
    """Answering no is not an error: one line says nothing changed, exit 1, nothing
    created."""
    fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
    result = fleet.perfops("deploy", stdin="n\n")
    assert result.returncode == 1
    assert "Apply these changes?" in result.stdout
    assert "deploy cancelled: nothing was changed" in result.stderr
    assert "error" not in result.stderr
    assert tagged() == []


def test_destroy_lists_leftovers_and_sweep_removes_only_ours(fleet: Fleet) -> None:
    """Resources tagged with this deployer and stack but outside Terraform are listed
    after destroy with the command that removes them; --sweep removes exactly those,
    never another deployer's or untagged ones."""
    fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
    fleet.deploy()
    ec2 = aws.client("ec2", "eu-west-1")

    def group(name: str, tags: dict[str, str]) -> str:
        spec = (
            [
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ]
            if tags
            else []
        )
        return str(
            ec2.create_security_group(GroupName=name, Description="test", TagSpecifications=spec)[
                "GroupId"
            ]
        )

    ours = group("stray-ours", {"perf-ops": UUID, "perf-ops:stack": "perf-ops"})
    theirs = group("stray-theirs", {"perf-ops": "someoneelse", "perf-ops:stack": "perf-ops"})
    other_stack = group("stray-stack", {"perf-ops": UUID, "perf-ops:stack": "another"})
    untagged = group("stray-untagged", {})
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 1
    assert f"eu-west-1 security-group {ours}" in destroyed.stderr
    assert "remove them with: perfops destroy --sweep" in destroyed.stderr
    swept = fleet.perfops("destroy", "-y", "--sweep")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    remaining = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert ours not in remaining
    assert {theirs, other_stack, untagged} <= remaining
    assert groups() == {("eu-west-1", "stray-stack")}


def test_destroy_empties_region_stacks_itself_and_terraform_agrees(fleet: Fleet) -> None:
    """perfops deletes what its region stacks' states hold through the API, with no
    Terraform run (four provider starts each, most of a 17-region destroy), after the
    usual confirmation: AWS holds nothing tagged, Terraform reads the emptied states as
    empty, and the next deploy and a Terraform destroy (--full) work on them."""
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 2, "us-east-1": 1}}}}
    fleet.declare(declaration)
    fleet.deploy()
    logs = fleet.root / ".perfops" / "logs"
    before = {p.name: p.stat().st_size for p in logs.glob("*.log")}
    destroyed = fleet.perfops("destroy", stdin="y\n")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "Apply these changes?" in destroyed.stdout
    counted = re.findall(
        r"(perf-ops-[a-z0-9-]+): 0 added, 0 changed, (\d+) destroyed", destroyed.stdout
    )
    assert len(counted) == 2
    assert "nothing left" in destroyed.stdout
    assert tagged() == []
    assert {p.name: p.stat().st_size for p in logs.glob("*.log")} == before  # no Terraform
    env = cli_config(fleet.root)
    for region in ("eu-west-1", "us-east-1"):
        stack = fleet.root / "cdktf.out" / "stacks" / f"perf-ops-{region}"
        listed = terraform.run(["state", "list"], cwd=stack, env=env, capture=True)
        assert listed.stdout.strip() == ""
    fleet.deploy()
    assert_converged(declaration)
    again = fleet.perfops("destroy", "-y", "--full")
    assert again.returncode == 0, again.stdout + again.stderr
    # Terraform counts what it destroyed as perfops did.
    assert (
        re.findall(r"(perf-ops-[a-z0-9-]+): 0 added, 0 changed, (\d+) destroyed", again.stdout)
        == counted
    )
    assert tagged() == []
    assert {p.name: p.stat().st_size for p in logs.glob("*.log")} != before


def test_destroy_empties_s3_state_region_stacks_itself(fleet: Fleet) -> None:
    """Region stacks whose state is in S3 (S3State) are emptied by perfops as local
    ones are: what the state holds deleted through the API, no Terraform destroy (no
    provider starts), then the state written back as a destroy leaves it, through
    Terraform's own `state push` (the backend's lock, its lineage and serial checks)."""
    s3 = aws.client("s3", "eu-west-1")
    s3.create_bucket(
        Bucket="team-state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    backend = {"bucket": "team-state", "key": "fleet.tfstate", "region": "eu-west-1"}
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 2, "us-east-1": 1}}}}
    fleet.declare(declaration, backend=backend)
    fleet.deploy()
    keys = [f"fleet.{region}.tfstate" for region in ("eu-west-1", "us-east-1")]

    def state(key: str) -> dict[str, Any]:
        body = s3.get_object(Bucket="team-state", Key=key)["Body"].read()
        found: dict[str, Any] = json.loads(body)
        return found

    before = {key: state(key) for key in keys}
    assert all(s["resources"] for s in before.values())
    logs = fleet.root / ".perfops" / "logs"
    sizes = {p.name: p.stat().st_size for p in logs.glob("*.log")}
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "nothing left" in destroyed.stdout
    assert tagged() == []
    assert {p.name: p.stat().st_size for p in logs.glob("*.log")} == sizes  # no destroy run
    for key in keys:
        after = state(key)
        assert after["resources"] == [] and after["outputs"] == {}
        assert after["lineage"] == before[key]["lineage"]
        assert after["serial"] > before[key]["serial"]
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket="team-state").get("Contents", [])}
    assert listed == set(keys)  # no lock left behind
    fleet.deploy()
    assert_converged(declaration)


def test_destroy_after_hosts_left_long_ago(fleet: Fleet) -> None:
    """A host that terminated itself long ago (its lifetime over) is gone from EC2,
    but its fleet's state still lists its id; asking EC2 about it fails
    (InvalidInstanceID.NotFound). The emulator keeps terminated hosts, so the state is
    given such an id by hand; destroy must still empty the stack."""
    fleet.declare({"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}})
    fleet.deploy()
    stack = fleet.root / "cdktf.out" / "stacks" / "perf-ops-eu-west-1"
    path = terraform.Workspace(stack, fleet.root).local_state_file()
    assert path is not None
    state = json.loads(path.read_text())
    [fleets] = [r for r in state["resources"] if r["type"] == "aws_ec2_fleet"]
    launched = fleets["instances"][0]["attributes"]["fleet_instance_set"][0]
    launched["instance_ids"].append("i-0123456789abcdef0")
    path.write_text(json.dumps(state))
    destroyed = fleet.perfops("destroy", "-y")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert tagged() == []
    assert terraform.Workspace(stack, fleet.root).state()["resources"] == []


def test_a_rehearsal_against_a_new_emulator_starts_afresh(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each emulator is a world of its own, its state kept under its endpoint: the same
    project deployed again against a new emulator (a second ``make demo``, a restarted
    ``perfops local-aws``) initializes its stacks for that emulator's state instead of
    failing with Terraform's "Backend configuration changed"."""
    declaration = {"perf-ops": {"web": {"regions": {"eu-west-1": 1}}}}
    fleet.declare(declaration)
    fleet.deploy()
    with running_emulator() as second:
        for key, value in second.environment().items():
            monkeypatch.setenv(key, value)
        fleet.deploy()
        assert_converged(declaration)
        destroyed = fleet.perfops("destroy", "-y")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr

"""fleet_scope: per stack, the deployer uuid and regions, read from cdktf.out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sshkit import write_project
from test_cli import project as cli_project

from perfops_cdk.fleet_scope import fleet_scope
from perfops_cdk.planners.hosts import StackScope
from perfops_cdk.project import Project

REPO = Path(__file__).resolve().parent.parent


def test_scope_is_read_from_cdktf_out_without_running_the_app(tmp_path: Path) -> None:
    """Provider regions and the perf-ops tag come from cdk.tf.json; the app ('false') never runs."""
    root = write_project(tmp_path, uuid="u1", regions=["us-east-1", "eu-west-1"])
    assert fleet_scope(Project.find(root)) == (
        StackScope("perf-ops", "u1", ("eu-west-1", "us-east-1")),
    )


def test_scope_finds_the_uuid_wherever_the_stack_tags(tmp_path: Path) -> None:
    """Launch-template tag specifications and provider default tags count; tokens do not."""
    root = write_project(tmp_path, uuid="unused", regions=["eu-west-1"], stacks=["a", "b"])
    a = {
        "provider": {"aws": [{"region": "eu-west-1", "default_tags": {"tags": {"perf-ops": "ua"}}}]}
    }
    b = {
        "provider": {"aws": {"region": "us-east-2"}},
        "resource": {
            "aws_launch_template": {
                "lt": {"tag_specifications": [{"tags": {"perf-ops": "ub", "x": "y"}}]}
            },
            "aws_instance": {"i": {"tags": {"perf-ops": "${var.uuid}"}}},
        },
    }
    for name, body in (("a", a), ("b", b)):
        (root / "cdktf.out" / "stacks" / name / "cdk.tf.json").write_text(json.dumps(body))
    assert fleet_scope(Project.find(root)) == (
        StackScope("a", "ua", ("eu-west-1",)),
        StackScope("b", "ub", ("us-east-2",)),
    )


def test_stack_without_tagged_resources_has_no_scope(tmp_path: Path) -> None:
    """A stack that declares no deployment yet contributes nothing to look for."""
    root = write_project(tmp_path, uuid="u1", regions=["eu-west-1"])
    (root / "cdktf.out" / "stacks" / "perf-ops" / "cdk.tf.json").write_text(
        json.dumps({"provider": {"aws": [{"region": "eu-west-1"}]}})
    )
    assert fleet_scope(Project.find(root)) == ()


def test_scope_synthesizes_when_cdktf_out_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cdktf.out the app runs once; its deployment's uuid and regions are the scope."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = cli_project(tmp_path / "proj", regions='{"eu-west-1": 1, "us-east-1": 0}')
    assert not (root / "cdktf.out").exists()
    assert fleet_scope(Project.find(root)) == (StackScope("perf-ops", "cliuuid1", ("eu-west-1",)),)
    assert (root / "cdktf.out" / "manifest.json").is_file()

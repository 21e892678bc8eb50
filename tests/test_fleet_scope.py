"""fleet_scope: per stack, the deployer uuid and regions, read from cdktf.out."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshkit import write_project
from test_cli import project as cli_project

from perfops_cdk.effects import ledger
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


def test_scope_is_per_stack_with_its_own_uuid(tmp_path: Path) -> None:
    """Two stacks each get their uuid and the regions of their region stacks."""
    root = write_project(tmp_path, uuid="ua", regions=["eu-west-1"], stacks=["a", "b"])
    assert fleet_scope(Project.find(root)) == (
        StackScope("a", "ua", ("eu-west-1",)),
        StackScope("b", "ua", ("eu-west-1",)),
    )


def test_stack_without_region_stacks_has_no_scope(tmp_path: Path) -> None:
    """A stack that declares no deployment yet contributes nothing to look for."""
    root = write_project(tmp_path, uuid="u1", regions=[])
    assert fleet_scope(Project.find(root)) == ()


def test_scope_includes_regions_the_ledger_still_remembers(tmp_path: Path) -> None:
    """A stack removed from the app whose region stacks the ledger still records is
    looked in too: its hosts may still run."""
    root = write_project(tmp_path, uuid="u1", regions=["eu-west-1"])
    ledger_file = root / ledger.LEDGER_FILE
    ledger.record_regions(ledger_file, "gone", {"us-east-1": "gone-us-east-1"}, "u1")
    assert fleet_scope(Project.find(root)) == (
        StackScope("gone", "u1", ("us-east-1",)),
        StackScope("perf-ops", "u1", ("eu-west-1",)),
    )


def test_scope_synthesizes_when_cdktf_out_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cdktf.out the app runs once; its deployment's uuid and regions are the scope."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    root = cli_project(tmp_path / "proj", regions='{"eu-west-1": 1, "us-east-1": 0}')
    assert not (root / "cdktf.out").exists()
    assert fleet_scope(Project.find(root)) == (StackScope("perf-ops", "cliuuid1", ("eu-west-1",)),)
    assert (root / "cdktf.out" / "manifest.json").is_file()

"""A local Terraform state emptied by perfops (effects/tfstate.py), and the lock it
shares with Terraform."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfops_cdk.effects import tfstate
from perfops_cdk.errors import EffectError

LINEAGE = "d9b6c3f1-0000-4000-8000-000000000001"
STATE = {
    "version": 4,
    "terraform_version": "1.11.4",
    "serial": 7,
    "lineage": LINEAGE,
    "outputs": {"web_ids": {"value": ["i-1"], "type": ["list", "string"]}},
    "resources": [{"mode": "managed", "type": "aws_ec2_fleet", "name": "web_hosts"}],
    "check_results": None,
}


def test_emptied_state_is_what_a_destroy_leaves(tmp_path: Path) -> None:
    """No resources or outputs, the next serial, the same lineage and version; the
    previous state kept as <state>.backup, as Terraform keeps one."""
    path = tmp_path / "terraform.tfstate"
    path.write_text(json.dumps(STATE))
    tfstate.empty(path, "perf-ops-eu-west-1")
    emptied = tfstate.read(path, "perf-ops-eu-west-1")
    assert emptied == {**STATE, "serial": 8, "outputs": {}, "resources": []}
    assert json.loads((tmp_path / "terraform.tfstate.backup").read_text()) == STATE
    tfstate.empty(tmp_path / "none.tfstate", "perf-ops-eu-west-1")  # no state: nothing to do
    assert not (tmp_path / "none.tfstate").exists()


def test_a_state_locked_by_terraform_is_left_alone(tmp_path: Path) -> None:
    """Terraform holds an fcntl lock on a local state while it runs: perfops says so
    and changes nothing."""
    path = tmp_path / "terraform.tfstate"
    path.write_text(json.dumps(STATE))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"f = open({str(path)!r}, 'r+')\n"
            "fcntl.lockf(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(EffectError, match="locked by a Terraform run"):
            tfstate.empty(path, "perf-ops-eu-west-1")
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(path.read_text()) == STATE


def test_a_remote_state_changed_since_it_was_read_is_not_overwritten() -> None:
    """S3State: perfops writes the emptied state back only if it is still the state it
    read before deleting (lineage, serial); otherwise something applied meanwhile and
    its resources would drop out of the state while they run."""
    calls: list[tuple[str, ...]] = []

    def run(*argv: str, **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    with pytest.raises(EffectError, match="the state changed while perfops emptied it"):
        tfstate.push_emptied(STATE, (LINEAGE, 6), run, "perf-ops-eu-west-1")
    assert calls == []
    tfstate.push_emptied(STATE, (LINEAGE, 7), run, "perf-ops-eu-west-1")
    assert [argv[:2] for argv in calls] == [("state", "push")]


def test_a_refused_push_is_one_line_without_terminal_colours() -> None:
    def run(*argv: str, **_: object) -> subprocess.CompletedProcess[str]:
        assert "-no-color" in argv
        stderr = "\nError: Failed to write state: lineage differs\n"
        return subprocess.CompletedProcess(argv, 1, "", stderr)

    with pytest.raises(EffectError) as raised:
        tfstate.push_emptied(STATE, None, run, "perf-ops-eu-west-1")
    assert str(raised.value) == (
        "perf-ops-eu-west-1: cannot write the emptied state: "
        "Error: Failed to write state: lineage differs"
    )

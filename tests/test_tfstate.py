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

STATE = {
    "version": 4,
    "terraform_version": "1.11.4",
    "serial": 7,
    "lineage": "d9b6c3f1-0000-4000-8000-000000000001",
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

"""cdktf.out does not depend on the machine: no absolute path of it, state found relative
to the project wherever it moves, and the emulator's endpoint nowhere (a rehearsal's
providers are pinned to the emulator's account; Terraform gets the endpoint from the
environment)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import project
from typer.testing import CliRunner

from perfops_cdk.cli.main import app
from perfops_cdk.effects.aws import EMULATOR_ACCOUNT_ID

REPO = Path(__file__).resolve().parent.parent
ENDPOINT = "http://127.0.0.1:4566"
runner = CliRunner()


def _synth(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``perfops synth`` in ``root``; every file of cdktf.out as text, by relative path."""
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    result = runner.invoke(app, ["synth"])
    assert result.exit_code == 0, result.output
    out = root / "cdktf.out"
    return {
        str(path.relative_to(out)): path.read_text(errors="replace")
        for path in sorted(out.rglob("*"))
        if path.is_file() and ".terraform" not in path.parts
    }


def test_output_names_no_path_of_the_machine_and_no_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PERFOPS_AWS_ENDPOINT no file of cdktf.out holds the project's, the
    repository's or the home directory's absolute path, 127.0.0.1 or localhost."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    amis = {"eu-west-1": "ami-0123456789abcdef0", "us-east-1": "ami-0fedcba9876543210"}
    root = project(tmp_path / "proj", regions='{"eu-west-1": 1, "us-east-1": 1}', amis=amis)
    files = _synth(root, monkeypatch)
    assert any(name.endswith("cdk.tf.json") for name in files), sorted(files)
    machine = [str(tmp_path), str(REPO), os.path.expanduser("~") + "/"]
    for name, text in files.items():
        for needle in [*machine, "127.0.0.1", "localhost"]:
            assert needle not in text, f"{name} holds {needle!r}"


def test_rehearsal_output_is_pinned_to_the_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PERFOPS_AWS_ENDPOINT the providers allow only the emulator's account (so the
    output differs from a real one's, and applying it against a real account fails
    before anything is created), and still hold no endpoint and no absolute path."""
    monkeypatch.setenv("PERFOPS_AWS_ENDPOINT", ENDPOINT)
    root = project(tmp_path / "proj")
    files = _synth(root, monkeypatch)
    stack = json.loads(files["stacks/perf-ops-eu-west-1/cdk.tf.json"])
    [provider] = stack["provider"]["aws"]
    assert provider["allowed_account_ids"] == [EMULATOR_ACCOUNT_ID]
    for name, text in files.items():
        assert str(tmp_path) not in text, name
        assert ENDPOINT not in text, name  # (its state lives under .perfops/emulator/)


def test_moved_project_finds_its_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stack's local state path is relative to its directory in cdktf.out and
    points into the project: after moving the whole project (or checking it out
    elsewhere with its cdktf.out, as a CI artifact) Terraform opens the moved state."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    root = project(tmp_path / "proj")
    files = _synth(root, monkeypatch)
    moved = tmp_path / "elsewhere" / "proj"
    moved.parent.mkdir()
    monkeypatch.chdir(tmp_path)
    shutil.move(root, moved)
    stacks = [name for name in files if name.endswith("/cdk.tf.json")]
    for name in stacks:
        path = json.loads(files[name])["terraform"]["backend"]["local"]["path"]
        assert not os.path.isabs(path), (name, path)
        stack_dir = moved / "cdktf.out" / Path(name).parent
        state = (stack_dir / path).resolve()
        assert state.parent == moved.resolve(), (name, path)
        assert state.name.startswith("terraform.perf-ops") and state.suffix == ".tfstate"


def test_endpoint_url_without_a_rehearsal_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_ENDPOINT_URL left set without PERFOPS_AWS_ENDPOINT (a rehearsal's environment
    half cleared) would send boto3 and Terraform to that endpoint while perfops keeps a
    real account's state and output: refused in one line, exit 2, nothing written."""
    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", ENDPOINT)
    root = project(tmp_path / "proj")
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", "synth"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: AWS_ENDPOINT_URL is {ENDPOINT} but PERFOPS_AWS_ENDPOINT is not set: "
        "unset AWS_ENDPOINT_URL for a real account, or set PERFOPS_AWS_ENDPOINT to the "
        "same URL to rehearse against it"
    ]
    assert not (root / "cdktf.out" / "manifest.json").exists()

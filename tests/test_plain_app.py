"""A plain cdktf app (``from cdktf import App`` + ``app.synth()``, no perfops_cdk.app.main)
syncs its images with ``perfops images``, against moto, with no dead end."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from perfops_cdk.cli.main import app
from perfops_cdk.effects import state_file
from perfops_cdk.effects.aws import endpoint_url
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.ledger import state_dir_for
from perfops_cdk.jsii_env import NODE_WARNING_ENV
from perfops_cdk.publishing import sync as sync_module

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = ROOT / "nix" / "test-image" / "default.nix"
UUID = "plainuuid1"

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build not installed"),
]

PLAIN_APP = """
from cdktf import App
from perfops_cdk import Deployment, ImageAsset, PerfOpsStack

app = App({outdir})
stack = PerfOpsStack(app, "perf-ops", home_region="eu-west-1")
image = ImageAsset(stack, "img", name="plainimg", nix_file={nix!r}, attr="amazonImage",
                   args={{"seed": {seed!r}}})
Deployment(stack, "fleet", image=image, instance_type="t3.micro",
           regions={{{regions}}})
app.synth()
"""
REGIONS = '"eu-west-1": 1, "us-east-1": 2'


def write_app(project: Path, *, outdir: str = "", regions: str = REGIONS) -> None:
    seed = f"plain-{os.getpid()}-{time.time_ns()}"
    text = PLAIN_APP.format(outdir=outdir, nix=str(TEST_IMAGE), seed=seed, regions=regions)
    (project / "main.py").write_text(text)


@pytest.fixture
def project(emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A plain cdktf project: cdktf.json runs main.py, which ends in app.synth()."""
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "python main.py", "context": {}}))
    write_app(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERF_UUID", UUID)
    monkeypatch.delenv("PERFOPS_PROJECT_DIR", raising=False)
    sync_module.forget_clients()
    yield tmp_path
    sync_module.forget_clients()


def run_app(project: Path) -> subprocess.CompletedProcess[str]:
    """``python main.py`` as a user runs it (or the cdktf CLI does)."""
    return subprocess.run(
        [sys.executable, "main.py"],
        cwd=project,
        env={**NODE_WARNING_ENV, **os.environ},
        capture_output=True,
        text=True,
        check=False,
    )


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_plain_app_names_a_sync_command_that_works_then_synthesizes(project: Path) -> None:
    """Before a sync, synthesis fails naming `perfops images sync ...`; that very command
    publishes the image, synthesis then uses its AMIs, and cdktf.out lists the image."""
    failed = run_app(project)
    assert failed.returncode != 0 and not (project / "cdktf.out" / "manifest.json").exists()
    last = failed.stderr.strip().splitlines()[-1]
    assert last.endswith("run: perfops images sync --names plainimg --regions eu-west-1,us-east-1")
    command = shlex.split(last.split("run: ", 1)[1])
    assert command[:1] == ["perfops"]

    synced = invoke(*command[1:])
    assert synced.exit_code == 0, synced.output
    assert "available in 2 region(s)" in synced.output
    state = state_dir_for(project, endpoint_url()) / state_file.DEFAULT_STATE_FILE
    amis = state_file.load(state).ami_ids("plainimg")
    assert sorted(amis) == ["eu-west-1", "us-east-1"]

    done = run_app(project)
    assert done.returncode == 0, done.stderr
    for region, ami in amis.items():
        assert ami in (project / f"cdktf.out/stacks/perf-ops-{region}/cdk.tf.json").read_text()
    stack = json.loads((project / "cdktf.out/stacks/perf-ops/cdk.tf.json").read_text())
    [image] = stack["//"]["perfops"]["images"]
    assert (image["name"], image["regions"]) == ("plainimg", ["eu-west-1", "us-east-1"])

    listed = invoke("images", "list", "--regions", "eu-west-1,us-east-1")
    assert listed.exit_code == 0, listed.output
    assert all(ami in listed.output for ami in amis.values())
    again = invoke("images", "sync")
    assert again.exit_code == 0 and "up to date in 2 region(s)" in again.output


def test_plain_app_writing_elsewhere_than_cdktf_outdir_is_refused(project: Path) -> None:
    """An app that hard-codes App(outdir=...) would get placeholder AMIs written into its
    real output while perfops lists its images: one line, exit 2, nothing written."""
    write_app(project, outdir='outdir="cdktf.out"')
    result = invoke("images", "sync")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: perf-ops: the app synthesizes into ")
    assert line.endswith("create the App without outdir= (the cdktf CLI sets CDKTF_OUTDIR too)")
    # cdktf's App makes the empty cdktf.out/stacks/ on construction; nothing is in it.
    assert list((project / "cdktf.out").rglob("*.json")) == []


def test_plain_app_with_bad_input_fails_sync_in_one_line(project: Path) -> None:
    """A plain app raises (a traceback); `perfops images sync` reports its last line only."""
    write_app(project, regions='"eu-wset-1": 1')
    result = invoke("images", "sync")
    assert result.exit_code == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: perf-ops/fleet: regions: 'eu-wset-1' is not allowed")
    assert line.endswith("did you mean 'eu-west-1'?")

"""The CDK core seam: choosing cdktf or cdktn, cdktf's provider check, the image manifest."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stackkit import UUID, synth_json

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk._cdktf import (
    TerraformProviderGeneratorMetadata,
    TerraformResource,
)
from perfops_cdk.app import image_requirements, requirements_from_outdir, synth
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import BACKEND_ENV, NODE_WARNING_ENV, core_module

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = ROOT / "nix" / "test-image" / "default.nix"


def test_core_is_cdktf_unless_told_otherwise() -> None:
    """No PERFOPS_CDK_BACKEND and cdktf installed: cdktf, the default."""
    assert core_module({}) == "cdktf"
    assert core_module({BACKEND_ENV: "cdktf"}) == "cdktf"


def test_unknown_core_is_refused_naming_the_choices() -> None:
    """A typo in PERFOPS_CDK_BACKEND is one line listing what is allowed."""
    with pytest.raises(PerfOpsError, match=r"'cdktm' is not allowed; use 'cdktf' or 'cdktn'"):
        core_module({BACKEND_ENV: "cdktm"})


@pytest.mark.skipif(importlib.util.find_spec("cdktn") is not None, reason="cdktn is installed")
def test_app_asking_for_a_missing_core_fails_in_one_line(tmp_path: Path) -> None:
    """PERFOPS_CDK_BACKEND=cdktn without cdktn: the app exits 2 with one line naming the
    extra to install, not an import traceback."""
    env = {**os.environ, **NODE_WARNING_ENV, BACKEND_ENV: "cdktn", "PERF_UUID": UUID}
    env["PERFOPS_PROJECT_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "deployments.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: PERFOPS_CDK_BACKEND=cdktn: the module 'cdktn' is not installed; "
        "run: pip install 'perfops-cdk[cdktn]', or unset PERFOPS_CDK_BACKEND\n"
    )


def test_generated_binding_resources_find_the_stacks_provider(tmp_path: Path) -> None:
    """A resource declared the way prebuilt bindings declare theirs (generator metadata
    naming the "aws" provider) passes cdktf's provider check with provider_for: before,
    synthesis failed with "Found resources without a matching provider construct"."""

    def declare(stack: PerfOpsStack, image: ImageAsset) -> None:
        topic = TerraformResource(
            stack,
            "topic",
            terraform_resource_type="aws_sns_topic",
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(provider_name="aws"),
            provider=stack.provider_for("us-east-1"),
        )
        topic.add_override("name", "perfops-alerts")
        Deployment(stack, "web", image=image, instance_type="t3.micro", regions={"eu-west-1": 1})

    stacks = synth_json(tmp_path, declare)
    own = stacks["perf-ops"]
    assert own["resource"]["aws_sns_topic"]["topic"]["provider"] == "aws.useast1"
    for name in ("perf-ops", "perf-ops-eu-west-1"):
        assert stacks[name]["terraform"]["required_providers"] == {
            "aws": {"source": "hashicorp/aws", "version": "5.100.0"}
        }


def _declare_images(app: App, project: Path) -> None:
    stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=project)
    used = ImageAsset(stack, "img", name="usedimg", nix_file=str(TEST_IMAGE), attr="amazonImage")
    ImageAsset(stack, "spare", name="spareimg", nix_file=str(TEST_IMAGE), args={"seed": "s"})
    prebuilt = ImageAsset.from_ami_ids(
        stack, "node", name="node-v1", ami_ids={"eu-west-1": "ami-0123456789abcdef0"}
    )
    Deployment(stack, "web", image=used, instance_type="t3.micro", regions={"us-east-1": 1})
    Deployment(stack, "db", image=prebuilt, instance_type="t3.micro", regions={"eu-west-1": 1})


def test_synthesis_writes_the_image_manifest_beside_the_stacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PerfOpsStack's JSON lists every image with the regions deployments use it in
    (paths relative to the stack), and reads back as what --list-images prints."""
    from perfops_cdk.effects.state_file import ImageRecord, RegionImage, SyncState, save

    monkeypatch.delenv("PERFOPS_AWS_ENDPOINT", raising=False)
    region = {"us-east-1": RegionImage(ami_id="ami-0fedcba9876543210", state="available")}
    save(
        tmp_path / "state.json",
        SyncState({"usedimg": ImageRecord("usedimg-x", "eu-west-1", region)}),
    )
    outdir = synth(lambda app: _declare_images(app, tmp_path), tmp_path / "cdktf.out")
    note: dict[str, Any] = json.loads((outdir / "stacks/perf-ops/cdk.tf.json").read_text())["//"]
    images = {entry["name"]: entry for entry in note["perfops"]["images"]}
    assert note["perfops"]["kind"] == "app"  # the stack's own summary is still there
    assert {n: e["regions"] for n, e in images.items()} == {
        "usedimg": ["us-east-1"],
        "spareimg": [],
        "node-v1": ["eu-west-1"],
    }
    assert not Path(images["usedimg"]["nix_file"]).is_absolute()
    assert "nix_file" not in images["node-v1"] and images["node-v1"]["prebuilt"] is True
    listed = image_requirements(lambda app: _declare_images(app, tmp_path))
    assert requirements_from_outdir(outdir) == listed

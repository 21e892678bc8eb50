"""The CDK core seam: choosing cdktf or cdktn, and cdktf's provider check."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stackkit import UUID, synth_json

from perfops_cdk import Deployment, ImageAsset, PerfOpsStack
from perfops_cdk._cdktf import (
    TerraformProviderGeneratorMetadata,
    TerraformResource,
)
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import BACKEND_ENV, NODE_WARNING_ENV, core_module

ROOT = Path(__file__).resolve().parent.parent


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

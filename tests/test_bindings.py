"""The prebuilt AWS bindings (cdktf-cdktf-provider-aws) in a PerfOpsStack, for real.

The bindings never enter .venv (470 MB, 20-50 s to import): they live in a cached
overlay venv, ``.perfops/venvs/bindings``, made on the first run of a checkout (about
2.5 minutes) and reused after. The release is the ``aws-bindings`` extra of
pyproject.toml: the newest for cdktf 0.21 that tracks hashicorp/aws 5.100.0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from venvkit import ensure_or_skip, extra_pins

from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.jsii_env import NODE_WARNING_ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.terraform,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed"),
]

APP = """
from cdktf import TerraformResource
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from perfops_cdk import Deployment, ImageAsset, PerfOpsStack
from perfops_cdk.app import main


def define(app):
    stack = PerfOpsStack(app, "perf-ops", uuid="bindings01")
    provider = stack.provider_for("eu-west-1")
    bucket = S3Bucket(stack, "logs", bucket="perfops-bindings-logs", provider=provider)
    versioning = TerraformResource(
        stack, "versioning", terraform_resource_type="aws_s3_bucket_versioning",
        provider=provider,
    )
    versioning.add_override("bucket", bucket.id)
    versioning.add_override("versioning_configuration", {"status": "Enabled"})
    image = ImageAsset.from_ami_ids(
        stack, "node", name="node-v1", ami_ids={"eu-west-1": "ami-0123456789abcdef0"}
    )
    Deployment(stack, "web", image=image, instance_type="t3.micro", regions={"eu-west-1": 2})

    # The old way out: the bindings' own provider beside perfops' (its source is "aws").
    legacy = PerfOpsStack(app, "legacy", uuid="bindings01")
    AwsProvider(legacy, "aws", region="us-east-1")
    S3Bucket(legacy, "logs", bucket="perfops-bindings-legacy",
             provider=legacy.provider_for("us-east-1"))


main(define)
"""
STACKS = ("perf-ops", "perf-ops-eu-west-1", "legacy")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed app synthesized by the bindings venv's python; its cdktf.out."""
    python = ensure_or_skip("bindings", extra_pins("aws-bindings"), overlay=True)
    project = tmp_path_factory.mktemp("bindings")
    (project / "main.py").write_text(APP)
    env = {
        **NODE_WARNING_ENV,
        **os.environ,
        "PERFOPS_PROJECT_DIR": str(project),
        "CDKTF_OUTDIR": str(project / "cdktf.out"),
    }
    env.pop("PERFOPS_AWS_ENDPOINT", None)
    done = subprocess.run(
        [str(python), "main.py"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return project / "cdktf.out"


def stack_json(outdir: Path, stack: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())
    return data


def test_binding_resources_use_the_stacks_provider(synthesized: Path) -> None:
    """A bindings resource and a generic TerraformResource take provider_for's provider,
    and reference each other, in the stack that also holds a perfops Deployment."""
    resources = stack_json(synthesized, "perf-ops")["resource"]
    assert isinstance(resources, dict)
    assert resources["aws_s3_bucket"]["logs"]["provider"] == "aws.euwest1"
    versioning = resources["aws_s3_bucket_versioning"]["versioning"]
    assert versioning["provider"] == "aws.euwest1"
    assert versioning["bucket"] == "${aws_s3_bucket.logs.id}"
    region = stack_json(synthesized, "perf-ops-eu-west-1")["resource"]
    assert isinstance(region, dict) and "aws_ec2_fleet" in region


def test_every_stack_requires_hashicorp_aws_5_100_0(synthesized: Path) -> None:
    """required_providers stays hashicorp/aws 5.100.0, even beside the bindings' own
    provider (whose source is plain "aws")."""
    for stack in STACKS:
        terraform = stack_json(synthesized, stack)["terraform"]
        assert isinstance(terraform, dict)
        assert terraform["required_providers"] == {
            "aws": {"source": "hashicorp/aws", "version": "5.100.0"}
        }, stack


def test_mixed_stacks_validate_against_the_provider_schema(synthesized: Path) -> None:
    """`terraform validate` accepts every stack; init resolves aws 5.100.0 (the mirror's)."""
    for stack in STACKS:
        workspace = Workspace(synthesized / "stacks" / stack, synthesized.parent)
        workspace.init()
        report = workspace.validate()
        assert report["valid"] is True, (stack, report["diagnostics"])
        lock = (workspace.dir / ".terraform.lock.hcl").read_text()
        assert 'version     = "5.100.0"' in lock, lock

"""Prebuilt-binding resources, generic TerraformResources and perfops constructs in one
PerfOpsStack: cdktf's provider check passes and the real terraform validates the stack.

The prebuilt bindings (cdktf-cdktf-provider-aws) take minutes and ~470 MB to install, so
this file, which runs in .venv, uses a stand-in: a resource class that declares itself
the way generated bindings do (terraformGeneratorMetadata naming the "aws" provider),
which is all cdktf's check reads. tests/test_bindings.py repeats it with the real
bindings in their own venv.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsii
import pytest
from stackkit import UUID

from perfops_cdk import App, Deployment, ImageAsset, PerfOpsStack
from perfops_cdk._cdktf import (
    Construct,
    TerraformProvider,
    TerraformProviderGeneratorMetadata,
    TerraformResource,
    TerraformStack,
    synthesize,
)
from perfops_cdk.app import synth
from perfops_cdk.effects.terraform import Workspace
from perfops_cdk.errors import PerfOpsError

# What cdktf-cdktf-provider-aws 20.1.0 passes for every resource (and its provider).
BINDINGS_METADATA = {
    "provider_name": "aws",
    "provider_version": "5.100.0",
    "provider_version_constraint": "~> 5.0",
}
AWS = {"aws": {"source": "hashicorp/aws", "version": "5.100.0"}}


class BindingStyleBucket(TerraformResource):
    """Stands in for ``cdktf_cdktf_provider_aws.s3_bucket.S3Bucket``: the same generator
    metadata, a typed prop, attributes synthesized from it, an ``id`` reference."""

    def __init__(
        self, scope: Construct, id: str, *, bucket: str, provider: TerraformProvider | None
    ) -> None:
        self._bucket = bucket
        super().__init__(
            scope,
            id,
            terraform_resource_type="aws_s3_bucket",
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(**BINDINGS_METADATA),
            provider=provider,
        )

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return {"bucket": self._bucket}

    @property
    def bucket_id(self) -> str:
        return str(self.get_string_attribute("id"))


class BareProvider(TerraformProvider):
    """An aws provider construct without generator metadata, as perfops' was before."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(
            scope, id, terraform_resource_type="aws", terraform_provider_source="hashicorp/aws"
        )


def test_stand_in_trips_cdktf_provider_check_like_the_bindings(tmp_path: Path) -> None:
    """The stand-in reproduces the failure the bindings met: beside a provider without
    metadata, synthesis fails with "Found resources without a matching provider"."""
    app = App(outdir=str(tmp_path / "cdktf.out"))
    stack = TerraformStack(app, "plain")
    BindingStyleBucket(stack, "logs", bucket="perfops-logs", provider=BareProvider(stack, "aws"))
    with pytest.raises(PerfOpsError, match=r"Found resources without a matching provider"):
        synthesize(app)


def declare_mixed(app: App, project: Path) -> None:
    """A Deployment, a binding-style bucket and a generic versioning resource that
    references it, both on provider_for; a generic topic in a second region."""
    stack = PerfOpsStack(app, "perf-ops", uuid=UUID, project_dir=project)
    image = ImageAsset.from_ami_ids(
        stack, "node", name="node-v1", ami_ids={"eu-west-1": "ami-0123456789abcdef0"}
    )
    Deployment(stack, "web", image=image, instance_type="t3.micro", regions={"eu-west-1": 2})
    provider = stack.provider_for("eu-west-1")
    bucket = BindingStyleBucket(stack, "logs", bucket="perfops-mixed-logs", provider=provider)
    versioning = TerraformResource(
        stack,
        "versioning",
        terraform_resource_type="aws_s3_bucket_versioning",
        provider=provider,
    )
    versioning.add_override("bucket", bucket.bucket_id)
    versioning.add_override("versioning_configuration", {"status": "Enabled"})
    topic = TerraformResource(
        stack,
        "alerts",
        terraform_resource_type="aws_sns_topic",
        provider=stack.provider_for("us-east-1"),
    )
    topic.add_override("name", "perfops-alerts")


@pytest.mark.terraform
@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_mixed_stack_synthesizes_and_terraform_validates(tmp_path: Path) -> None:
    """Binding-style, generic and perfops resources in one PerfOpsStack synthesize with
    hashicorp/aws 5.100.0 required, and `terraform validate` accepts every stack."""
    outdir = synth(lambda app: declare_mixed(app, tmp_path), tmp_path / "cdktf.out")
    stacks = {
        name: json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text())
        for name in ("perf-ops", "perf-ops-eu-west-1")
    }
    resources = stacks["perf-ops"]["resource"]
    bucket = resources["aws_s3_bucket"]["logs"]
    assert (bucket["bucket"], bucket["provider"]) == ("perfops-mixed-logs", "aws.euwest1")
    versioning = resources["aws_s3_bucket_versioning"]["versioning"]
    assert (versioning["provider"], versioning["bucket"]) == (
        "aws.euwest1",
        "${aws_s3_bucket.logs.id}",
    )
    assert resources["aws_sns_topic"]["alerts"]["provider"] == "aws.useast1"
    assert "aws_ec2_fleet" in stacks["perf-ops-eu-west-1"]["resource"]
    for name, stack in stacks.items():
        assert stack["terraform"]["required_providers"] == AWS, name
        workspace = Workspace(outdir / "stacks" / name, tmp_path)
        workspace.init()
        report = workspace.validate()
        assert report["valid"] is True, (name, report["diagnostics"])
        assert 'version     = "5.100.0"' in (workspace.dir / ".terraform.lock.hcl").read_text()

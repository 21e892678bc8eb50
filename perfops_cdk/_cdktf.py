"""Every import of cdktf lives here, so a switch to its successor (CDK Terrain,
``cdktn``) is a change to this one file.

We use cdktf *core* only: a raw provider and raw resources whose attributes are
plain dicts built from our own attrs-typed props. The prebuilt AWS bindings cost
7-13 s and up to 1.6 GB just to import (docs/benchmarks.md); `terraform validate`
against the real provider schema checks what we emit instead.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable, Mapping
from typing import Any

from perfops_cdk.jsii_env import NODE_WARNING_ENV

# The jsii runtime (a node process) starts with the imports below and reads these once;
# importing this module is what starts it, so only synthesis imports it.
for _key, _value in NODE_WARNING_ENV.items():
    os.environ.setdefault(_key, _value)

import jsii  # noqa: E402
from cdktf import (  # noqa: E402
    App,
    LocalBackend,
    S3Backend,
    TerraformOutput,
    TerraformProvider,
    TerraformResource,
    TerraformStack,
)
from constructs import Construct  # noqa: E402

__all__ = [
    "App",
    "AwsProvider",
    "Construct",
    "LocalBackend",
    "RawResource",
    "S3Backend",
    "TerraformOutput",
    "TerraformStack",
    "ref",
]

AWS_PROVIDER_SOURCE = "hashicorp/aws"


class AwsProvider(TerraformProvider):
    """The hashicorp/aws provider with an alias and plain-dict attributes."""

    def __init__(
        self, scope: Construct, id: str, *, alias: str, attributes: Mapping[str, Any]
    ) -> None:
        # Both must be set before super().__init__: jsii reads the alias override
        # while the base constructor computes the provider's fqn.
        self._alias = alias
        self._attributes = dict(attributes)
        super().__init__(
            scope,
            id,
            terraform_resource_type="aws",
            terraform_provider_source=AWS_PROVIDER_SOURCE,
        )

    @builtins.property  # type: ignore[misc]
    @jsii.member(jsii_name="alias")
    def alias(self) -> str | None:
        return self._alias

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return {**self._attributes, "alias": self._alias}


class RawResource(TerraformResource):
    """A Terraform resource of any type whose attributes are a plain dict."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        resource_type: str,
        attributes: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        provider: AwsProvider | None = None,
        count: int | None = None,
        logical_id: str | None = None,
    ) -> None:
        # A callable is evaluated at synthesis, for attributes that later
        # constructs still add to (e.g. user data parts).
        self._attributes = attributes
        super().__init__(
            scope, id, terraform_resource_type=resource_type, provider=provider, count=count
        )
        if logical_id is not None:
            self.override_logical_id(logical_id)

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        if callable(self._attributes):
            return self._attributes()
        return self._attributes


def ref(resource: RawResource, attribute: str) -> str:
    """A Terraform reference to one attribute of a resource, e.g. its ``id``."""
    return str(resource.get_string_attribute(attribute))

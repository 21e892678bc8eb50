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

# cdktf 0.21 is the last release and its jsii runtime warns about the machine's Node
# release on every start; the banner would bury our one-line errors.
NODE_WARNING_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20",
}
for _key, _value in NODE_WARNING_ENV.items():
    os.environ.setdefault(_key, _value)

import jsii  # noqa: E402
from cdktf import (  # noqa: E402
    App,
    LocalBackend,
    S3Backend,
    TerraformDataSource,
    TerraformElement,
    TerraformOutput,
    TerraformProvider,
    TerraformResource,
    TerraformStack,
)
from constructs import Construct, IConstruct  # noqa: E402

__all__ = [
    "App",
    "AwsProvider",
    "Construct",
    "IConstruct",
    "LocalBackend",
    "RawDataSource",
    "RawResource",
    "S3Backend",
    "StackNote",
    "TerraformOutput",
    "TerraformStack",
    "ref",
]

AWS_PROVIDER_SOURCE = "hashicorp/aws"


class AwsProvider(TerraformProvider):
    """The hashicorp/aws provider with plain-dict attributes, aliased or the default."""

    def __init__(
        self, scope: Construct, id: str, *, alias: str | None, attributes: Mapping[str, Any]
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
        if self._alias is None:
            return dict(self._attributes)
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


class RawDataSource(TerraformDataSource):
    """A Terraform data source of any type whose attributes are a plain dict."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source_type: str,
        attributes: Mapping[str, Any],
        logical_id: str | None = None,
    ) -> None:
        self._attributes = attributes
        super().__init__(scope, id, terraform_resource_type=source_type)
        if logical_id is not None:
            self.override_logical_id(logical_id)

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        return self._attributes


class StackNote(TerraformElement):
    """perfops' own summary of a stack, under ``"//"."perfops"`` in its JSON.

    Terraform ignores "//" keys; ``perfops status``, the deploy preflight and the cost
    estimate read what the constructs declared from here instead of reverse-reading
    resources. ``produce`` runs at synthesis, after every construct had its say.
    """

    def __init__(self, scope: Construct, id: str, produce: Callable[[], Mapping[str, Any]]):
        self._produce = produce
        super().__init__(scope, id)

    @jsii.member(jsii_name="toTerraform")
    def to_terraform(self) -> Any:
        return {"//": {"perfops": dict(self._produce())}}


def ref(resource: RawResource | RawDataSource, attribute: str) -> str:
    """A Terraform reference to one attribute of a resource, e.g. its ``id``."""
    return str(resource.get_string_attribute(attribute))

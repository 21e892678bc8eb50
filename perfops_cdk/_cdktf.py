"""Every import of the CDK core lives here: cdktf 0.21 by default, or its successor
CDK Terrain (``cdktn``, the same API under another module name) when
``$PERFOPS_CDK_BACKEND`` says so or cdktf is not installed (see jsii_env.core_module).

We use the core only: a raw provider and raw resources whose attributes are plain
dicts built from our own attrs-typed props. The prebuilt AWS bindings cost 7-13 s and
up to 1.6 GB just to import (docs/benchmarks.md); `terraform validate` against the real
provider schema checks what we emit instead. Users may still add the bindings'
resources to a PerfOpsStack: our AwsProvider satisfies cdktf's provider check for them.
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.jsii_env import NODE_WARNING_ENV, core_module
from perfops_cdk.props.expression import Expression

# The jsii runtime (a node process) starts with the imports below and reads these once;
# importing this module is what starts it, so only synthesis imports it.
for _key, _value in NODE_WARNING_ENV.items():
    os.environ.setdefault(_key, _value)

import jsii  # noqa: E402

if TYPE_CHECKING:
    # Type-checked against cdktf; cdktn has the same classes and signatures.
    from cdktf import (
        Annotations,
        App,
        LocalBackend,
        S3Backend,
        TerraformDataSource,
        TerraformElement,
        TerraformOutput,
        TerraformProvider,
        TerraformProviderGeneratorMetadata,
        TerraformResource,
        TerraformStack,
    )
else:
    try:
        _core = importlib.import_module(core_module())
    except PerfOpsError as error:
        # Raised while a user's app imports perfops_cdk, before any main() can catch
        # it: the one-line error and exit 2 of bad input, not a traceback.
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
    Annotations = _core.Annotations
    App = _core.App
    LocalBackend = _core.LocalBackend
    S3Backend = _core.S3Backend
    TerraformDataSource = _core.TerraformDataSource
    TerraformElement = _core.TerraformElement
    TerraformOutput = _core.TerraformOutput
    TerraformProvider = _core.TerraformProvider
    TerraformProviderGeneratorMetadata = _core.TerraformProviderGeneratorMetadata
    TerraformResource = _core.TerraformResource
    TerraformStack = _core.TerraformStack

from constructs import Construct, IConstruct  # noqa: E402

# The core in use, "cdktf" or "cdktn" (the module App comes from).
CORE = App.__module__.split(".")[0]

__all__ = [
    "CORE",
    "Annotation",
    "App",
    "AwsProvider",
    "Construct",
    "IConstruct",
    "LocalBackend",
    "RawDataSource",
    "RawResource",
    "S3Backend",
    "StackNote",
    "TerraformElement",
    "TerraformOutput",
    "TerraformProvider",
    "TerraformProviderGeneratorMetadata",
    "TerraformResource",
    "TerraformStack",
    "ref",
    "synthesize",
    "warn",
]

AWS_PROVIDER_SOURCE = "hashicorp/aws"

# cdktf stands in for values it resolves after synthesizeAttributes (references such as
# ref() returns) with marker strings "${TfToken[TOKEN.12]}" (lib/tokens/private/
# encoding.js: key chars a-zA-Z0-9:._-). List, map and number tokens hold no "${" or "%{".
_STRING_TOKEN = re.compile(r"(\$\{TfToken\[[a-zA-Z0-9:._-]+\]\})")


def terraform_literal(value: Any) -> Any:
    """``value`` as Terraform JSON that reads back as written: in every string (map keys
    too, which Terraform also reads as templates) ``${`` and ``%{`` become ``$${`` and
    ``%%{``, except in cdktf's tokens and in an Expression, which is emitted as its text."""
    if isinstance(value, Expression):
        return value.text
    if isinstance(value, str):
        return _literal_text(value)
    if isinstance(value, Mapping):
        return {terraform_literal(k): terraform_literal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [terraform_literal(item) for item in value]
    return value


def _literal_text(text: str) -> str:
    pieces = _STRING_TOKEN.split(text)  # literal, token, literal, token, ..., literal
    for i in range(0, len(pieces), 2):
        literal = pieces[i].replace("${", "$${").replace("%{", "%%{")
        if literal.endswith("$") and i + 1 < len(pieces):
            # "$" + "${ref}" would read as the escape "$${"; interpolate the dollar instead.
            literal = literal[:-1] + '${"$"}'
        pieces[i] = literal
    return "".join(pieces)


class AwsProvider(TerraformProvider):
    """The hashicorp/aws provider with plain-dict attributes, aliased or the default.

    It declares itself as the "aws" provider the way generated bindings do
    (``terraformGeneratorMetadata.providerName``): cdktf checks, per stack, that every
    resource whose metadata names a provider has a provider construct of that name
    (lib/validations/validate-provider-presence.js), so resources of the prebuilt
    ``cdktf-cdktf-provider-aws`` bindings can use this provider. It also pins its stack's
    ``required_providers.aws`` to hashicorp/aws at ``version``, whatever other aws
    provider constructs (the bindings' says source "aws") the stack holds.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        alias: str | None,
        attributes: Mapping[str, Any],
        version: str,
    ) -> None:
        # Both must be set before super().__init__: jsii reads the alias override
        # while the base constructor computes the provider's fqn.
        self._alias = alias
        self._attributes = dict(attributes)
        super().__init__(
            scope,
            id,
            terraform_resource_type="aws",
            terraform_generator_metadata=TerraformProviderGeneratorMetadata(
                provider_name="aws", provider_version=version
            ),
            terraform_provider_source=AWS_PROVIDER_SOURCE,
        )
        stack = TerraformStack.of(self)
        stack.add_override("terraform.required_providers.aws.source", AWS_PROVIDER_SOURCE)
        stack.add_override("terraform.required_providers.aws.version", version)

    @builtins.property  # type: ignore[misc]
    @jsii.member(jsii_name="alias")
    def alias(self) -> str | None:
        return self._alias

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        attributes: Mapping[str, Any] = terraform_literal(self._attributes)
        if self._alias is None:
            return dict(attributes)
        return {**attributes, "alias": self._alias}


class RawResource(TerraformResource):
    """A Terraform resource of any type whose attributes are a plain dict.

    Every string in the attributes reaches Terraform literally (see terraform_literal);
    pass an Expression, or a reference from ref(), to have Terraform evaluate something.
    """

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
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        # A callable is evaluated at synthesis, for attributes that later
        # constructs still add to (e.g. user data parts).
        self._attributes = attributes
        super().__init__(
            scope, id, terraform_resource_type=resource_type, provider=provider, count=count
        )
        if logical_id is not None:
            self.override_logical_id(logical_id)
        # Meta-arguments (for_each, lifecycle) as written: cdktf drops them from the
        # attributes and would want its own iterator and lifecycle objects instead.
        for key, value in (meta or {}).items():
            self.add_override(key, value)

    @jsii.member(jsii_name="synthesizeAttributes")
    def _synthesize_attributes(self) -> Mapping[str, Any]:
        attributes = self._attributes() if callable(self._attributes) else self._attributes
        literal: Mapping[str, Any] = terraform_literal(attributes)
        return literal


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
        literal: Mapping[str, Any] = terraform_literal(self._attributes)
        return literal


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


# Annotation levels as cdktf records them in construct metadata and manifest.json
# (lib/annotations.js), named as we print them.
_LEVELS = {"@cdktf/info": "info", "@cdktf/warn": "warning", "@cdktf/error": "error"}
# Set by the cdktf CLI when it runs the app: synthesis then writes error annotations to
# the manifest instead of throwing, and the CLI prints every annotation itself.
CLI_PRINTS_ANNOTATIONS_ENV = "CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS"
# How cdktf words the failures whose message lists "[construct path] message" lines:
# error annotations, and construct or app validations (lib/errors.js).
_LISTED_FAILURES = re.compile(r"Encountered Annotations with level|Validation failed with")
_LISTED = re.compile(r"^\s*\[([^\]]*)\] (.+)$", re.MULTILINE)


@attrs.frozen
class Annotation:
    """A message a construct left for whoever synthesizes: info, warning or error."""

    level: str
    path: str
    message: str


def warn(scope: Construct, message: str) -> None:
    """A warning on ``scope``, printed at synthesis the way cdktf's own are."""
    Annotations.of(scope).add_warning(message)


def synthesize(app: App) -> list[Annotation]:
    """``app.synth()``, returning its info and warning annotations.

    An error annotation (or failed validation) is a PerfOpsError naming the construct:
    cdktf's own exception is a jsii traceback of some forty lines.
    """
    try:
        app.synth()
    except RuntimeError as error:
        text = str(error)
        listed = _LISTED.findall(text) if _LISTED_FAILURES.search(text) else []
        if not listed:
            raise
        (path, message), *others = listed
        more = f" (and {len(others)} more)" if others else ""
        raise PerfOpsError(f"{path}: {_one_line(message)}{more}") from None
    if os.environ.get(CLI_PRINTS_ANNOTATIONS_ENV):
        return []
    manifest = json.loads((Path(app.outdir) / "manifest.json").read_text())
    return [
        Annotation(_LEVELS[entry["level"]], entry["constructPath"], _one_line(entry["message"]))
        for stack in manifest.get("stacks", {}).values()
        for entry in stack.get("annotations", [])
        if entry.get("level") in _LEVELS
    ]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())

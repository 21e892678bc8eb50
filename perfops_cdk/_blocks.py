"""RawBlocks: many Terraform blocks of one construct as a single cdktf element."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
import jsii

from perfops_cdk._cdktf import Construct, TerraformElement, terraform_literal


@attrs.frozen
class _Block:
    kind: str  # "resource" or "data"
    type: str
    logical_id: str
    child: str  # the construct id it would have had, for cdktf's "//" metadata path
    attributes: Mapping[str, Any] | Callable[[], Mapping[str, Any]]
    meta: Mapping[str, Any]


class RawBlocks(TerraformElement):
    """Resources, data sources and outputs of one construct as a single cdktf element.

    Each RawResource is a jsii object: some ten round trips to the node runtime to
    create and a callback at synthesis. At fleet scale (68 region fleets of 11 each)
    that was 4-5 s of a 7 s synth (docs/benchmarks.md, Synth). Blocks added here reach
    the stack's JSON as a RawResource's would: attributes through terraform_literal,
    meta-arguments (for_each, lifecycle, depends_on) as written, and cdktf's ``"//"``
    metadata naming the path the block would have had as ``<parent>/<child>``.
    Nothing here is a construct of its own: aspects and ``node.find_child`` do not see
    the blocks, and another construct refers to one by its address (``Expression``).
    """

    def __init__(self, scope: Construct, id: str, parent: str) -> None:
        """``parent``: the construct path the blocks are named under (their scope's)."""
        super().__init__(scope, id)
        self._parent = parent
        self._blocks: list[_Block] = []
        self._outputs: dict[str, tuple[str, str]] = {}  # logical id -> (child, expression)

    def resource(
        self,
        child: str,
        type: str,
        logical_id: str,
        attributes: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """``attributes`` may be a callable, evaluated at synthesis."""
        self._blocks.append(_Block("resource", type, logical_id, child, attributes, meta or {}))

    def data(
        self,
        child: str,
        type: str,
        logical_id: str,
        attributes: Mapping[str, Any],
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._blocks.append(_Block("data", type, logical_id, child, attributes, meta or {}))

    def output(self, child: str, logical_id: str, expression: str) -> None:
        """An output whose value is the Terraform expression ``expression``."""
        self._outputs[logical_id] = (child, expression)

    def leave_out(self, kind: str, type: str, logical_id: str) -> None:
        """A block that a construct of its own now synthesizes instead."""
        self._blocks = [
            b for b in self._blocks if (b.kind, b.type, b.logical_id) != (kind, type, logical_id)
        ]

    @jsii.member(jsii_name="toTerraform")
    def to_terraform(self) -> Any:
        parent = self._parent
        out: dict[str, Any] = {}
        for block in self._blocks:
            raw = block.attributes() if callable(block.attributes) else block.attributes
            body: dict[str, Any] = {**terraform_literal(raw), **block.meta}
            body["//"] = {
                "metadata": {"path": f"{parent}/{block.child}", "uniqueId": block.logical_id}
            }
            out.setdefault(block.kind, {}).setdefault(block.type, {})[block.logical_id] = body
        if self._outputs:
            out["output"] = {name: {"value": value} for name, (_, value) in self._outputs.items()}
            # cdktf lists every output under "//".outputs by construct path.
            listed: dict[str, Any] = {}
            for name, (child, _) in self._outputs.items():
                level = listed
                for part in parent.split("/"):
                    level = level.setdefault(part, {})
                level[child] = name
            out["//"] = {"outputs": listed}
        return out

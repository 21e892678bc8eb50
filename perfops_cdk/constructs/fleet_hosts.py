"""A deployment's hosts in one region as Terraform expressions, for CDKTF users.

Fleets know the ids they launched (``fleet_instance_set``), not addresses; so each
region fleet reads its live hosts back with one ``aws_instances`` data source (by the
deployment's tags, after its fleets) and the region stack outputs what it read:
``<deployment>_instance_ids``, ``<deployment>_public_ips``, ``<deployment>_private_ips``.
``Deployment.hosts(region)`` hands the same three to other constructs as cdktf tokens;
used from another stack, cdktf turns each into a cross-stack reference (an output here,
a ``terraform_remote_state`` there, and a stack dependency that ``perfops deploy``
orders its waves by).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from perfops_cdk._cdktf import RawDataSource, TerraformStack
from perfops_cdk.planners.status import LIVE_STATES
from perfops_cdk.props.tags import TAG_DEPLOYMENT, TAG_STACK, TAG_UUID

if TYPE_CHECKING:
    from perfops_cdk.constructs.fleet import RegionFleet

SOURCE_TYPE = "aws_instances"
# Output name suffix -> attribute of the aws_instances data source.
OUTPUTS = {"instance_ids": "ids", "public_ips": "public_ips", "private_ips": "private_ips"}


@attrs.frozen
class RegionHosts:
    """One deployment's live hosts (pending or running) in one region, read after its
    fleets: each field a list of strings as a cdktf token, usable in any construct's
    attributes (``Fn.join(",", hosts.public_ips)``, a ``TerraformOutput``, a resource
    in this or another stack).

    ``ids`` and ``private_ips`` are in the same order; ``public_ips`` holds only the
    hosts that have one, so it lines up with ``ids`` only when every host has one.
    """

    region: str
    region_stack: TerraformStack = attrs.field(eq=False, repr=False)
    ids: list[str] = attrs.field(eq=False)
    public_ips: list[str] = attrs.field(eq=False)
    private_ips: list[str] = attrs.field(eq=False)
    output_names: tuple[str, str, str]  # in the region stack: ids, public, private


class LiveHosts:
    """The data source and outputs of one region fleet's live hosts.

    Both are written among the fleet's blocks; the data source becomes a construct of
    its own (a jsii object, whose attributes cdktf can turn into cross-stack references)
    only when ``record()`` is first asked for, i.e. when some construct uses the hosts.
    """

    def __init__(self, fleet: RegionFleet, tags: dict[str, str]) -> None:
        name = fleet.name
        self.fleet = fleet
        self.logical_id = f"{name}_live_hosts"
        self.attributes = {
            "instance_tags": {k: tags[k] for k in (TAG_UUID, TAG_STACK, TAG_DEPLOYMENT)},
            "instance_state_names": sorted(LIVE_STATES),
        }
        # Read after the fleets have launched (and on later plans, after any change).
        self.depends_on = [f"aws_ec2_fleet.{name}_hosts"]
        fleet.blocks.data(
            "live-hosts",
            SOURCE_TYPE,
            self.logical_id,
            self.attributes,
            meta={"depends_on": self.depends_on},
        )
        self.names: list[str] = []
        for suffix, attribute in OUTPUTS.items():
            value = f"${{data.{SOURCE_TYPE}.{self.logical_id}.{attribute}}}"
            fleet.blocks.output(suffix, f"{name}_{suffix}", value)
            self.names.append(f"{name}_{suffix}")
        self._source: RawDataSource | None = None
        self._record: RegionHosts | None = None

    def record(self) -> RegionHosts:
        """The tokens, made on first use (each costs a round trip to cdktf)."""
        if self._record is None:
            ids, public, private = (self._list(a) for a in OUTPUTS.values())
            self._record = RegionHosts(
                region=self.fleet.region,
                region_stack=TerraformStack.of(self.fleet),
                ids=ids,
                public_ips=public,
                private_ips=private,
                output_names=(self.names[0], self.names[1], self.names[2]),
            )
        return self._record

    def _list(self, attribute: str) -> list[str]:
        if self._source is None:
            self._source = RawDataSource(
                self.fleet,
                "live-hosts",
                source_type=SOURCE_TYPE,
                logical_id=self.logical_id,
                attributes=self.attributes,
            )
            self._source.add_override("depends_on", self.depends_on)
            self.fleet.blocks.leave_out("data", SOURCE_TYPE, self.logical_id)
        value: Any = self._source.get_list_attribute(attribute)
        return list(value)

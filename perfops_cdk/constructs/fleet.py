"""RegionFleet: one deployment's resources in one region stack.

Security groups, one launch template (AMI, user data, IMDSv2, encrypted root, tags,
groups) and instant EC2 Fleets in batches (planners/batches.py) over every listed
instance type in every zone that offers it. docs/design.md says why this shape.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import TYPE_CHECKING, Any

from perfops_cdk._blocks import RawBlocks
from perfops_cdk._cdktf import Construct
from perfops_cdk.constructs.fleet_hosts import LiveHosts
from perfops_cdk.constructs.region import RegionStack
from perfops_cdk.planners import batches
from perfops_cdk.planners.capacity import FALLBACK_KEY
from perfops_cdk.planners.lifetime import LIFETIME_TAG, SHUTDOWN_BEHAVIOR
from perfops_cdk.props.expression import Expression
from perfops_cdk.props.tags import resource_name

if TYPE_CHECKING:
    from perfops_cdk.constructs.deployment import Deployment

# Containers reach the metadata service through NAT: one hop more than the host.
METADATA_HOP_LIMIT = 2
ON_DEMAND_ALLOCATION = "lowestPrice"  # the provider's spelling of EC2's lowest-price


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _ref(address: str) -> Expression:
    """A reference inside the region stack, written out rather than asked of cdktf: the
    logical ids are ours, and every jsii round trip costs synthesis time."""
    return Expression(f"${{{address}}}")


class RegionFleet(Construct):
    """The resources of ``deployment`` in ``region``, placed in the region's stack."""

    def __init__(self, deployment: Deployment, region_stack: RegionStack) -> None:
        super().__init__(region_stack, deployment.name)
        self.deployment = deployment
        self.region = region_stack.region
        name = deployment.name
        # Every block of this deployment here is one cdktf element (RawBlocks says why).
        self.blocks = RawBlocks(self, "terraform", f"{region_stack.path}/{name}")
        self.group_ids = [self._security_group(g.name, g) for g in deployment.groups]
        self.blocks.data(
            "ami",
            "aws_ami",
            f"{name}_ami",
            {"filter": [{"name": "image-id", "values": [self.ami_id]}]},
        )
        self.blocks.resource(
            "template",
            "aws_launch_template",
            f"{name}_template",
            self._template_attributes,
            # The provider (and EC2 on a real account) reads back fields of a launch
            # template that differ from what was sent; the name carries a hash of the
            # whole content, so any real change is a new template, never an update.
            meta={"lifecycle": {"ignore_changes": ["tag_specifications"]}},
        )
        self.blocks.data(
            "offerings",
            "aws_ec2_instance_type_offerings",
            f"{name}_offerings",
            {
                "location_type": "availability-zone",
                "filter": [{"name": "instance-type", "values": list(self.capacity.instance_types)}],
            },
        )
        self._fleets()
        region_stack.add_summary(name, self.summary)
        # Outputs <name>_instance_ids, _public_ips, _private_ips; Deployment.hosts().
        self.live_hosts = LiveHosts(self, deployment.tags_for(""))

    @property
    def capacity(self) -> Any:
        return self.deployment.props.buying

    @property
    def ami_id(self) -> str:
        return self.deployment.amis[self.region]

    @property
    def host_count(self) -> int:
        return self.deployment.props.regions[self.region]

    def batches(self) -> list[batches.Batch]:
        """The regular batches, and the on-demand fallback batch a deploy found spot
        short of (planners/capacity.py), if any."""
        capacity = self.capacity
        on_demand = batches.on_demand_hosts(
            self.host_count,
            spot=capacity.is_spot,
            base=capacity.on_demand_base,
            percent=capacity.on_demand_percent,
        )
        planned = batches.split(self.host_count, capacity.batch_size, on_demand)
        if capacity.is_spot and capacity.fallback_to_on_demand:
            extra = self.deployment.stack.fallback_hosts(self.region, self.name)
            if extra:
                planned.append(batches.Batch(FALLBACK_KEY, extra, extra))
        return planned

    def _security_group(self, group_name: str, group: Any) -> Expression:
        deployment = self.deployment
        sg_name = resource_name(deployment.stack.uuid, deployment.stack_id, self.name, group_name)
        self.blocks.resource(
            f"sg-{group_name}",
            "aws_security_group",
            f"{self.name}_{group_name}",
            {
                "name": sg_name,
                "description": group.description or f"perf-ops {group_name}",
                "ingress": [r.to_terraform() for r in group.ingress],
                "egress": [r.to_terraform() for r in group.egress],
                "tags": deployment.tags_for(sg_name),
            },
        )
        return _ref(f"aws_security_group.{self.name}_{group_name}.id")

    @property
    def name(self) -> str:
        return self.deployment.name

    def _template_content(self) -> dict[str, Any]:
        """Everything that defines a host, without references (so it hashes stably)."""
        deployment = self.deployment
        props = deployment.props
        host_name = resource_name(
            deployment.stack.uuid, deployment.stack_id, self.name, self.region
        )
        tags = deployment.tags_for(host_name)
        content: dict[str, Any] = {
            "image_id": self.ami_id,
            "instance_type": self.capacity.smallest_type,
            "metadata_options": {
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": METADATA_HOP_LIMIT,
            },
            "block_device_mappings": [
                {
                    "device_name": _ref(f"data.aws_ami.{self.name}_ami.root_device_name"),
                    "ebs": {
                        "volume_size": props.root_volume.size_gib,
                        "volume_type": props.root_volume.volume_type,
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            "tag_specifications": [
                {"resource_type": "instance", "tags": {**deployment.instance_tags, **tags}},
                {"resource_type": "volume", "tags": tags},
                # Spot requests too, so a leftover one is found by the same tags.
                {"resource_type": "spot-instances-request", "tags": tags},
            ],
            "tags": tags,
        }
        if (user_data := deployment.user_data) is not None:
            content["user_data"] = base64.b64encode(user_data.encode()).decode()
        if props.key_name:
            content["key_name"] = props.key_name
        if props.lifetime is not None:
            # Its user data powers the host off when the lifetime is over (planners/lifetime.py).
            content["instance_initiated_shutdown_behavior"] = SHUTDOWN_BEHAVIOR
        content.update(props.raw_attributes)
        return content

    def _template_attributes(self) -> dict[str, Any]:
        content = self._template_content()
        groups = [g.name for g in self.deployment.groups]
        prefix = resource_name(self.deployment.stack.uuid, self.deployment.stack_id, self.name)
        return {
            **content,
            "name": f"{prefix}-{_hash([content, groups])}",
            "vpc_security_group_ids": self.group_ids,
        }

    def _fleets(self) -> None:
        capacity = self.capacity
        name = self.name
        offerings = f"data.aws_ec2_instance_type_offerings.{name}_offerings"
        override: dict[str, Any] = {
            "instance_type": Expression("${override.value.type}"),
            "availability_zone": Expression("${override.value.zone}"),
        }
        if capacity.is_spot and capacity.max_price is not None:
            override["max_price"] = capacity.max_price
        planned = {b.key: {"hosts": b.hosts, "on_demand": b.on_demand} for b in self.batches()}
        template = f"aws_launch_template.{name}_template"
        self.blocks.resource(
            "spec",
            "terraform_data",
            f"{name}_spec",
            meta={"for_each": planned},
            attributes={
                "input": {
                    "template": _ref(f"{template}.id"),
                    "hosts": Expression("${each.value.hosts}"),
                    "on_demand": Expression("${each.value.on_demand}"),
                    "capacity": _hash(
                        [
                            capacity.instance_types,
                            capacity.market,
                            capacity.max_price,
                            capacity.allocation,
                        ]
                    ),
                },
            },
        )
        fleet_attributes: dict[str, Any] = {
            "type": "instant",
            "terminate_instances": True,
            "launch_template_config": [
                {
                    "launch_template_specification": {
                        "launch_template_id": _ref(f"{template}.id"),
                        "version": _ref(f"{template}.latest_version"),
                    },
                    "dynamic": {
                        "override": {
                            "for_each": Expression(
                                f"${{{{for i, t in {offerings}.instance_types : "
                                f'"${{t}}/${{{offerings}.locations[i]}}" => '
                                f"{{type = t, zone = {offerings}.locations[i]}}}}}}"
                            ),
                            "content": override,
                        }
                    },
                }
            ],
            "target_capacity_specification": {
                "default_target_capacity_type": capacity.market,
                "total_target_capacity": Expression("${each.value.hosts}"),
                "on_demand_target_capacity": Expression("${each.value.on_demand}"),
                "spot_target_capacity": Expression("${each.value.hosts - each.value.on_demand}"),
            },
            "on_demand_options": {"allocation_strategy": ON_DEMAND_ALLOCATION},
            "tags": self.deployment.tags_for(
                resource_name(
                    self.deployment.stack.uuid,
                    self.deployment.stack_id,
                    name,
                    self.region,
                )
            ),
        }
        if capacity.is_spot:
            fleet_attributes["spot_options"] = {
                "allocation_strategy": capacity.allocation,
                "instance_interruption_behavior": "terminate",
            }
        self.blocks.resource(
            "hosts",
            "aws_ec2_fleet",
            f"{name}_hosts",
            attributes=fleet_attributes,
            meta={
                "for_each": planned,
                # An instant fleet is immutable: any change replaces it (and its hosts).
                # Its spec (terraform_data) says when; what EC2 reads back never does.
                "lifecycle": {
                    "ignore_changes": "all",
                    "replace_triggered_by": [f"terraform_data.{name}_spec[each.key]"],
                },
            },
        )

    def summary(self) -> dict[str, Any]:
        """What ``perfops status``, the preflight and the cost estimate read."""
        capacity = self.capacity
        deployment = self.deployment
        return {
            "hosts": self.host_count,
            "ami": self.ami_id,
            "image": deployment.image.name,
            "image_path": deployment.image_path,
            "prebuilt_image": deployment.image.is_prebuilt,
            "instance_types": list(capacity.instance_types),
            "market": capacity.market,
            "on_demand_hosts": sum(b.on_demand for b in self.batches() if b.key != FALLBACK_KEY),
            "fallback_hosts": sum(b.hosts for b in self.batches() if b.key == FALLBACK_KEY),
            "batches": {b.key: b.hosts for b in self.batches()},
            "fallback_to_on_demand": capacity.is_spot and capacity.fallback_to_on_demand,
            "max_price": capacity.max_price,
            "root_volume_gib": deployment.props.root_volume.size_gib,
            "root_volume_type": deployment.props.root_volume.volume_type,
            "security_groups": [
                resource_name(deployment.stack.uuid, deployment.stack_id, self.name, g.name)
                for g in deployment.groups
            ],
            "containers_per_host": deployment.containers_per_host,
            "lifetime": deployment.instance_tags.get(LIFETIME_TAG),
        }

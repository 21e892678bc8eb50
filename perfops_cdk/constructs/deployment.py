"""Deployment: hosts of one image and instance type across regions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from perfops_cdk._cdktf import Construct, RawResource, TerraformOutput, ref, warn
from perfops_cdk.constructs.base import located
from perfops_cdk.constructs.image import ImageAsset
from perfops_cdk.constructs.stack import MANAGED_BY, PerfOpsStack, check_stack_child
from perfops_cdk.errors import InvalidField
from perfops_cdk.planners.user_data import check_user_data_size, render_user_data
from perfops_cdk.props.deployment import DeploymentProps, RootVolume, Spot, UserDataPart
from perfops_cdk.props.expression import Expression
from perfops_cdk.props.network import ALLOW_EGRESS, SecurityGroup, allow_ssh
from perfops_cdk.props.regions import provider_alias

# Containers reach the metadata service through NAT: one hop more than the host.
METADATA_HOP_LIMIT = 2


class Deployment(Construct):
    """Hosts running one image, ``regions[r]`` of them in each region ``r``.

    :param image: the ImageAsset the hosts boot.
    :param instance_type: e.g. ``r5d.2xlarge``.
    :param regions: region -> host count (0 keeps the region declared but empty).
    :param security_groups: names from the catalog (``allow-ssh``, ``allow-egress``),
        names declared on the stack, or SecurityGroup values. Default: ``allow-egress``.
    :param ssh_cidrs: where ``allow-ssh`` admits SSH from. Default: nowhere; SSH from
        ``0.0.0.0/0`` only if written here.
    :param root_volume: size and type of the encrypted root volume. Default 30 GiB gp3.
    :param spot: ``Spot(...)`` for one-time spot hosts. Default: on-demand.
    :param user_data: extra first-boot shell parts. Default: none.
    :param tags: extra tags on hosts and their volumes. Default: only perfops' own.
    :param key_name: an EC2 key pair for SSH. Default: none.
    :param raw_attributes: extra ``aws_instance`` arguments (perf-ops' ``customConfig``).
        Strings in them reach Terraform literally, as every string perfops emits does;
        ``Expression("${...}")`` is the way to pass Terraform syntax on purpose. They
        cannot weaken the safe defaults: no key, at any depth, that touches volume
        encryption (``encrypted``, ``ebs_block_device``, ...), instance metadata
        (``metadata_options``, ``http_tokens``, ...), network exposure
        (``associate_public_ip_address``, ``network_interface``, security group keys) or
        user data, and no Terraform meta-argument (``provisioner``, ``lifecycle``, ...);
        see ``props/raw_attributes.py``. Default: none.
    """

    def __init__(
        self,
        scope: PerfOpsStack,
        id: str,
        *,
        image: ImageAsset,
        instance_type: str,
        regions: Mapping[str, int],
        security_groups: Sequence[str | SecurityGroup] = ("allow-egress",),
        ssh_cidrs: Sequence[str] = (),
        root_volume: RootVolume | None = None,
        spot: Spot | None = None,
        user_data: Sequence[UserDataPart] = (),
        tags: Mapping[str, str] | None = None,
        key_name: str | None = None,
        raw_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        path = check_stack_child(scope, id)
        self.props = located(
            path,
            lambda: DeploymentProps(
                instance_type=instance_type,
                regions=regions,
                security_groups=security_groups,
                ssh_cidrs=ssh_cidrs,
                root_volume=root_volume or RootVolume(),
                spot=spot,
                user_data=user_data,
                tags=tags or {},
                key_name=key_name,
                raw_attributes=raw_attributes or {},
            ),
        )
        if not isinstance(image, ImageAsset) or image.stack is not scope:
            allowed = f"must be an ImageAsset of {scope.node.path}"
            raise InvalidField("image", getattr(image, "name", image), allowed).at(path)
        groups = located(path, lambda: self._resolve_groups(scope))
        self.amis = image.check_regions(self.props.used_regions, path)
        self._parts: list[UserDataPart] = []
        located(path, lambda: self._check_parts(self.props.user_data))
        self._parts.extend(self.props.user_data)

        super().__init__(scope, id)
        self.stack = scope
        self.image = image
        self.groups = groups
        # Tags only the hosts carry, added by constructs that extend the deployment
        # (HostContainers records its container count for ``perfops status``).
        self.instance_tags: dict[str, str] = {}
        scope.deployments.append(self)
        for message in self.props.warnings():
            warn(self, message)
        for region in self.props.used_regions:
            self._declare_region(region)

    def add_user_data(self, part: UserDataPart) -> None:
        """Add a first-boot part; the rendered whole must stay within EC2's 16 KB."""
        located(self.node.path, lambda: self._check_parts([part]))
        self._parts.append(part)

    @property
    def user_data(self) -> str | None:
        return render_user_data(self._parts)

    @property
    def user_data_parts(self) -> tuple[UserDataPart, ...]:
        """The parts added so far, in the order they were added."""
        return tuple(self._parts)

    def _check_parts(self, new: Sequence[UserDataPart]) -> None:
        names = {p.name for p in self._parts}
        for part in new:
            if not isinstance(part, UserDataPart):
                raise InvalidField("user_data", part, "each part must be a UserDataPart")
            if part.name in names:
                raise InvalidField("user_data", part.name, "part names must be unique")
            names.add(part.name)
        check_user_data_size(render_user_data([*self._parts, *new]))

    def tags_for(self, name: str | Expression) -> dict[str, str | Expression]:
        """Our tags (which user tags may not replace) over the user's."""
        return {
            **self.props.tags,
            "Name": name,
            "perf-ops": self.stack.uuid,
            "deployment": self.node.id,
            "image": self.image.name,
            "managed-by": MANAGED_BY,
        }

    def _resolve_groups(self, stack: PerfOpsStack) -> list[SecurityGroup]:
        resolved: list[SecurityGroup] = []
        for group in self.props.security_groups:
            if isinstance(group, SecurityGroup):
                resolved.append(group)
            elif group == "allow-egress":
                resolved.append(ALLOW_EGRESS)
            elif group == "allow-ssh":
                if not self.props.ssh_cidrs:
                    raise InvalidField(
                        "security_groups",
                        "allow-ssh",
                        "needs ssh_cidrs, e.g. ssh_cidrs=['203.0.113.0/24'] "
                        "(write '0.0.0.0/0' to admit everyone)",
                    )
                resolved.append(allow_ssh(self.props.ssh_cidrs))
            elif (declared := stack.security_group(group)) is not None:
                resolved.append(declared)
            else:
                known = ", ".join(["allow-egress", "allow-ssh", *stack.security_group_names])
                allowed = f"must be one of {known} or a SecurityGroup"
                raise InvalidField("security_groups", group, allowed)
        return resolved

    def _declare_region(self, region: str) -> None:
        alias = provider_alias(region)
        provider = self.stack.provider_for(region)
        scope = Construct(self, region)
        prefix = f"perf-ops-{self.stack.uuid}-{self.node.id}"
        group_ids = []
        for group in self.groups:
            name = f"{prefix}-{group.name}"
            sg = RawResource(
                scope,
                group.name,
                resource_type="aws_security_group",
                provider=provider,
                logical_id=f"{self.node.id}_{alias}_{group.name}",
                attributes={
                    "name": name,
                    "description": group.description or f"perf-ops {group.name}",
                    "ingress": [r.to_terraform() for r in group.ingress],
                    "egress": [r.to_terraform() for r in group.egress],
                    "tags": self.tags_for(name),
                },
            )
            group_ids.append(ref(sg, "id"))
        instance_id = f"{self.node.id}_{alias}"
        host_name = Expression(f"{prefix}-{region}-${{count.index}}")

        def instance_attributes() -> dict[str, Any]:
            tags = self.tags_for(host_name)
            attributes: dict[str, Any] = {
                "ami": self.amis[region],
                "instance_type": self.props.instance_type,
                "vpc_security_group_ids": group_ids,
                "metadata_options": {
                    "http_endpoint": "enabled",
                    "http_tokens": "required",
                    "http_put_response_hop_limit": METADATA_HOP_LIMIT,
                },
                "root_block_device": {
                    "volume_size": self.props.root_volume.size_gib,
                    "volume_type": self.props.root_volume.volume_type,
                    "encrypted": True,
                    "delete_on_termination": True,
                    "tags": tags,
                },
                "tags": {**self.instance_tags, **tags},
            }
            if (user_data := self.user_data) is not None:
                attributes["user_data"] = user_data
            if self.props.key_name:
                attributes["key_name"] = self.props.key_name
            if self.props.spot is not None:
                spot_options: dict[str, Any] = {
                    "spot_instance_type": "one-time",
                    "instance_interruption_behavior": "terminate",
                }
                if self.props.spot.max_price is not None:
                    spot_options["max_price"] = self.props.spot.max_price
                attributes["instance_market_options"] = {
                    "market_type": "spot",
                    "spot_options": spot_options,
                }
            attributes.update(self.props.raw_attributes)
            return attributes

        RawResource(
            scope,
            "hosts",
            resource_type="aws_instance",
            provider=provider,
            count=self.props.regions[region],
            logical_id=instance_id,
            attributes=instance_attributes,
        )
        output = TerraformOutput(
            scope, "instance_ids", value=f"${{aws_instance.{instance_id}[*].id}}"
        )
        output.override_logical_id(f"{instance_id}_instance_ids")

"""Security groups: the named catalog and user-defined groups."""

from __future__ import annotations

from typing import Any

import attrs

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.fields import each, int_range, one_of, to_tuple, using
from perfops_cdk.props.validators import check_cidr, check_description, check_name

PROTOCOLS = frozenset({"tcp", "udp", "icmp", "all"})
MAX_RULES_PER_DIRECTION = 60  # AWS default quota per security group
ANYWHERE_V4 = "0.0.0.0/0"
ANYWHERE_V6 = "::/0"


@attrs.frozen
class Rule:
    """One ingress or egress rule.

    ``to_port`` defaults to ``from_port`` (a single port). ``protocol="all"`` means
    every protocol and port (ports are ignored).
    """

    from_port: int = attrs.field(validator=int_range(0, 65535))
    cidrs: tuple[str, ...] = attrs.field(converter=to_tuple, validator=each(check_cidr))
    to_port: int | None = attrs.field(default=None)
    protocol: str = attrs.field(default="tcp", validator=one_of(PROTOCOLS))
    description: str = attrs.field(default="", validator=using(check_description))

    def __attrs_post_init__(self) -> None:
        if not self.cidrs:
            raise InvalidField("cidrs", [], "a rule needs at least one CIDR block")
        if self.to_port is not None:
            int_range(self.from_port, 65535)(self, attrs.fields(Rule).to_port, self.to_port)

    @property
    def port_range(self) -> tuple[int, int]:
        if self.protocol == "all":
            return (0, 0)
        return (self.from_port, self.to_port if self.to_port is not None else self.from_port)

    def to_terraform(self) -> dict[str, Any]:
        """The inline rule block as the aws provider expects it (all keys present)."""
        low, high = self.port_range
        return {
            "from_port": low,
            "to_port": high,
            "protocol": "-1" if self.protocol == "all" else self.protocol,
            "cidr_blocks": [c for c in self.cidrs if ":" not in c],
            "ipv6_cidr_blocks": [c for c in self.cidrs if ":" in c],
            "description": self.description,
            "prefix_list_ids": [],
            "security_groups": [],
            "self": False,
        }


def _check_rules(_: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    if not isinstance(value, tuple):
        raise InvalidField(attribute.name, value, "must be a list of perfops_cdk.Rule")
    if len(value) > MAX_RULES_PER_DIRECTION:
        raise InvalidField(
            attribute.name,
            f"{len(value)} rules",
            f"at most {MAX_RULES_PER_DIRECTION} per security group (AWS quota)",
        )
    for rule in value:
        if not isinstance(rule, Rule):
            raise InvalidField(attribute.name, rule, "each rule must be a perfops_cdk.Rule")


@attrs.frozen
class SecurityGroup:
    """A named security group, created per region and deployment.

    By default it has no rules: no ingress, and no egress either.
    """

    name: str = attrs.field(validator=using(check_name))
    description: str = attrs.field(default="", validator=using(check_description))
    ingress: tuple[Rule, ...] = attrs.field(default=(), converter=to_tuple, validator=_check_rules)
    egress: tuple[Rule, ...] = attrs.field(default=(), converter=to_tuple, validator=_check_rules)


ALLOW_EGRESS = SecurityGroup(
    name="allow-egress",
    description="All outbound traffic",
    egress=(Rule(from_port=0, protocol="all", cidrs=(ANYWHERE_V4, ANYWHERE_V6)),),
)


def allow_ssh(cidrs: tuple[str, ...]) -> SecurityGroup:
    """SSH from the deployment's ``ssh_cidrs`` only."""
    return SecurityGroup(
        name="allow-ssh",
        description="SSH from the deployment ssh_cidrs",
        ingress=(Rule(from_port=22, cidrs=cidrs, description="ssh"),),
    )


CATALOG_NAMES = ("allow-egress", "allow-ssh")

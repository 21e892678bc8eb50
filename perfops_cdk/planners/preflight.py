"""Will a region hold what the app asks of it? Pure checks over what EC2 reported.

Per region: the listed instance types EC2 offers there (and in which zones), and the
vCPUs the declared hosts need against the account's EC2 vCPU quotas, on-demand and
spot, net of what already runs there outside this stack. A fleet may launch any listed
type, so the need is a range: with the smallest type (sure to be needed) and with the
largest (may be needed). Short of the first is a blocking line; short of the second,
a warning. A quota that cannot be read is said so and not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import attrs

from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.props.regions import regions_text

# EC2's vCPU quotas for the standard families (A, C, D, H, I, M, R, T, Z).
ON_DEMAND_STANDARD = (
    "L-1216C47A",
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
)
SPOT_STANDARD = ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests")
_STANDARD = frozenset("acdhimrtz")
_FAMILY = re.compile(r"^([a-z]+)")


def is_standard(instance_type: str) -> bool:
    """In the standard-family quotas (r5d, c7g, t3, ...; not inf, dl, trn, g, p, x)."""
    found = _FAMILY.match(instance_type)
    return found is not None and found.group(1) in _STANDARD


@attrs.frozen
class RegionFacts:
    """What EC2 said about a region (None: could not be read, with why)."""

    region: str
    zones: Mapping[str, tuple[str, ...]]  # offered type -> its zones
    vcpus: Mapping[str, int]  # type -> vCPUs (listed types and those already running)
    quotas: Mapping[str, float | None]  # quota code -> vCPUs (None: unreadable)
    quota_errors: Mapping[str, str] = attrs.field(factory=dict)
    in_use: Mapping[str, int] = attrs.field(factory=dict)  # "on-demand"/"spot" -> vCPUs


@attrs.frozen
class Finding:
    region: str
    text: str
    blocking: bool

    def line(self) -> str:
        return f"{self.region}: {self.text}"


def finding_lines(findings: Iterable[Finding], regions: Sequence[str]) -> list[str]:
    """Findings as lines to print: what blocks, one line per region first; then each
    other finding once, prefixed by the regions it holds for (``regions_text``, among
    ``regions``, the regions checked)."""
    found = list(findings)
    lines = [f.line() for f in found if f.blocking]
    alike: dict[str, list[str]] = {}
    for finding in found:
        if not finding.blocking:
            alike.setdefault(finding.text, []).append(finding.region)
    lines += [f"{regions_text(where, regions)}: {text}" for text, where in alike.items()]
    return lines


def check(groups: Iterable[HostGroup], facts: RegionFacts) -> list[Finding]:
    """Findings for one region's host groups."""
    found: list[Finding] = []
    need = {"on-demand": [0, 0], "spot": [0, 0]}
    for group in groups:
        offered = [t for t in group.instance_types if facts.zones.get(t)]
        missing = [t for t in group.instance_types if not facts.zones.get(t)]
        if not offered:
            found.append(
                Finding(
                    facts.region,
                    f"{group.deployment}: none of {', '.join(group.instance_types)} is "
                    f"offered in {facts.region}; list a type this region has",
                    True,
                )
            )
            continue
        if missing:
            found.append(
                Finding(
                    facts.region,
                    f"{group.deployment}: {', '.join(missing)} not offered here; hosts will "
                    f"use {', '.join(offered)}",
                    False,
                )
            )
        standard = [t for t in offered if is_standard(t)]
        if len(standard) < len(offered):
            others = sorted(set(offered) - set(standard))
            found.append(
                Finding(
                    facts.region,
                    f"{group.deployment}: the vCPU quota of {', '.join(others)} is not checked "
                    "(only the standard families are)",
                    False,
                )
            )
        sizes = [facts.vcpus[t] for t in standard if t in facts.vcpus]
        if not sizes:
            continue
        on_demand = group.on_demand_hosts + group.fallback_hosts
        spot = group.hosts - group.on_demand_hosts
        for market, hosts in (("on-demand", on_demand), ("spot", spot)):
            need[market][0] += hosts * min(sizes)
            need[market][1] += hosts * max(sizes)
    for market, (code, name) in (("on-demand", ON_DEMAND_STANDARD), ("spot", SPOT_STANDARD)):
        low, high = need[market]
        if not high:
            continue
        quota = facts.quotas.get(code)
        if quota is None:
            why = facts.quota_errors.get(code, "not readable")
            found.append(
                Finding(
                    facts.region, f"{market} vCPU quota '{name}' ({code}) {why}; not checked", False
                )
            )
            continue
        free = quota - facts.in_use.get(market, 0)
        span = f"{low}" if low == high else f"{low} to {high}"
        where = (
            f"{market} hosts need {span} vCPUs; quota '{name}' ({code}) is {quota:g} with "
            f"{facts.in_use.get(market, 0)} in use by others"
        )
        if low > free:
            found.append(Finding(facts.region, f"{where}: short by {low - free:g}", True))
        elif high > free:
            found.append(
                Finding(facts.region, f"{where}: enough only if EC2 picks smaller types", False)
            )
    return found

"""``perfops status``: declared hosts against what EC2 runs under the deployer's uuid."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs

from perfops_cdk.effects import ec2_instances
from perfops_cdk.operations.loading import READ_PARALLEL, concurrently, load, regions_of
from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import Host, StatusRow, drift, status_rows
from perfops_cdk.project import Project
from perfops_cdk.props.regions import DEFAULT_REGIONS


@attrs.frozen
class Status:
    rows: tuple[StatusRow, ...]
    regions: tuple[str, ...]
    synthesized: bool
    groups: tuple[HostGroup, ...] = ()  # as declared
    hosts: tuple[Host, ...] = ()  # as EC2 reports them, for the running cost

    @property
    def drift(self) -> bool:
        return drift(self.rows)


def status(
    project: Project,
    *,
    synth: bool | None = None,
    all_regions: bool = False,
    now: datetime | None = None,
) -> Status:
    """Per stack, deployment and region: hosts declared and live, and live hosts of the
    deployer no declaration accounts for. Looks in every region the project declares or
    still has region stacks in (``all_regions``: every default region too).

    ``synth`` None: re-synthesize only when the app's sources are newer than the last
    synthesis; True or False force it either way. ``now``: the clock for the hosts'
    time left (default: the current time).
    """
    synthesized = synth if synth is not None else project.stale()
    if synthesized:
        project.synth()
    loaded = load(project)
    units = [u for u in loaded.units]
    uuids = sorted({uuid for uuid, _, _ in regions_of(units)})
    regions = {region for _, _, region in regions_of(units)}
    if all_regions:
        regions |= set(DEFAULT_REGIONS)
    places = sorted((uuid, region) for uuid in uuids for region in regions)
    found = concurrently(places, lambda p: ec2_instances.hosts(p[1], p[0]), READ_PARALLEL)
    groups = [g for u in units for g in u.groups]
    live = [h for hosts in found for h in hosts]
    rows = status_rows(groups, live, now or datetime.now(UTC))
    return Status(
        rows=tuple(rows),
        regions=tuple(sorted(regions)),
        synthesized=synthesized,
        groups=tuple(groups),
        hosts=tuple(live),
    )

"""The hosts of a project as EC2 reports them: stacks, indices, targets, ssh config.

Hosts are found by tags only (docs/operations.md): ``perf-ops`` (deployer uuid),
``stack`` (absent on hosts of the single-stack layout), ``deployment``, ``image``,
``managed-by``, the containers tag and ``Name``. A host's *index* is not a tag: it is
its position in its (stack, deployment, region) group of live hosts, sorted by
(launch time, instance id). It is stable as long as the group's hosts do not change.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.containers import CONTAINERS_TAG
from perfops_cdk.planners.lifetime import LIFETIME_TAG, expires_at
from perfops_cdk.planners.status import LIVE_STATES
from perfops_cdk.props.tags import TAG_STACK, TAG_UUID

UUID_TAG = TAG_UUID
STACK_TAG = TAG_STACK
JSON_VERSION = 1
UNKNOWN_STACK = "?"
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_SSH_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@attrs.frozen
class StackScope:
    """Where one stack's hosts can be: its deployer uuid and its regions."""

    stack: str
    uuid: str
    regions: tuple[str, ...]


@attrs.frozen
class Instance:
    """One EC2 instance, with the fields and tags perfops uses."""

    instance_id: str
    region: str
    state: str
    uuid: str
    stack_tag: str | None
    deployment: str
    image: str
    name: str
    containers: int
    public_ip: str | None
    private_ip: str | None
    availability_zone: str
    launch_time: datetime
    key_name: str | None
    lifetime: str | None = None  # the perf-ops:lifetime tag, e.g. "8h"

    @property
    def expires(self) -> datetime | None:
        """When the host terminates itself: launch time + lifetime (None without one)."""
        return expires_at(self.launch_time, self.lifetime)

    @classmethod
    def from_ec2(cls, region: str, raw: Mapping[str, Any]) -> Instance:
        """From one ``Instances`` item of DescribeInstances; launch time in UTC."""
        tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
        launched = raw.get("LaunchTime")
        if isinstance(launched, datetime):
            launched = launched.astimezone(UTC)
        else:
            launched = datetime.fromtimestamp(0, UTC)
        return cls(
            instance_id=raw["InstanceId"],
            region=region,
            state=raw.get("State", {}).get("Name", "?"),
            uuid=tags.get(UUID_TAG, ""),
            stack_tag=tags.get(STACK_TAG) or None,
            deployment=tags.get("deployment", "?"),
            image=tags.get("image", "?"),
            name=tags.get("Name", ""),
            containers=_count(tags.get(CONTAINERS_TAG)),
            public_ip=raw.get("PublicIpAddress") or None,
            private_ip=raw.get("PrivateIpAddress") or None,
            availability_zone=raw.get("Placement", {}).get("AvailabilityZone", "?"),
            launch_time=launched,
            key_name=raw.get("KeyName") or None,
            lifetime=tags.get(LIFETIME_TAG) or None,
        )


def _count(tag: str | None) -> int:
    """Containers per host from the tag; 0 when absent or not a number."""
    try:
        return max(0, int(tag or 0))
    except ValueError:
        return 0


@attrs.frozen
class FleetHost:
    """An instance placed in its stack, with its index (None unless live)."""

    stack: str
    index: int | None
    instance: Instance

    @property
    def deployment(self) -> str:
        return self.instance.deployment

    @property
    def region(self) -> str:
        return self.instance.region

    @property
    def label(self) -> str:
        """``deployment/region/index``: how output names the host; the id when not live."""
        if self.index is None:
            return self.instance.instance_id
        return f"{self.deployment}/{self.region}/{self.index}"

    @property
    def ssh_name(self) -> str | None:
        """``perfops-<deployment>-<region>-<index>``, the ``Host`` of ``perfops ssh-config``."""
        if self.index is None:
            return None
        deployment = _SSH_NAME_UNSAFE.sub("-", self.deployment)
        return f"perfops-{deployment}-{self.region}-{self.index}"


def _stack_of(instance: Instance, scopes: Sequence[StackScope]) -> str:
    """The ``stack`` tag; without it (hosts made before stacks were tagged), the stack
    of the same uuid that uses the region, else the first of that uuid."""
    if instance.stack_tag:
        return instance.stack_tag
    same_uuid = [s for s in scopes if s.uuid == instance.uuid]
    in_region = [s for s in same_uuid if instance.region in s.regions]
    chosen = in_region or same_uuid
    return chosen[0].stack if chosen else UNKNOWN_STACK


def index_hosts(instances: Iterable[Instance], scopes: Sequence[StackScope]) -> list[FleetHost]:
    """Place every instance in its stack and number the live ones of each group.

    Sorted by stack, deployment, region, then index (hosts that are not live last).
    """
    groups: dict[tuple[str, str, str], list[Instance]] = {}
    for instance in instances:
        key = (_stack_of(instance, scopes), instance.deployment, instance.region)
        groups.setdefault(key, []).append(instance)
    placed: list[FleetHost] = []
    for (stack, _, _), members in sorted(groups.items()):
        live = sorted(
            (i for i in members if i.state in LIVE_STATES),
            key=lambda i: (i.launch_time, i.instance_id),
        )
        placed.extend(FleetHost(stack, index, i) for index, i in enumerate(live))
        rest = sorted((i for i in members if i.state not in LIVE_STATES), key=_launch_order)
        placed.extend(FleetHost(stack, None, i) for i in rest)
    return placed


def _launch_order(instance: Instance) -> tuple[datetime, str]:
    return (instance.launch_time, instance.instance_id)


@attrs.frozen
class Target:
    """What ``perfops ssh`` and friends were asked for: a group, one host, or an id."""

    text: str
    deployment: str | None = None
    region: str | None = None
    index: int | None = None
    instance_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        """``deployment``, ``deployment/region``, ``deployment/region/index`` or ``i-...``."""
        if _INSTANCE_ID.match(text):
            return cls(text, instance_id=text)
        parts = text.split("/")
        if not 1 <= len(parts) <= 3 or not all(parts):
            raise PerfOpsError(
                f"target {text!r}: expected DEPLOYMENT, DEPLOYMENT/REGION, "
                "DEPLOYMENT/REGION/INDEX or an instance id (i-...)"
            )
        index = None
        if len(parts) == 3:
            if not parts[2].isdigit():
                raise PerfOpsError(f"target {text!r}: index {parts[2]!r} must be a number >= 0")
            index = int(parts[2])
        return cls(text, parts[0], parts[1] if len(parts) > 1 else None, index)

    @property
    def one_host(self) -> bool:
        return self.instance_id is not None or self.index is not None


def _suggest(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, sorted(set(known)), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _names(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values))) or "none"


def select(
    hosts: Sequence[FleetHost], target: Target, *, live_only: bool = True
) -> list[FleetHost]:
    """The hosts ``target`` names; one line naming what exists when it names none."""
    if target.instance_id is not None:
        found = [h for h in hosts if h.instance.instance_id == target.instance_id]
        if not found:
            raise PerfOpsError(f"target {target.text!r}: no host of this project has that id")
        return found
    pool = [h for h in hosts if h.index is not None] if live_only else list(hosts)
    live = "live " if live_only else ""
    chosen = [h for h in pool if h.deployment == target.deployment]
    if not chosen:
        deployments = [h.deployment for h in pool]
        raise PerfOpsError(
            f"target {target.text!r}: no {live}hosts of deployment {target.deployment!r} "
            f"(deployments with hosts: {_names(deployments)}){_suggest(target.text, deployments)}"
        )
    if target.region is not None:
        regions = [h.region for h in chosen]
        chosen = [h for h in chosen if h.region == target.region]
        if not chosen:
            raise PerfOpsError(
                f"target {target.text!r}: deployment {target.deployment!r} has no {live}hosts "
                f"in {target.region!r} (it has hosts in: {_names(regions)})"
                f"{_suggest(target.region, regions)}"
            )
    if target.index is not None:
        by_index = [h for h in chosen if h.index == target.index]
        if not by_index:
            top = max(h.index or 0 for h in chosen)
            raise PerfOpsError(
                f"target {target.text!r}: {target.deployment}/{target.region} has hosts "
                f"0..{top}; there is no index {target.index}"
            )
        chosen = by_index
    check_unique_labels(chosen)
    return chosen


def check_unique_labels(hosts: Sequence[FleetHost]) -> None:
    """Refuse hosts of two stacks that share deployment and region: labels would clash."""
    stacks: dict[tuple[str, str], set[str]] = {}
    for host in hosts:
        if host.index is not None:
            stacks.setdefault((host.deployment, host.region), set()).add(host.stack)
    for (deployment, region), names in sorted(stacks.items()):
        if len(names) > 1:
            raise PerfOpsError(
                f"{deployment}/{region} has hosts in stacks {_names(names)}; pick one with --stack"
            )


def ssh_options(
    host: FleetHost, *, user: str, identity: Path | None, known_hosts: Path
) -> list[tuple[str, str]]:
    """The ssh options for one host, shared by ``perfops ssh`` and ``perfops ssh-config``.

    Host keys are learned on first contact into the project's own known_hosts file and
    filed under the instance id (``HostKeyAlias``): AWS hands a released public IP to
    other instances, an instance id is never reused. A changed key is refused.
    """
    options = [("User", user)]
    if identity is not None:
        options += [("IdentityFile", str(identity)), ("IdentitiesOnly", "yes")]
    options += [
        ("UserKnownHostsFile", str(known_hosts)),
        ("StrictHostKeyChecking", "accept-new"),
        ("HostKeyAlias", host.instance.instance_id),
        ("HashKnownHosts", "no"),
        ("CheckHostIP", "no"),
    ]
    return options


def _config_value(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


def render_ssh_config(entries: Sequence[tuple[FleetHost, list[tuple[str, str]]]]) -> str:
    """One ``Host perfops-<deployment>-<region>-<index>`` block per live host with an IP."""
    lines = [
        "# Generated by `perfops ssh-config`; regenerate when hosts change.",
        "# Include it from the top of ~/.ssh/config: Include <this file>",
    ]
    for host, options in entries:
        instance = host.instance
        if host.ssh_name is None:
            continue
        lines.append("")
        if instance.public_ip is None:
            lines.append(f"# {host.label} ({instance.instance_id}): no public IP address")
            continue
        lines.append(f"# {host.label} {instance.instance_id} stack {host.stack}")
        lines.append(f"Host {host.ssh_name}")
        lines.append(f"  HostName {instance.public_ip}")
        lines.extend(f"  {key} {_config_value(value)}" for key, value in options)
    return "\n".join(lines) + "\n"


def host_record(host: FleetHost) -> dict[str, object]:
    """One host of the ``perfops hosts --json`` document (schema: docs/operations.md)."""
    instance = host.instance
    return {
        "stack": host.stack,
        "deployment": instance.deployment,
        "region": instance.region,
        "index": host.index,
        "label": host.label,
        "ssh_name": host.ssh_name,
        "instance_id": instance.instance_id,
        "state": instance.state,
        "public_ip": instance.public_ip,
        "private_ip": instance.private_ip,
        "availability_zone": instance.availability_zone,
        "launch_time": _utc(instance.launch_time),
        "containers": instance.containers,
        "key_name": instance.key_name,
        "image": instance.image,
        "name": instance.name,
        "uuid": instance.uuid,
        "lifetime": instance.lifetime,
        "expires": _utc(instance.expires),
    }


def _utc(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def hosts_document(hosts: Sequence[FleetHost], scopes: Sequence[StackScope]) -> dict[str, object]:
    """The whole ``perfops hosts --json`` document, version ``JSON_VERSION``."""
    return {
        "version": JSON_VERSION,
        "stacks": [{"stack": s.stack, "uuid": s.uuid, "regions": list(s.regions)} for s in scopes],
        "hosts": [host_record(h) for h in hosts],
    }

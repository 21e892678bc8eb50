"""``perfops clients``: each host's spawner status, summed per deployment and region.

The host side is ``perfops-spawn-containers --status`` (docs/container-spec.md); the
containers a host should have come from its containers tag.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from perfops_cdk.planners.hosts import FleetHost

# NixOS puts system programs in /run/current-system/sw/bin; a non-login ssh command
# may not have it on PATH.
STATUS_COMMAND = "PATH=/run/current-system/sw/bin:$PATH perfops-spawn-containers --status"
STATUS_VERSION = 1
# Exit codes that say something about the host rather than the spawner.
_UNREACHABLE = 255
_NOT_FOUND = 127


@attrs.frozen
class ServiceStatus:
    name: str
    state: str
    auto_start: bool
    declared: int
    created: int
    running: int
    last_error: str | None

    @property
    def behind(self) -> bool:
        """Not applied, or containers missing, or (autoStart) not all running."""
        expected_running = self.declared if self.auto_start else 0
        return (
            self.state != "applied"
            or self.created < self.declared
            or self.running < expected_running
        )


@attrs.frozen
class HostStatus:
    """One host's answer; ``error`` when it gave none we can use."""

    services: tuple[ServiceStatus, ...] = ()
    spec_present: bool = True
    error: str | None = None
    unreachable: bool = False

    @classmethod
    def from_run(cls, exit_code: int, stdout: bytes, last_error: str) -> HostStatus:
        """From the ssh run of ``STATUS_COMMAND``: exit code, stdout, last stderr line."""
        if exit_code == _UNREACHABLE:
            return cls(error=last_error or "ssh failed", unreachable=True)
        if exit_code == _NOT_FOUND:
            return cls(error="perfops-spawn-containers not found on the host (older image?)")
        if exit_code != 0:
            return cls(error=last_error or f"status exited {exit_code}")
        try:
            return cls.from_document(json.loads(stdout))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            return cls(error=f"unreadable --status output ({error})")

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> HostStatus:
        if document.get("version") != STATUS_VERSION:
            return cls(error=f"--status version {document.get('version')!r} is not 1")
        services = tuple(
            ServiceStatus(
                name=str(s["name"]),
                state=str(s["state"]),
                auto_start=bool(s["autoStart"]),
                declared=int(s["declared"]),
                created=int(s["created"]),
                running=int(s["running"]),
                last_error=s.get("lastError") or None,
            )
            for s in document["services"]
        )
        spec_error = document.get("specError")
        return cls(
            services=services,
            spec_present=bool(document.get("specPresent", True)),
            error=f"spec: {spec_error}" if spec_error else None,
        )

    @property
    def created(self) -> int:
        return sum(s.created for s in self.services)

    @property
    def running(self) -> int:
        return sum(s.running for s in self.services)

    def behind(self, declared: int) -> bool:
        """Whether this host is short of what its tag declares, or could not say."""
        if self.error is not None:
            return True
        if not self.spec_present:
            return declared > 0
        return any(s.behind for s in self.services) or self.created < declared

    @property
    def first_error(self) -> str | None:
        if self.error is not None:
            return self.error
        if not self.spec_present:
            return "no containers.json on the host"
        for service in self.services:
            if service.last_error:
                return f"{service.name}: {service.last_error}"
        return None


@attrs.frozen
class ClientRow:
    """Per stack, deployment and region: what the hosts declare and what they run."""

    stack: str
    deployment: str
    region: str
    hosts: int
    declared: int
    created: int
    running: int
    behind: int
    unreachable: int
    first_error: str | None


def client_rows(hosts: Sequence[FleetHost], statuses: Mapping[str, HostStatus]) -> list[ClientRow]:
    """Sum the statuses (keyed by instance id) of each group of hosts, in host order."""
    groups: dict[tuple[str, str, str], list[FleetHost]] = {}
    for host in hosts:
        groups.setdefault((host.stack, host.deployment, host.region), []).append(host)
    rows = []
    for (stack, deployment, region), members in groups.items():
        answers = [(h, statuses.get(h.instance.instance_id, _UNASKED)) for h in members]
        first_error = next(
            (f"{h.label}: {s.first_error}" for h, s in answers if s.first_error is not None),
            None,
        )
        rows.append(
            ClientRow(
                stack=stack,
                deployment=deployment,
                region=region,
                hosts=len(members),
                declared=sum(h.instance.containers for h in members),
                created=sum(s.created for _, s in answers),
                running=sum(s.running for _, s in answers),
                behind=sum(1 for h, s in answers if s.behind(h.instance.containers)),
                unreachable=sum(1 for _, s in answers if s.unreachable),
                first_error=first_error,
            )
        )
    return rows


_UNASKED = HostStatus(error="not asked", unreachable=True)

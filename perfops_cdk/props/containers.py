"""Props of a ContainerService: one systemd service that brings up load-client containers.

The rules are the spawner's (nix/spawner/perfops-spawn-containers.sh), checked here
at synth so that a host never boots with a spec it would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from perfops_cdk.errors import InvalidField

# dbus's default of 256 connections per user; the seed's and the image's default limit.
MAX_CONTAINERS_PER_SERVICE = 250
# Linux interface names hold 15 chars and a container's host side is ``ve-<name>``.
MAX_CONTAINER_NAME = 11
FIRST_GUEST, LAST_GUEST = 1, 254
DEFAULT_MEMORY_PER_CLIENT_MIB = 128

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENTRY_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.nix$")
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,3}$")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_ADDRESS = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")
_NETWORK = re.compile(rf"^{_OCTET}(\.{_OCTET}){{2}}$")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


Check = Callable[[Any, str], None]


def _matching(pattern: re.Pattern[str], allowed: str) -> Check:
    def check(value: Any, field: str) -> None:
        if not (isinstance(value, str) and pattern.fullmatch(value)):
            raise InvalidField(field, value, allowed)

    return check


def _whole(low: int, high: int | None = None) -> Check:
    def check(value: Any, field: str) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            upto = f" to {high}" if high is not None else " or more"
            raise InvalidField(field, value, f"must be a whole number from {low}{upto}")

    return check


def _check_bool(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        raise InvalidField(field, value, "must be True or False")


def _check_environment(value: Any, field: str) -> None:
    if not isinstance(value, dict):
        raise InvalidField(field, value, "must map variable names to strings")
    for key, item in value.items():
        if not (isinstance(key, str) and _ENV_NAME.fullmatch(key)):
            raise InvalidField(f"{field} key", key, "must be NAME_LIKE_THIS ([A-Z_][A-Z0-9_]*)")
        if not isinstance(item, str) or any(ord(c) < 32 for c in item):
            raise InvalidField(
                f"{field}[{key!r}]", item, "must be a single-line string without control chars"
            )


def _to_dict(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


# Field by field, in the order a reader fixes them; the first broken rule is reported.
_RULES: tuple[tuple[str, Check], ...] = (
    (
        "name",
        _matching(
            _SERVICE_NAME,
            "must be a systemd unit name part: 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        ),
    ),
    ("entry_folder", _matching(_FOLDER, "must be a folder name under container_modules/")),
    (
        "entry_file",
        _matching(_ENTRY_FILE, "must be a .nix file name such as 'container-wrapper.nix'"),
    ),
    (
        "container_name_prefix",
        _matching(_PREFIX, "must be 1 to 4 letters, digits or '-', starting with a letter"),
    ),
    ("host_address", _matching(_ADDRESS, "must be an IPv4 address such as '10.254.0.1'")),
    (
        "network",
        _matching(_NETWORK, "must be the guests' first three octets, e.g. '10.254.1'"),
    ),
    ("container_count", _whole(1, MAX_CONTAINERS_PER_SERVICE)),
    ("container_name_start_num", _whole(0)),
    ("ip_start_addr", _whole(FIRST_GUEST, LAST_GUEST)),
    ("use_recent_state", _check_bool),
    ("auto_start", _check_bool),
    ("environment", _check_environment),
    ("memory_per_client_mib", _whole(1, 1024 * 1024)),
)


@attrs.frozen
class ContainerService:
    """One host service that spawns ``container_count`` containers (the seed's
    ``extra-containers`` entry).

    Container ``i`` (from 0) is named ``<prefix><containerNameStartNum + i, 3 digits>``
    (``a001``) and gets the guest address ``<network>.<ip_start_addr + i>``.

    :param name: the systemd service (``perfops-containers-<name>``); unique per host.
    :param entry_folder: a folder of ``container_modules/`` baked into the image.
    :param container_name_prefix: 1 to 4 chars starting with a letter.
    :param host_address: the host side of every container's veth, e.g. ``10.254.0.1``.
    :param network: the guests' first three octets, e.g. ``10.254.1``.
    :param container_count: 1 to 250.
    :param container_name_start_num: number of the first container. Default 1.
    :param ip_start_addr: fourth octet of the first guest. Default 1.
    :param entry_file: the module in ``<entry_folder>/modules/`` each container imports.
        Default ``container-wrapper.nix``.
    :param use_recent_state: passed to guests as ``PERFOPS_USE_RECENT_STATE=1``, so a
        client restores recent state instead of syncing from scratch. Default False.
    :param auto_start: start the containers once created. Default True.
    :param environment: extra variables for every guest (e.g. ``PERFOPS_K6_TARGET``).
        Default none.
    :param memory_per_client_mib: memory one container needs, checked against the
        instance type. Default 128 MiB.

    Checked (``check()``) when a HostContainers takes it, so that an error names the
    construct path as well as the field and value.
    """

    name: str
    entry_folder: str
    container_name_prefix: str
    host_address: str
    network: str
    container_count: int
    container_name_start_num: int = 1
    ip_start_addr: int = 1
    entry_file: str = "container-wrapper.nix"
    use_recent_state: bool = False
    auto_start: bool = True
    environment: dict[str, str] = attrs.field(factory=dict, converter=_to_dict)
    memory_per_client_mib: int = DEFAULT_MEMORY_PER_CLIENT_MIB

    def check(self) -> ContainerService:
        """Raise InvalidField on the first broken rule; return the service if none."""
        for field, rule in _RULES:
            rule(getattr(self, field), field)
        last_ip = self.ip_start_addr + self.container_count - 1
        if last_ip > LAST_GUEST:
            raise InvalidField(
                "ip_start_addr",
                self.ip_start_addr,
                f"guests {self.network}.{self.ip_start_addr}..{self.network}.{last_ip} leave "
                f"{FIRST_GUEST}..{LAST_GUEST}; lower ip_start_addr or container_count",
            )
        last_number = self.container_name_start_num + self.container_count - 1
        longest = f"{self.container_name_prefix}{last_number:03d}"
        if len(longest) > MAX_CONTAINER_NAME:
            raise InvalidField(
                "container_name_start_num",
                self.container_name_start_num,
                f"gives container name {longest!r} of {len(longest)} chars; at most "
                f"{MAX_CONTAINER_NAME} fit (ve-<name> is a 15-char interface name)",
            )
        return self

    @property
    def memory_mib(self) -> int:
        """Memory all of this service's containers need."""
        return self.container_count * self.memory_per_client_mib

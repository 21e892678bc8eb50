"""Container layout, host-level checks and the user-data parts of HostContainers.

Naming and addressing must agree with nix/lib/containers.nix (tests compare them with
``nix-instantiate`` on nix/lib/plan.nix); the spec format is docs/container-spec.md.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any

from perfops_cdk.errors import InvalidField
from perfops_cdk.props.containers import ContainerService
from perfops_cdk.props.deployment import UserDataPart

SPEC_VERSION = 1
SPEC_PATH = "/etc/perfops/containers.json"
SPAWNER = "/run/current-system/sw/bin/perfops-spawn-containers"
DEFAULT_MAX_PER_HOST = 250
# On every host, so `perfops status` can show containers without reading user data.
CONTAINERS_TAG = "perf-ops-containers"
# The RAID must hold the containers' state before the first container exists;
# user parts (default order 50) run between the two.
RAID_PART_ORDER = 10
CONTAINERS_PART_ORDER = 80
# Where nixos-container and extra-container keep every container's root and state.
DEFAULT_RAID_MOUNT = "/var/lib/nixos-containers"


def pad3(number: int) -> str:
    """``7`` -> ``007``; numbers of four digits or more are kept, not wrapped."""
    return f"{number:03d}"


def container_names(service: ContainerService) -> list[str]:
    start, prefix = service.container_name_start_num, service.container_name_prefix
    return [prefix + pad3(start + i) for i in range(service.container_count)]


def guest_addresses(service: ContainerService) -> list[str]:
    start = service.ip_start_addr
    return [f"{service.network}.{start + i}" for i in range(service.container_count)]


def layout(services: Sequence[ContainerService]) -> dict[str, list[dict[str, str]]]:
    """Per service, its containers as nix/lib/plan.nix prints them."""
    return {
        s.name: [
            {"name": name, "localAddress": address, "hostAddress": s.host_address}
            for name, address in zip(container_names(s), guest_addresses(s), strict=True)
        ]
        for s in services
    }


def _label(index: int, service: ContainerService) -> str:
    return f"services[{index}] ({service.name!r})"


def check_host(services: Sequence[ContainerService], max_per_host: int) -> None:
    """Raise on the first rule one host's services break together."""
    if not services:
        raise InvalidField("services", [], "declare at least one ContainerService")
    for index, service in enumerate(services):
        if not isinstance(service, ContainerService):
            raise InvalidField(f"services[{index}]", service, "must be a ContainerService")
        try:
            service.check()
        except InvalidField as error:
            raise error.at("", f"services[{index}]") from None
    total = sum(s.container_count for s in services)
    if total > max_per_host:
        raise InvalidField(
            "services",
            f"{total} containers",
            f"at most {max_per_host} per host (max_per_host; the image's dbus limit)",
        )
    owners: dict[str, int] = {}
    names: dict[str, int] = {}
    guests: dict[str, int] = {}
    for index, service in enumerate(services):
        if (other := owners.setdefault(service.name, index)) != index:
            raise InvalidField(
                f"services[{index}].name",
                service.name,
                f"service names must be unique on a host; services[{other}] has it too",
            )
        for name in container_names(service):
            if (other := names.setdefault(name, index)) != index:
                raise InvalidField(
                    f"services[{index}].container_name_prefix",
                    service.container_name_prefix,
                    f"container {name!r} is also declared by {_label(other, services[other])}; "
                    "change container_name_prefix or container_name_start_num",
                )
        for address in guest_addresses(service):
            if (other := guests.setdefault(address, index)) != index:
                raise InvalidField(
                    f"services[{index}].ip_start_addr",
                    service.ip_start_addr,
                    f"guest {address} is also used by {_label(other, services[other])}; "
                    "guest ranges must not overlap (change network or ip_start_addr)",
                )
    for index, service in enumerate(services):
        if (owner := guests.get(service.host_address)) is not None:
            raise InvalidField(
                f"services[{index}].host_address",
                service.host_address,
                f"is inside the guest range of {_label(owner, services[owner])}; "
                "pick an address outside every guest range",
            )


def spec(deployment: str, services: Sequence[ContainerService]) -> dict[str, Any]:
    """The containers.json document (docs/container-spec.md, version 1)."""
    rendered = []
    for s in services:
        entry: dict[str, Any] = {
            "name": s.name,
            "entryFolder": s.entry_folder,
            "entryFile": s.entry_file,
            "containerNamePrefix": s.container_name_prefix,
            "hostAddress": s.host_address,
            "network": s.network,
            "containerCount": s.container_count,
            "containerNameStartNum": s.container_name_start_num,
            "ipStartAddr": s.ip_start_addr,
            "useRecentState": s.use_recent_state,
            "autoStart": s.auto_start,
        }
        if s.environment:
            entry["environment"] = dict(sorted(s.environment.items()))
        rendered.append(entry)
    return {"version": SPEC_VERSION, "deployment": deployment, "services": rendered}


def render_spec(document: dict[str, Any]) -> str:
    """One line of ASCII JSON: safe inside a quoted here-document."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True)


def containers_part(document: dict[str, Any]) -> UserDataPart:
    """Write the spec atomically, then hand it to the image's spawner.

    The spec goes through a temporary file because the image's boot unit starts the
    spawner as soon as the spec path exists.
    """
    script = f"""\
# The spec is data; the image's spawner holds the logic (docs/container-spec.md).
mkdir -p {shlex.quote(SPEC_PATH.rsplit("/", 1)[0])}
cat >{shlex.quote(SPEC_PATH + ".new")} <<'PERFOPS_SPEC'
{render_spec(document)}
PERFOPS_SPEC
mv -f {shlex.quote(SPEC_PATH + ".new")} {shlex.quote(SPEC_PATH)}
{shlex.quote(SPAWNER)} {shlex.quote(SPEC_PATH)}
"""
    return UserDataPart(name="host-containers", script=script, order=CONTAINERS_PART_ORDER)


_RAID_SCRIPT = """\
# Stripe every instance-store NVMe disk into one RAID0 for containers' state.
# Safe on every boot: a mounted array is left alone, an existing one reassembled
# (instance-store data survives a reboot, not a stop), and a host without instance
# store keeps the directory on its root volume.
PATH=/run/current-system/sw/bin:$PATH
raid_mount=RAID_MOUNT
raid_dev=/dev/md/perfops-nvme
if mountpoint -q "$raid_mount"; then
  echo "perfops: $raid_mount is already mounted"
else
  [ -e "$raid_dev" ] || mdadm --assemble --scan >/dev/null 2>&1 || true
  if [ ! -e "$raid_dev" ]; then
    disks=""
    for model in /sys/block/nvme*n1/device/model; do
      [ -r "$model" ] || continue
      case $(cat "$model") in
        *"Instance Storage"*) block=${model%/device/model}; disks="$disks /dev/${block##*/}" ;;
      esac
    done
    if [ -n "$disks" ]; then
      # shellcheck disable=SC2086 # one argument per disk
      set -- $disks
      mdadm --create "$raid_dev" --name=perfops-nvme --level=0 --raid-devices=$# \\
        --force --run "$@"
      mkfs.ext4 -q -F -L perfops-nvme "$raid_dev"
    fi
  fi
  if [ -e "$raid_dev" ]; then
    mkdir -p "$raid_mount"
    mount -o noatime "$raid_dev" "$raid_mount"
    echo "perfops: instance-store RAID0 mounted at $raid_mount"
  else
    echo "perfops: no instance-store NVMe disks; $raid_mount stays on the root volume" >&2
  fi
fi
"""


def nvme_raid0_part(mount_point: str = DEFAULT_RAID_MOUNT) -> UserDataPart:
    """The seed's ephemeral NVMe RAID0 as an opt-in part that runs before containers."""
    if not (mount_point.startswith("/") and mount_point != "/" and "\n" not in mount_point):
        raise InvalidField("raid_mount_point", mount_point, "must be an absolute path below /")
    script = _RAID_SCRIPT.replace("RAID_MOUNT", shlex.quote(mount_point))
    return UserDataPart(name="nvme-raid0", script=script, order=RAID_PART_ORDER)

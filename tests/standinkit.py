"""Fixtures shared by the ssh-driven fleet tests: stand-ins a, b, c behind emulated
hosts web/eu-west-1/0..1 and web/us-east-1/0, and a fresh project per test.

Import the fixtures into a test module (``from standinkit import ...``). Each module gets
its own stand-ins and its own hosts (tagged with a uuid made from the module name), so
modules never see each other's hosts.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from sshkit import (
    KEY_NAME,
    StandIn,
    ec2,
    keygen,
    launch,
    running,
    stand_ins,
    warm_emulator,
    write_project,
    write_ssh_config,
)

from perfops_cdk import fleet
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.effects.ssh import SSH_CONFIG_ENV
from perfops_cdk.project import Project

REGIONS = ["eu-west-1", "us-east-1"]
LABELS = ("web/eu-west-1/0", "web/eu-west-1/1", "web/us-east-1/0")
# A command that says which stand-in ran it and fails where the stand-in says so.
PROBE = "echo hello from $PERFOPS_STANDIN; echo to stderr >&2; exit ${PERFOPS_EXIT:-0}"


def module_uuid(request: pytest.FixtureRequest) -> str:
    name = str(request.module.__name__).removeprefix("test_").replace("_", "")
    return name[:28] + "u"


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("client") / "id")


@pytest.fixture(scope="module")
def hosts_side(
    tmp_path_factory: pytest.TempPathFactory, client_key: Path
) -> Iterator[list[StandIn]]:
    """Stand-ins a, b (eu-west-1) and c (us-east-1, its commands exit 3)."""
    root = tmp_path_factory.mktemp("standins")
    with (
        stand_ins(root, client_key, ["a", "b"]) as ab,
        stand_ins(root, client_key, ["c"], env={"PERFOPS_EXIT": "3"}) as c,
    ):
        yield [*ab, *c]


@attrs.frozen
class Cloud:
    """Hosts web/eu-west-1/0..1 and web/us-east-1/0 in the emulator, made once."""

    uuid: str
    labels: tuple[str, ...]
    ips: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def cloud(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _emulator_server: Emulator,
) -> Iterator[Cloud]:
    uuid = module_uuid(request)
    with warm_emulator(_emulator_server):
        launch(ec2("eu-west-1"), uuid=uuid, deployment="web", count=2, containers=10)
        launch(ec2("us-east-1"), uuid=uuid, deployment="web", count=1, containers=10)
        root = write_project(tmp_path_factory.mktemp("p"), uuid=uuid, regions=REGIONS)
        found = fleet.load(Project.find(root)).hosts
        yield Cloud(
            uuid=uuid,
            labels=tuple(h.label for h in found),
            ips={h.label: h.instance.public_ip or "" for h in found},
            ids={h.label: h.instance.instance_id for h in found},
        )


@attrs.define
class Fleet:
    """A fresh project (own known_hosts, own ~/.ssh) over the cloud's hosts, routed to
    stand-ins a, b, c."""

    root: Path
    home: Path
    routes: Path
    cloud: Cloud
    by_label: dict[str, StandIn]

    @property
    def uuid(self) -> str:
        return self.cloud.uuid

    @property
    def ids(self) -> dict[str, str]:
        return self.cloud.ids

    @property
    def ips(self) -> dict[str, str]:
        return self.cloud.ips

    def route(self, extra: dict[str, int] | None = None) -> None:
        pairs = [(self.ips[label], s.port) for label, s in self.by_label.items()]
        write_ssh_config(self.routes, [*pairs, *(extra or {}).items()])

    def known_hosts(self) -> Path:
        return self.root / ".perfops" / "known_hosts"


def leftover_ssh(marker: Path) -> list[int]:
    """Processes whose command line names ``marker`` (every ssh perfops starts has -F it)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(marker).encode() in cmdline.read_bytes() and running(int(cmdline.parent.name)):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.fixture
def fleet_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cloud: Cloud,
    client_key: Path,
    hosts_side: list[StandIn],
) -> Iterator[Fleet]:
    root = write_project(tmp_path / "proj", uuid=cloud.uuid, regions=REGIONS)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(client_key, home / ".ssh" / KEY_NAME)
    (home / ".ssh" / KEY_NAME).chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    routes = tmp_path / "routes.conf"
    monkeypatch.setenv(SSH_CONFIG_ENV, str(routes))
    monkeypatch.chdir(root)
    assert cloud.labels == LABELS
    env = Fleet(
        root=root,
        home=home,
        routes=routes,
        cloud=cloud,
        by_label=dict(zip(cloud.labels, hosts_side, strict=True)),
    )
    env.route()
    yield env
    left = leftover_ssh(routes)
    for pid in left:  # stop them before failing, so a failed test leaks nothing
        os.kill(pid, signal.SIGKILL)
    assert left == [], "an ssh started by perfops was still running"

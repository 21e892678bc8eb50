"""perfops-spawn-containers run under bash with recording extra-container and systemd fakes."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SPAWNER = REPO / "nix" / "spawner" / "perfops-spawn-containers.sh"
SAMPLE_SPEC = REPO / "tests" / "data" / "spawner" / "two-services.json"
FAKEBIN = REPO / "tests" / "data" / "spawner" / "fakebin"
NIX_INSTANTIATE = shutil.which("nix-instantiate")

Spec = dict[str, Any]


class Host:
    """A temporary host layout: state dir, baked modules, fakes on PATH, a call log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.modules = root / "container-modules"
        self.calls_file = root / "calls.log"
        self.bin = root / "bin"
        shutil.copytree(FAKEBIN, self.bin)
        for fake in self.bin.iterdir():
            fake.chmod(0o755)
        for folder in ("k6", "template"):
            entry = self.modules / folder / "modules" / "container-wrapper.nix"
            entry.parent.mkdir(parents=True)
            entry.write_text("{ ... }: { }\n")
        self.calls_file.touch()
        self.env: dict[str, str] = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PERFOPS_STATE_DIR": str(self.state),
            "PERFOPS_MODULES_DIR": str(self.modules),
            "PERFOPS_NIX_LIB": str(REPO / "nix" / "lib" / "containers.nix"),
            "PERFOPS_NIXPKGS": "/etc/perfops/nixpkgs",
            # The sample spec holds 253 containers, as a host with maxPerHost 300 may.
            "PERFOPS_MAX_CONTAINERS": "300",
            "FAKE_CALLS": str(self.calls_file),
        }

    def write_spec(self, spec: Spec) -> Path:
        path = self.root / "containers.json"
        path.write_text(json.dumps(spec))
        return path

    def run(self, spec_path: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SPAWNER), str(spec_path)],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def calls(self, program: str) -> list[list[str]]:
        lines = self.calls_file.read_text().splitlines()
        return [line.split()[1:] for line in lines if line.split()[0] == program]

    def snapshot(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.state)): p.read_bytes()
            for p in sorted(self.state.rglob("*"))
            if p.is_file()
        }


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


@pytest.fixture
def sample() -> Spec:
    spec: Spec = json.loads(SAMPLE_SPEC.read_text())
    return spec


def _service(spec: Spec, name: str) -> Spec:
    found: Spec = next(s for s in spec["services"] if s["name"] == name)
    return found


def test_spawner_creates_one_call_per_service(host: Host, sample: Spec) -> None:
    """Two services of 250 and 3 containers make exactly two extra-container create calls."""
    result = host.run(host.write_spec(sample))
    assert result.returncode == 0, result.stderr
    creates = host.calls("extra-container")
    assert len(creates) == 2
    assert all(call[0] == "create" for call in creates)
    created = sorted(Path(call[1]).stem for call in creates)
    assert created == ["cardano-node-set-1", "k6-set-2"]
    assert all(call[2:4] == ["--nixpkgs-path", "/etc/perfops/nixpkgs"] for call in creates)


def test_spawner_runs_each_service_in_its_own_unit(host: Host, sample: Spec) -> None:
    """Each service is created by systemd-run in a unit named perfops-containers-<service>."""
    assert host.run(host.write_spec(sample)).returncode == 0
    units = sorted(
        arg.removeprefix("--unit=")
        for call in host.calls("systemd-run")
        for arg in call
        if arg.startswith("--unit=")
    )
    assert units == ["perfops-containers-cardano-node-set-1", "perfops-containers-k6-set-2"]
    assert all("--wait" in call for call in host.calls("systemd-run"))


def test_spawner_starts_services_in_parallel(host: Host, sample: Spec) -> None:
    """Both creates are running at the same time: the fake fails any call that runs alone."""
    barrier = host.root / "barrier"
    barrier.mkdir()
    result = host.run(
        host.write_spec(sample), FAKE_BARRIER_COUNT="2", FAKE_BARRIER_DIR=str(barrier)
    )
    assert result.returncode == 0, result.stderr


def test_autostart_decides_whether_containers_are_started(host: Host, sample: Spec) -> None:
    """autoStart true adds --start --restart-changed; autoStart false creates only."""
    assert host.run(host.write_spec(sample)).returncode == 0
    by_service = {Path(call[1]).stem: call for call in host.calls("extra-container")}
    assert by_service["cardano-node-set-1"][4:] == ["--start", "--restart-changed"]
    assert by_service["k6-set-2"][4:] == []


@pytest.mark.skipif(NIX_INSTANTIATE is None, reason="nix-instantiate not installed (nix-bin)")
def test_generated_file_declares_exactly_the_spec_containers(host: Host, sample: Spec) -> None:
    """Evaluating a service's generated file gives its containers, addresses and guest settings."""
    assert host.run(host.write_spec(sample)).returncode == 0
    generated = host.state / "applied" / "k6-set-2.nix"
    expr = (
        "builtins.mapAttrs (name: c: { inherit (c) privateNetwork hostAddress localAddress"
        " autoStart; imports = map toString (c.config { }).imports;"
        " env = (c.config { }).systemd.globalEnvironment; })"
        f" (import {generated} {{ }}).containers"
    )
    assert NIX_INSTANTIATE is not None
    result = subprocess.run(
        [NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    guest = {
        "privateNetwork": True,
        "hostAddress": "10.254.0.1",
        "autoStart": False,
        "imports": [str(host.modules / "k6" / "modules" / "container-wrapper.nix")],
        "env": {
            "PERFOPS_USE_RECENT_STATE": "0",
            "PERFOPS_SERVICE": "k6-set-2",
            "PERFOPS_K6_TARGET": "http://10.0.0.5:8080/",
        },
    }
    assert json.loads(result.stdout) == {
        "b007": {**guest, "localAddress": "10.254.2.10"},
        "b008": {**guest, "localAddress": "10.254.2.11"},
        "b009": {**guest, "localAddress": "10.254.2.12"},
    }


@pytest.mark.skipif(NIX_INSTANTIATE is None, reason="nix-instantiate not installed (nix-bin)")
def test_generated_file_of_a_250_container_service_ends_at_a250(host: Host, sample: Spec) -> None:
    """The 250-container service's file holds a001 .. a250 and passes useRecentState as 1."""
    assert host.run(host.write_spec(sample)).returncode == 0
    generated = host.state / "applied" / "cardano-node-set-1.nix"
    expr = (
        f"let cs = (import {generated} {{ }}).containers; in"
        " { names = builtins.attrNames cs; last = cs.a250.localAddress;"
        " recent = (cs.a001.config { }).systemd.globalEnvironment.PERFOPS_USE_RECENT_STATE; }"
    )
    assert NIX_INSTANTIATE is not None
    result = subprocess.run(
        [NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert evaluated["names"] == [f"a{i:03d}" for i in range(1, 251)]
    assert evaluated["last"] == "10.254.1.250"
    assert evaluated["recent"] == "1"


def test_second_run_changes_nothing(host: Host, sample: Spec) -> None:
    """Rerunning the same spec makes no systemd-run, extra-container or systemctl call."""
    spec_path = host.write_spec(sample)
    assert host.run(spec_path).returncode == 0
    calls_after_first = host.calls_file.read_text()
    files_after_first = host.snapshot()
    second = host.run(spec_path)
    assert second.returncode == 0, second.stderr
    assert host.calls_file.read_text() == calls_after_first
    assert host.snapshot() == files_after_first
    assert "up to date" in second.stdout


def test_changed_service_is_recreated_alone(host: Host, sample: Spec) -> None:
    """Growing one service re-creates that service only."""
    assert host.run(host.write_spec(sample)).returncode == 0
    grown = copy.deepcopy(sample)
    _service(grown, "k6-set-2")["containerCount"] = 5
    before = len(host.calls("extra-container"))
    assert host.run(host.write_spec(grown)).returncode == 0
    new_calls = host.calls("extra-container")[before:]
    assert [Path(call[1]).stem for call in new_calls] == ["k6-set-2"]


def test_failed_service_is_retried_on_the_next_run(host: Host, sample: Spec) -> None:
    """A failing create fails the run but not the other service; the rerun retries only it."""
    spec_path = host.write_spec(sample)
    first = host.run(spec_path, FAKE_FAIL_MATCH="k6-set-2")
    assert first.returncode != 0
    assert "k6-set-2" in first.stderr.splitlines()[-1]
    assert (host.state / "applied" / "cardano-node-set-1.nix").exists()
    assert not (host.state / "applied" / "k6-set-2.nix").exists()
    before = len(host.calls("extra-container"))
    assert host.run(spec_path).returncode == 0
    retried = host.calls("extra-container")[before:]
    assert [Path(call[1]).stem for call in retried] == ["k6-set-2"]


Mutation = Callable[[Spec], None]


def _set(service: str, **changes: Any) -> Mutation:
    def mutate(spec: Spec) -> None:
        _service(spec, service).update(changes)

    return mutate


BAD_SPECS: dict[str, tuple[Mutation, str]] = {
    "version 2": (lambda s: s.update(version=2), "unsupported spec version 2"),
    "no services": (lambda s: s.update(services=[]), "no services"),
    "count over 250": (_set("k6-set-2", containerCount=251), "containerCount 251"),
    "count zero": (_set("k6-set-2", containerCount=0), "containerCount 0"),
    "prefix of 5 chars": (_set("k6-set-2", containerNamePrefix="abcde"), "containerNamePrefix"),
    "prefix starting with a digit": (
        _set("k6-set-2", containerNamePrefix="1a"),
        "containerNamePrefix",
    ),
    "name over 11 chars": (
        _set("k6-set-2", containerNamePrefix="bbbb", containerNameStartNum=99999995),
        "exceed 11 characters",
    ),
    "guests past .254": (_set("k6-set-2", ipStartAddr=253), "leave 1..254"),
    "bad network": (_set("k6-set-2", network="10.254.300"), "network"),
    "bad host address": (_set("k6-set-2", hostAddress="10.254.0"), "hostAddress"),
    "unit-unsafe service name": (_set("k6-set-2", name="k6 set/2"), "systemd unit name"),
    "duplicate service name": (
        _set("k6-set-2", name="cardano-node-set-1"),
        "appears more than once",
    ),
    "duplicate container names": (
        _set("k6-set-2", containerNamePrefix="a", containerNameStartNum=250),
        "container name a250",
    ),
    "overlapping guest ranges": (_set("k6-set-2", network="10.254.1"), "guest address"),
    "host address in a guest range": (
        _set("k6-set-2", hostAddress="10.254.1.7"),
        "host address 10.254.1.7",
    ),
    "folder not baked in": (_set("k6-set-2", entryFolder="cardano-node"), "not baked"),
    "string count": (_set("k6-set-2", containerCount="3"), "containerCount"),
    "environment value with newline": (_set("k6-set-2", environment={"A": "x\ny"}), "environment"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_fails_with_one_line_and_touches_nothing(
    host: Host, sample: Spec, case: str
) -> None:
    """Each broken rule exits non-zero with one stderr line naming it, before any call or file."""
    mutate, expected = BAD_SPECS[case]
    spec = copy.deepcopy(sample)
    mutate(spec)
    result = host.run(host.write_spec(spec))
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert host.calls_file.read_text() == ""
    assert not host.state.exists()


def test_host_total_over_the_limit_is_rejected(host: Host, sample: Spec) -> None:
    """253 containers on a host limited to 250 fail with the total in the message."""
    result = host.run(host.write_spec(sample), PERFOPS_MAX_CONTAINERS="250")
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"perfops-spawn-containers: {host.root / 'containers.json'}: "
        "host total of 253 containers is over the limit of 250"
    ]


def test_malformed_json_fails_with_one_line(host: Host) -> None:
    """A truncated file is reported as invalid JSON on one line."""
    path = host.root / "containers.json"
    path.write_text('{"version": 1, "services": [')
    result = host.run(path)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1
    assert "not valid JSON" in result.stderr


def test_check_mode_validates_without_creating(host: Host, sample: Spec) -> None:
    """--check accepts the sample spec and makes no calls."""
    result = subprocess.run(
        ["bash", str(SPAWNER), "--check", str(host.write_spec(sample))],
        env=host.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert host.calls_file.read_text() == ""


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck binary not installed (apt-get install shellcheck)",
)
def test_spawner_and_fakes_are_shellcheck_clean() -> None:
    """shellcheck reports nothing for the spawner or the test fakes."""
    result = subprocess.run(
        ["shellcheck", str(SPAWNER), *map(str, sorted(FAKEBIN.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout

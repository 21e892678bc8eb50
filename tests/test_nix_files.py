"""The Nix side of HostContainers: every file parses, plan.nix follows the spec rules."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_SPEC = REPO / "tests" / "data" / "spawner" / "two-services.json"
NIX_INSTANTIATE = shutil.which("nix-instantiate")
needs_nix = pytest.mark.skipif(
    NIX_INSTANTIATE is None, reason="nix-instantiate not installed (apt-get install nix-bin)"
)

pytestmark = pytest.mark.nix


def _nix_files() -> list[Path]:
    files = [*(REPO / "nix").rglob("*.nix"), *(REPO / "container_modules").rglob("*.nix")]
    # nix/test-image/ belongs to the image work and is checked there.
    return sorted(f for f in files if "test-image" not in f.relative_to(REPO).parts)


def _plan(spec_file: Path) -> subprocess.CompletedProcess[str]:
    assert NIX_INSTANTIATE is not None
    return subprocess.run(
        [
            NIX_INSTANTIATE,
            "--eval",
            "--strict",
            "--json",
            str(REPO / "nix/lib/plan.nix"),
            "--argstr",
            "specFile",
            str(spec_file),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _expected_layout(service: dict[str, Any]) -> list[dict[str, str]]:
    """The rules of docs/container-spec.md written out independently of the Nix code."""
    return [
        {
            "name": f"{service['containerNamePrefix']}{service['containerNameStartNum'] + i:03d}",
            "localAddress": f"{service['network']}.{service['ipStartAddr'] + i}",
            "hostAddress": service["hostAddress"],
        }
        for i in range(service["containerCount"])
    ]


def test_there_are_nix_files_to_check() -> None:
    """The parse test below covers the host module, the libs and both container modules."""
    names = {f.relative_to(REPO).as_posix() for f in _nix_files()}
    assert {
        "nix/default.nix",
        "nix/sources.nix",
        "nix/lib/containers.nix",
        "nix/lib/plan.nix",
        "nix/modules/containers.nix",
        "container_modules/k6/modules/k6.nix",
        "container_modules/template/modules/container-wrapper.nix",
    } <= names


@needs_nix
@pytest.mark.parametrize("path", _nix_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_nix_file_parses(path: Path) -> None:
    """nix-instantiate --parse accepts the file."""
    assert NIX_INSTANTIATE is not None
    result = subprocess.run(
        [NIX_INSTANTIATE, "--parse", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@needs_nix
def test_plan_names_and_addresses_follow_the_spec_rules() -> None:
    """plan.nix gives every service's containers the names and addresses the contract defines."""
    result = _plan(SAMPLE_SPEC)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    spec = json.loads(SAMPLE_SPEC.read_text())
    assert list(plan) == sorted(s["name"] for s in spec["services"])
    for service in spec["services"]:
        assert plan[service["name"]] == _expected_layout(service)


@needs_nix
def test_plan_ends_a_250_container_service_at_a250() -> None:
    """The seed's 250-container service runs a001 .. a250 on 10.254.1.1 .. 10.254.1.250."""
    plan = json.loads(_plan(SAMPLE_SPEC).stdout)
    first_set = plan["cardano-node-set-1"]
    assert len(first_set) == 250
    assert first_set[0] == {
        "name": "a001",
        "localAddress": "10.254.1.1",
        "hostAddress": "10.254.0.1",
    }
    assert first_set[-1] == {
        "name": "a250",
        "localAddress": "10.254.1.250",
        "hostAddress": "10.254.0.1",
    }
    assert [c["name"] for c in plan["k6-set-2"]] == ["b007", "b008", "b009"]
    assert [c["localAddress"] for c in plan["k6-set-2"]] == [
        "10.254.2.10",
        "10.254.2.11",
        "10.254.2.12",
    ]


@needs_nix
def test_plan_rejects_an_unknown_spec_version(tmp_path: Path) -> None:
    """A version 2 spec fails evaluation with a message naming the version."""
    spec = json.loads(SAMPLE_SPEC.read_text())
    spec["version"] = 2
    spec_file = tmp_path / "containers.json"
    spec_file.write_text(json.dumps(spec))
    result = _plan(spec_file)
    assert result.returncode != 0
    assert "unsupported version 2" in result.stderr


def test_source_pins_carry_real_looking_hashes() -> None:
    """Every pin has an https URL and a 52-char base32 sha256, not a placeholder."""
    pin_files = [REPO / "nix/sources.json", *REPO.glob("container_modules/*/nix/sources.json")]
    for pins_file in pin_files:
        pins: dict[str, dict[str, str]] = json.loads(pins_file.read_text())
        assert "nixpkgs" in pins, pins_file
        for name, pin in pins.items():
            assert pin["type"] == "tarball", (pins_file, name)
            assert pin["url"].startswith("https://"), (pins_file, name)
            assert re.fullmatch(r"[0-9a-df-np-sv-z]{52}", pin["sha256"]), (pins_file, name)
            assert len(set(pin["sha256"])) > 10, (pins_file, name)

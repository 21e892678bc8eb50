"""perfops-spawn-containers --status under bash with the recording fakes."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_spawner import SAMPLE_SPEC, SPAWNER, Host

Spec = dict[str, Any]

TOP_KEYS = {
    "version",
    "spec",
    "specPresent",
    "specError",
    "deployment",
    "declared",
    "created",
    "running",
    "services",
}
SERVICE_KEYS = {
    "name",
    "unit",
    "state",
    "applied",
    "autoStart",
    "declared",
    "created",
    "running",
    "lastError",
}


class StatusHost(Host):
    """A Host whose container units and unit states the test sets."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.units = root / "units"
        self.units.mkdir()
        self.unit_states = root / "unit-states"
        self.unit_states.write_text("")
        self.env["PERFOPS_UNITS_DIR"] = str(self.units)
        self.env["FAKE_UNIT_STATES"] = str(self.unit_states)

    def create(self, *names: str) -> None:
        """As extra-container does: a container@<name>.service per container."""
        for name in names:
            (self.units / f"container@{name}.service").write_text("[Unit]\n")

    def set_states(self, **states: str) -> None:
        self.unit_states.write_text(
            "".join(f"{unit.replace('__', '@')}.service {s}\n" for unit, s in states.items())
        )

    def status(self, spec_path: Path | None = None) -> dict[str, Any]:
        args = ["--status"] if spec_path is None else ["--status", str(spec_path)]
        result = subprocess.run(
            ["bash", str(SPAWNER), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document


@pytest.fixture
def host(tmp_path: Path) -> StatusHost:
    return StatusHost(tmp_path)


@pytest.fixture
def sample() -> Spec:
    spec: Spec = json.loads(SAMPLE_SPEC.read_text())
    return spec


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in document["services"]}


def test_status_without_a_spec_says_so(host: StatusHost) -> None:
    """A host without containers.json reports specPresent false and no services."""
    document = host.status(host.root / "absent.json")
    assert document["specPresent"] is False
    assert document["services"] == []
    assert set(document) == TOP_KEYS


def test_status_before_any_run_is_pending(host: StatusHost, sample: Spec) -> None:
    """Before the spawner ran, every service is pending with nothing created or running."""
    document = host.status(host.write_spec(sample))
    services = _by_name(document)
    assert {name: s["state"] for name, s in services.items()} == {
        "cardano-node-set-1": "pending",
        "k6-set-2": "pending",
    }
    assert services["cardano-node-set-1"]["declared"] == 250
    assert services["k6-set-2"]["declared"] == 3
    assert (document["declared"], document["created"], document["running"]) == (253, 0, 0)
    assert all(set(s) == SERVICE_KEYS for s in document["services"])
    assert document["deployment"] == "d"


def test_status_counts_created_and_running_containers(host: StatusHost, sample: Spec) -> None:
    """After a run, created = container units installed, running = those systemd calls active."""
    spec = host.write_spec(sample)
    assert host.run(spec).returncode == 0
    host.create(*(f"a{i:03d}" for i in range(1, 251)), "b007", "b008")
    host.set_states(**{f"container__a{i:03d}": "active" for i in range(1, 249)})
    document = host.status(spec)
    services = _by_name(document)
    node, k6 = services["cardano-node-set-1"], services["k6-set-2"]
    assert (node["state"], node["applied"], node["created"], node["running"]) == (
        "applied",
        True,
        250,
        248,
    )
    assert (k6["state"], k6["created"], k6["running"], k6["autoStart"]) == ("applied", 2, 0, False)
    assert (document["created"], document["running"]) == (252, 248)
    assert node["lastError"] is None


def test_status_reports_the_first_error_line_of_a_failed_service(
    host: StatusHost, sample: Spec
) -> None:
    """A failed create is 'failed' with its first error line; a good rerun clears it."""
    spec = host.write_spec(sample)
    output = "building '/nix/store/x.drv'...\nerror: builder for x failed\nmore context"
    assert host.run(spec, FAKE_FAIL_MATCH="k6-set-2", FAKE_FAIL_OUTPUT=output).returncode != 0
    services = _by_name(host.status(spec))
    assert services["k6-set-2"]["state"] == "failed"
    assert services["k6-set-2"]["applied"] is False
    assert services["k6-set-2"]["lastError"] == "error: builder for x failed"
    assert services["cardano-node-set-1"]["state"] == "applied"

    assert host.run(spec).returncode == 0
    services = _by_name(host.status(spec))
    assert services["k6-set-2"]["state"] == "applied"
    assert services["k6-set-2"]["lastError"] is None


def test_status_without_an_error_line_reports_the_last_line(host: StatusHost, sample: Spec) -> None:
    """A failure whose output has no 'error' line reports its last non-empty line."""
    spec = host.write_spec(sample)
    host.run(spec, FAKE_FAIL_MATCH="k6-set-2", FAKE_FAIL_OUTPUT="first\nKilled\n\n")
    assert _by_name(host.status(spec))["k6-set-2"]["lastError"] == "Killed"


def test_status_shows_a_service_being_created(host: StatusHost, sample: Spec) -> None:
    """While a service's unit is activating, its state is 'creating'."""
    spec = host.write_spec(sample)
    host.unit_states.write_text("perfops-containers-k6-set-2.service activating\n")
    services = _by_name(host.status(spec))
    assert services["k6-set-2"]["state"] == "creating"
    assert services["cardano-node-set-1"]["state"] == "pending"


def test_status_reports_a_broken_spec_without_failing(host: StatusHost, sample: Spec) -> None:
    """An invalid spec gives specError (the validation line) and exit 0."""
    broken = copy.deepcopy(sample)
    broken["version"] = 2
    document = host.status(host.write_spec(broken))
    assert document["specPresent"] is True
    assert "unsupported spec version 2" in document["specError"]
    assert document["services"] == []


def test_status_reads_the_default_spec_path_and_writes_nothing(
    host: StatusHost, sample: Spec
) -> None:
    """Without SPEC it reads /etc/perfops/containers.json; it never writes state."""
    spec = host.write_spec(sample)
    assert host.run(spec).returncode == 0
    before = host.snapshot()
    document = host.status()
    assert document["spec"] == "/etc/perfops/containers.json"
    host.status(spec)
    assert host.snapshot() == before
    status_calls = host.calls("systemctl")
    assert [call[0] for call in status_calls] == ["is-active"]
    assert len(status_calls[0]) == 1 + 2 + 253

"""Shared fixtures: one real moto server over HTTP per test session, reset per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from perfops_cdk.effects.emulator import Emulator


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[Emulator]:
    emulator = Emulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(_emulator_server: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A clean moto server whose endpoint and credentials are exported to the test."""
    _emulator_server.reset()
    for key, value in _emulator_server.environment().items():
        monkeypatch.setenv(key, value)
    yield _emulator_server
    _emulator_server.reset()


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach real AWS: without the emulator, credentials are absent."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    if "PERFOPS_AWS_ENDPOINT" not in os.environ:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-real-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")

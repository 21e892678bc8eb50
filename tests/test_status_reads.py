"""What ``perfops status`` reads from EC2 (against the emulator over HTTP)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import botocore
import pytest
from botocore.utils import parse_timestamp

from perfops_cdk.effects import aws, ec2_instances
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.props.regions import DEFAULT_REGIONS


def test_terminated_instances_are_not_read(emulator: Emulator) -> None:
    """Terminated instances stay listed for about an hour (400 more after each deploy
    and destroy of a fleet); status asks EC2 for the others only."""
    ec2 = aws.client("ec2", "eu-west-1")
    tags = [{"Key": "perf-ops", "Value": "readuuid1"}, {"Key": "deployment", "Value": "web"}]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-03cf127a",
            MinCount=3,
            MaxCount=3,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )["Instances"]
    ]
    ec2.terminate_instances(InstanceIds=ids[:2])
    ec2.stop_instances(InstanceIds=ids[2:])
    hosts = ec2_instances.hosts("eu-west-1", "readuuid1")
    assert [(h.instance_id, h.state) for h in hosts] == [(ids[2], "stopped")]


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-28T10:15:30.000Z",
        "2026-11-28T10:15:30Z",
        "2026-11-28T10:15:30.123456+02:00",
        "2026-11-28T10:15:30",
        "2026-11-28",
        "Sat, 28 Nov 2026 10:15:30 GMT",
        1796551530,
        1796551530.25,
        "1796551530",
    ],
)
def test_timestamps_read_as_botocore_reads_them(value: object) -> None:
    """The fast path gives what botocore's own parser gives, for every form AWS sends."""
    assert aws.timestamp(value) == parse_timestamp(value)
    assert aws.timestamp(value).utcoffset() == parse_timestamp(value).utcoffset()


def test_clients_parse_timestamps_with_the_fast_path(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's responses carry timezone-aware datetimes, as before, without dateutil."""

    def slow(*args: object, **kwargs: object) -> None:
        raise AssertionError("dateutil parsed a timestamp")

    monkeypatch.setattr("dateutil.parser.parse", slow)
    ec2 = aws.client("ec2", "eu-west-1")
    [instance] = ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1)["Instances"]
    launched = instance["LaunchTime"]
    assert isinstance(launched, datetime) and launched.utcoffset() == timedelta(0)


def _data_scans(monkeypatch: pytest.MonkeyPatch, work: Callable[[], None]) -> int:
    """How often botocore lists its data directory (once per model type it looks up
    first: a scan of some 420 service directories) while ``work`` runs on a fresh
    session."""
    monkeypatch.setattr(aws, "_sessions", {})
    monkeypatch.setattr(aws, "_clients", {})
    root = os.path.join(os.path.dirname(botocore.__file__), "data")
    real = os.listdir
    scans = 0

    def listdir(path: str) -> list[str]:
        nonlocal scans
        scans += os.path.normpath(path) == root
        return real(path)

    with monkeypatch.context() as patch:
        patch.setattr(os, "listdir", listdir)
        work()
    return scans


def test_region_threads_share_one_scan_of_botocore_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """17 region threads each making a client and then paginating (status, the deploy's
    survey) or waiting (the sweep) at once must not each scan botocore's data directory:
    at 17 regions the scans held each other off the GIL for about a second."""
    regions = DEFAULT_REGIONS[:17]

    def use(region: str) -> None:
        client = aws.client("ec2", region)
        client.get_paginator("describe_instances")
        client.get_waiter("instance_terminated")

    def one_by_one() -> None:
        for region in regions:
            use(region)

    started = threading.Barrier(len(regions))

    def at_once() -> None:
        def run(region: str) -> None:
            client = aws.client("ec2", region)
            started.wait()
            use(region)
            assert client is aws.client("ec2", region)

        with ThreadPoolExecutor(len(regions)) as pool:
            list(pool.map(run, regions))

    expected = _data_scans(monkeypatch, one_by_one)
    assert expected >= 2  # the service model, then at least pagination and waiters
    assert _data_scans(monkeypatch, at_once) == expected

"""What the emulator lacks for capacity, in front of it: EC2 quotas and scarce capacity.

moto answers Service Quotas only for ``vpc`` and never runs out of instances. This shim
(a FaultProxy that fails nothing) sits between perfops (boto3 and Terraform's provider,
both pointed at it by PERFOPS_AWS_ENDPOINT) and moto, and:

- answers ``GetServiceQuota`` for the EC2 quota codes it is given, per region;
- on ``CreateFleet``, drops the launch-template overrides of pools it is told have no
  capacity (instance type, zone) and caps spot capacity per region, then adds the
  ``InsufficientInstanceCapacity`` errors AWS would return for what it held back;
- on ``DeleteFleets`` of a fleet it saw created with no instance, asks moto not to
  terminate instances: moto's terminate rejects an empty list, where AWS deletes the
  empty fleet.

Everything else is forwarded unchanged.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

from faultproxy import FaultProxy, Forward, Reply

_QUOTA_TARGET = "ServiceQuotasV20190624.GetServiceQuota"
_OVERRIDE = re.compile(r"^LaunchTemplateConfigs\.(\d+)\.Overrides\.(\d+)\.(\w+)$")
_REGION = re.compile(r"Credential=[^/]+/\d+/([a-z0-9-]+)/")


def _region(headers: Mapping[str, str]) -> str:
    found = _REGION.search(headers.get("Authorization", headers.get("authorization", "")))
    return found.group(1) if found else "us-east-1"


class CapacityShim(FaultProxy):
    """``quotas``: (region, quota code) -> vCPUs. ``unavailable``: (type, zone) pools
    with no capacity. ``spot_capacity``: region -> spot hosts left."""

    def __init__(
        self,
        upstream: str,
        *,
        quotas: Mapping[tuple[str, str], float] | None = None,
        unavailable: set[tuple[str, str]] | None = None,
        spot_capacity: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(upstream, share=0.0)
        self.quotas = dict(quotas or {})
        self.unavailable = set(unavailable or ())
        self.spot_capacity = dict(spot_capacity or {})
        self.fleet_errors: list[str] = []
        self.empty_fleets: set[str] = set()
        self._capacity_lock = threading.Lock()

    def __enter__(self) -> CapacityShim:
        super().__enter__()
        return self

    def intercept(self, headers: Mapping[str, str], body: bytes) -> Reply | Forward:
        target = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        if target == _QUOTA_TARGET:
            return self._quota(_region(headers), json.loads(body or b"{}"))
        fields = urllib.parse.parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        if ("Action", "CreateFleet") in fields:
            return self._create_fleet(_region(headers), fields)
        if ("Action", "DeleteFleets") in fields:
            return self._delete_fleets(fields)
        return Forward(body)

    def _delete_fleets(self, fields: list[tuple[str, str]]) -> Forward:
        ids = {value for key, value in fields if key.startswith("FleetId.")}
        with self._capacity_lock:
            empty = bool(ids) and ids <= self.empty_fleets
        if not empty:
            return Forward(urllib.parse.urlencode(fields).encode())
        kept = [(k, "false" if k == "TerminateInstances" else v) for k, v in fields]
        return Forward(urllib.parse.urlencode(kept).encode())

    def _remember_empty(self, body: bytes) -> None:
        fleet = re.search(rb"<fleetId>([^<]+)</fleetId>", body)
        if fleet and not re.search(rb"<item>i-[0-9a-f]+</item>", body):
            with self._capacity_lock:
                self.empty_fleets.add(fleet.group(1).decode())

    def _quota(self, region: str, request: dict[str, Any]) -> Reply:
        code = request.get("QuotaCode", "")
        value = self.quotas.get((region, code))
        if value is None:
            error = {"__type": "NoSuchResourceException", "message": f"no quota {code}"}
            return Reply(400, "application/x-amz-json-1.1", json.dumps(error).encode())
        quota = {
            "ServiceCode": request.get("ServiceCode", "ec2"),
            "QuotaCode": code,
            "QuotaName": f"quota {code}",
            "Value": value,
        }
        return Reply(200, "application/x-amz-json-1.1", json.dumps({"Quota": quota}).encode())

    def _create_fleet(self, region: str, fields: list[tuple[str, str]]) -> Forward:
        params = dict(fields)
        overrides: dict[tuple[str, str], dict[str, str]] = {}
        rest: list[tuple[str, str]] = []
        for key, value in fields:
            match = _OVERRIDE.match(key)
            if match:
                overrides.setdefault((match[1], match[2]), {})[match[3]] = value
            else:
                rest.append((key, value))
        errors: list[tuple[str, str, str]] = []
        kept: dict[str, list[dict[str, str]]] = {}
        for (config, _), override in sorted(overrides.items()):
            pool = (override.get("InstanceType", ""), override.get("AvailabilityZone", ""))
            if pool in self.unavailable:
                errors.append((pool[0], pool[1], "held back"))
                continue
            kept.setdefault(config, []).append(override)
        spot_key = "TargetCapacitySpecification.SpotTargetCapacity"
        total_key = "TargetCapacitySpecification.TotalTargetCapacity"
        spot = int(params.get(spot_key, 0) or 0)
        total = int(params.get(total_key, 0) or 0)
        on_demand = total - spot
        if overrides and not any(kept.values()):
            spot, on_demand = 0, 0  # no pool can serve anything
        with self._capacity_lock:
            left = self.spot_capacity.get(region)
            if left is not None and spot > left:
                errors.append(("*", region, f"{spot - left} spot hosts held back"))
                spot = left
            if left is not None:
                self.spot_capacity[region] = left - spot
        counts = {
            spot_key: spot,
            total_key: spot + on_demand,
            "TargetCapacitySpecification.OnDemandTargetCapacity": on_demand,
        }
        rewritten = [(k, str(counts[k]) if k in counts else v) for k, v in rest]
        for config, items in kept.items():
            for index, override in enumerate(items, start=1):
                for name, value in override.items():
                    rewritten.append(
                        (f"LaunchTemplateConfigs.{config}.Overrides.{index}.{name}", value)
                    )
        with self._capacity_lock:
            self.fleet_errors += [f"{region} {t} {z}: {why}" for t, z, why in errors]

        def after(body: bytes) -> bytes:
            self._remember_empty(body)
            return _errors_into(body, errors)

        return Forward(urllib.parse.urlencode(rewritten).encode(), after)


def _errors_into(body: bytes, errors: list[tuple[str, str, str]]) -> bytes:
    """Add the errorSet AWS returns for pools that could not serve an instant fleet."""
    if not errors:
        return body
    items = "".join(
        "<item><launchTemplateAndOverrides><overrides>"
        f"<instanceType>{t}</instanceType><availabilityZone>{z}</availabilityZone>"
        "</overrides></launchTemplateAndOverrides><lifecycle>spot</lifecycle>"
        "<errorCode>InsufficientInstanceCapacity</errorCode>"
        f"<errorMessage>There is no capacity ({why}).</errorMessage></item>"
        for t, z, why in errors
    )
    return body.replace(
        b"</CreateFleetResponse>", f"<errorSet>{items}</errorSet></CreateFleetResponse>".encode()
    )

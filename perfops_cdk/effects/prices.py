"""Where prices come from: a price file, or AWS (the Price List API and EC2's spot
price history). Each returns ``planners.cost.Prices``; nothing else here decides.

- Price file: ``--prices FILE``, JSON in the format of docs/operations.md#prices.
- On-demand instances and EBS volumes: the Price List Query API (``pricing``, served
  from us-east-1), ``GetProducts`` of service ``AmazonEC2`` filtered to one instance
  type (or EBS volume type) in one region, Linux, shared tenancy, no pre-installed
  software, capacity status ``Used``: the public list price. The region is matched by
  the ``regionCode`` attribute, not ``location``, whose values are display names
  ("EU (Ireland)") that would need a table of their own.
- Spot: the Price List API has none. ``DescribeSpotPriceHistory`` (EC2, per region)
  with ``StartTime`` now gives the price in effect in each availability zone; a type's
  spot price here is the highest of its zones, since the fleet may use any of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from perfops_cdk.effects import aws
from perfops_cdk.errors import EffectError, PerfOpsError
from perfops_cdk.planners.cost import ON_DEMAND, SPOT, Needs, Prices, parse_prices

PRICING_REGION = "us-east-1"
SPOT_PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]
MAX_WORKERS = 8
T = TypeVar("T")
R = TypeVar("R")


def read_price_file(path: Path) -> Prices:
    """A price file as Prices; an unreadable or malformed one is one line."""
    try:
        text = path.read_text()
    except OSError as error:
        raise PerfOpsError(f"--prices: cannot read {path} ({error.strerror})") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PerfOpsError(f"--prices: {path} is not JSON ({error})") from None
    return parse_prices(document, str(path))


def _match(field: str, value: str) -> dict[str, str]:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


def instance_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """GetProducts filters for one type's Linux on-demand list price in one region."""
    return [
        _match("instanceType", instance_type),
        _match("regionCode", region),
        _match("operatingSystem", "Linux"),
        _match("tenancy", "Shared"),
        _match("preInstalledSw", "NA"),
        _match("capacitystatus", "Used"),
    ]


def volume_filters(region: str, volume_type: str) -> list[dict[str, str]]:
    """GetProducts filters for one EBS volume type's GB-month price in one region."""
    return [
        _match("productFamily", "Storage"),
        _match("volumeApiName", volume_type),
        _match("regionCode", region),
    ]


def on_demand_price(price_list: Iterable[str]) -> Decimal | None:
    """The one USD price of GetProducts' ``PriceList`` items (JSON strings), from their
    OnDemand terms; None when there is none, or when the items disagree."""
    found: set[Decimal] = set()
    for item in price_list:
        product = json.loads(item) if isinstance(item, str) else item
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = dimension.get("pricePerUnit", {}).get("USD")
                try:
                    found.add(Decimal(usd))
                except (InvalidOperation, TypeError):
                    continue
    return found.pop() if len(found) == 1 else None


def list_price(client: Any, filters: list[dict[str, str]]) -> Decimal | None:
    """One GetProducts query (all pages) reduced to its price."""
    items = aws.paginate(
        client,
        "get_products",
        "PriceList",
        ServiceCode="AmazonEC2",
        FormatVersion="aws_v1",
        Filters=filters,
    )
    return on_demand_price(items)


def spot_prices(region: str, types: Iterable[str], ec2: Any | None = None) -> dict[str, Decimal]:
    """Per instance type, the highest spot price now in effect across the region's zones."""
    client = ec2 or aws.client("ec2", region)
    history = aws.paginate(
        client,
        "describe_spot_price_history",
        "SpotPriceHistory",
        InstanceTypes=sorted(set(types)),
        ProductDescriptions=SPOT_PRODUCTS,
        StartTime=datetime.now(UTC),
    )
    latest: dict[tuple[str, str], tuple[Any, Decimal]] = {}
    for entry in history:
        key = (entry["InstanceType"], entry["AvailabilityZone"])
        stamp = entry.get("Timestamp")
        if key not in latest or (stamp is not None and stamp > latest[key][0]):
            latest[key] = (stamp, Decimal(entry["SpotPrice"]))
    prices: dict[str, Decimal] = {}
    for (instance_type, _), (_, price) in latest.items():
        prices[instance_type] = max(price, prices.get(instance_type, price))
    return prices


def _each(items: list[T], work: Callable[[T], R]) -> list[R | EffectError]:
    def one(item: T) -> R | EffectError:
        try:
            return work(item)
        except EffectError as error:
            return error

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(one, items))


def from_aws(needed: Needs, *, pricing: Any | None = None) -> Prices:
    """Everything ``needed``, asked of AWS at once. A failed call costs only its own
    prices (they stay unknown) and is one line in ``notes``."""
    client = pricing or aws.client("pricing", PRICING_REGION)
    on_demand = sorted({(r, t) for r, t, m in needed.instances if m == ON_DEMAND})
    spot: dict[str, set[str]] = {}
    for region, instance_type, market in needed.instances:
        if market == SPOT:
            spot.setdefault(region, set()).add(instance_type)
    volumes = sorted(needed.volumes)
    found_instances = _each(on_demand, lambda k: list_price(client, instance_filters(*k)))
    found_volumes = _each(volumes, lambda k: list_price(client, volume_filters(*k)))
    found_spot = _each(sorted(spot), lambda region: spot_prices(region, spot[region]))
    ec2: dict[str, dict[str, dict[str, Decimal]]] = {}
    ebs: dict[str, dict[str, Decimal]] = {}
    notes: list[str] = []
    for (region, instance_type), price in zip(on_demand, found_instances, strict=True):
        if isinstance(price, EffectError):
            notes.append(str(price))
        elif price is not None:
            ec2.setdefault(region, {}).setdefault(instance_type, {})[ON_DEMAND] = price
    for (region, volume_type), price in zip(volumes, found_volumes, strict=True):
        if isinstance(price, EffectError):
            notes.append(str(price))
        elif price is not None:
            ebs.setdefault(region, {})[volume_type] = price
    for region, found in zip(sorted(spot), found_spot, strict=True):
        if isinstance(found, EffectError):
            notes.append(str(found))
            continue
        for instance_type, price in found.items():
            ec2.setdefault(region, {}).setdefault(instance_type, {})[SPOT] = price
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    source = f"AWS Price List API (list prices) and spot price history, {today}"
    return Prices(ec2=ec2, ebs=ebs, source=source, notes=tuple(dict.fromkeys(notes)))

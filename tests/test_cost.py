"""What a fleet costs: the pure estimate, price files, the Price List API client behind
its seam (hand-written GetProducts responses and the one AWS recorded as its example),
spot history from the emulator."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import botocore.loaders
import pytest
from botocore.stub import Stubber
from rich.console import Console

from perfops_cdk.cli.cost import detail_lines, line_price, show_fleet, total_line
from perfops_cdk.effects import aws, prices
from perfops_cdk.effects.emulator import Emulator
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners import cost
from perfops_cdk.planners.cost import Prices, Span
from perfops_cdk.planners.stacks import HostGroup
from perfops_cdk.planners.status import Host
from perfops_cdk.props.regions import DEFAULT_REGIONS

REPO = Path(__file__).resolve().parent.parent
D = Decimal

# Made-up numbers: these tests check arithmetic, not AWS' prices.
TABLE = {
    "source": "test table",
    "date": "2026-11-28",
    "ec2": {
        "eu-west-1": {
            "r5d.xlarge": {"on-demand": "0.300", "spot": "0.100"},
            "r5d.2xlarge": {"on-demand": "0.600", "spot": "0.200"},
        },
        "us-east-1": {"r5d.xlarge": {"on-demand": "0.250"}},
    },
    "ebs": {"eu-west-1": {"gp3": "0.073"}, "us-east-1": {"gp3": "0.080"}},
}
PRICES = cost.parse_prices(TABLE, "prices.json")


def group(**fields: Any) -> HostGroup:
    raw = {
        "hosts": 2,
        "ami": "ami-1",
        "instance_types": ["r5d.xlarge"],
        "root_volume_gib": 100,
        "root_volume_type": "gp3",
        **fields,
    }
    region = raw.pop("region", "eu-west-1")
    return HostGroup.from_note("perf-ops", region, "u1", raw.pop("name", "web"), raw)


# 100 GiB of gp3 at 0.073 per GB-month for 730 hours: 0.01 USD per host and hour.
VOLUME = D("0.01")


@pytest.mark.parametrize(
    ("declared", "per_hour", "vcpus", "missing"),
    [
        (group(), Span(2 * (D("0.3") + VOLUME), 2 * (D("0.3") + VOLUME)), "8", ()),
        (
            group(hosts=5, market="spot", on_demand_hosts=2),
            Span.of([2 * D("0.3") + 3 * D("0.1") + 5 * VOLUME]),
            "20",
            (),
        ),
        (
            # Spot fell 2 short: the on-demand fallback runs in their place.
            group(
                hosts=5,
                market="spot",
                on_demand_hosts=1,
                fallback_to_on_demand=True,
                fallback_hosts=2,
            ),
            Span.of([3 * D("0.3") + 2 * D("0.1") + 5 * VOLUME]),
            "20",
            (),
        ),
        (
            group(instance_types=["r5d.xlarge", "r5d.2xlarge"]),
            Span(2 * (D("0.3") + VOLUME), 2 * (D("0.6") + VOLUME)),
            "8-16",
            (),
        ),
        (
            group(region="us-east-1", market="spot", on_demand_hosts=0),
            Span.of([2 * 100 * D("0.08") / 730]),
            "8",
            ("no spot price for r5d.xlarge in us-east-1",),
        ),
        (
            group(root_volume_type="io2"),
            Span.of([2 * D("0.3")]),
            "8",
            ("no io2 volume price in eu-west-1",),
        ),
        (
            group(instance_types=["x9.huge"]),
            Span.of([2 * VOLUME]),
            "?",
            ("no on-demand price for x9.huge in eu-west-1",),
        ),
    ],
)
def test_estimate_prices_each_market_type_and_root_volume(
    declared: HostGroup, per_hour: Span, vcpus: str, missing: tuple[str, ...]
) -> None:
    """Hosts x instance price per market (fallback hosts on-demand, in place of the
    spot hosts they stand for), a range over listed types, plus root volumes at
    GB-month / 730; a missing price is named and leaves only a lower bound."""
    [line] = cost.estimate([declared], PRICES).lines
    assert line.per_hour == per_hour
    assert (cost.span_text(line.vcpus, money=False) if line.vcpus else "?") == vcpus
    assert tuple(map(str, line.missing)) == missing


def test_estimate_totals_count_hosts_vcpus_and_incomplete_lines() -> None:
    """Totals add every line; a line without a price is counted, never guessed."""
    estimate = cost.estimate(
        [group(), group(name="api", region="us-east-1", market="spot", on_demand_hosts=0)],
        PRICES,
    )
    assert (estimate.hosts, estimate.incomplete) == (4, 1)
    assert estimate.vcpus == Span(D(16), D(16))
    assert estimate.per_hour.low == 2 * (D("0.3") + VOLUME) + 2 * 100 * D("0.08") / 730
    assert estimate.without_lifetime == ("api", "web")
    assert cost.estimate([group(lifetime="8h")], PRICES).without_lifetime == ()


def test_running_cost_prices_each_live_host_by_its_own_type_and_lifecycle() -> None:
    """Live hosts are priced as EC2 reports them; a host nothing declares has no known
    root volume; stopped hosts cost nothing here."""

    def host(n: int, instance_type: str, lifecycle: str, deployment: str = "web") -> Host:
        return Host(
            instance_id=f"i-{n}",
            region="eu-west-1",
            app_stack="perf-ops",
            deployment=deployment,
            state="stopped" if n == 9 else "running",
            ami="ami-1",
            instance_type=instance_type,
            lifecycle=lifecycle,
        )

    live = [
        host(1, "r5d.xlarge", "on-demand"),
        host(2, "r5d.2xlarge", "spot"),
        host(9, "r5d.2xlarge", "on-demand"),
        host(3, "r5d.xlarge", "spot", deployment="stray"),
    ]
    declared = [group(instance_types=["r5d.xlarge", "r5d.2xlarge"])]
    stray, web = cost.running(live, declared, PRICES).lines
    assert (web.deployment, web.hosts, web.on_demand, web.spot) == ("web", 2, 1, 1)
    assert web.per_hour == Span.of([D("0.3") + D("0.2") + 2 * VOLUME])
    assert web.vcpus == Span(D(12), D(12))
    assert (stray.declared, stray.per_hour, tuple(map(str, stray.missing))) == (
        False,
        Span.of([D("0.1")]),
        ("root volume size unknown (nothing declares the hosts) in eu-west-1",),
    )


def test_needs_asks_for_every_type_market_and_volume_used() -> None:
    """Spot groups need both markets (an on-demand base or fallback may run)."""
    needed = cost.needs([group(market="spot", on_demand_hosts=1)])
    assert needed.instances == {
        ("eu-west-1", "r5d.xlarge", "on-demand"),
        ("eu-west-1", "r5d.xlarge", "spot"),
    }
    assert needed.volumes == {("eu-west-1", "gp3")}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "prices.json: the top level: expected an object, not list"),
        ({"ec2": {"eu-west-1": []}}, "prices.json: ec2.eu-west-1: expected an object, not list"),
        (
            {"ec2": {"eu-west-1": {"t3.micro": {"on-demand": "cheap"}}}},
            "prices.json: ec2.eu-west-1.t3.micro.on-demand: 'cheap' is not a price",
        ),
        (
            {"ec2": {"eu-west-1": {"t3.micro": {"on-demand": 0.01}}}},
            "prices.json: ec2.eu-west-1.t3.micro.on-demand: 0.01 is not a price",
        ),
        (
            {"ec2": {"eu-west-1": {"t3.micro": {"reserved": "0.01"}}}},
            "prices.json: ec2.eu-west-1.t3.micro: market 'reserved' is not on-demand or spot",
        ),
        ({"ebs": {"eu-west-1": {"gp3": "-1"}}}, "prices.json: ebs.eu-west-1.gp3: '-1' is not"),
        ({"instances": {}}, "prices.json: unknown key 'instances'; expected ec2, ebs"),
    ],
)
def test_malformed_price_tables_are_one_line_naming_the_place(document: Any, message: str) -> None:
    """Every mistake in a price file names the file, where in it, and what was wanted."""
    with pytest.raises(PerfOpsError) as caught:
        cost.parse_prices(document, "prices.json")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("command", ["deploy", "status"])
def test_malformed_price_file_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    """`perfops deploy|status --prices FILE` reads the file first: a broken one is one
    line on stderr and exit 2, before anything is synthesized or asked of AWS."""
    (tmp_path / "cdktf.json").write_text(json.dumps({"app": "python deployments.py"}))
    bad = tmp_path / "prices.json"
    bad.write_text('{"ec2": {"eu-west-1": {"t3.micro": {"on-demand": 1e9}}}')
    result = subprocess.run(
        [sys.executable, "-m", "perfops_cdk.cli.main", command, "--prices", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == f"error: --prices: {bad} is not JSON (Expecting ',' delimiter: " + (
        "line 1 column 56 (char 55))\n"
    )
    assert not (tmp_path / "cdktf.out").exists()


def _product(sku: str, usd: str, unit: str = "Hrs", **attributes: str) -> str:
    """One PriceList item as GetProducts returns it: a JSON string of a product and its
    terms. Written by hand from the documented aws_v1 format (AWS Price List API,
    GetProducts), not recorded from AWS: the emulator has no Price List API."""
    term = f"{sku}.JRTCKXETXF"
    return json.dumps(
        {
            "product": {
                "productFamily": attributes.pop("productFamily", "Compute Instance"),
                "attributes": attributes,
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    term: {
                        "priceDimensions": {
                            f"{term}.6YS6EN2CT7": {
                                "unit": unit,
                                "endRange": "Inf",
                                "description": f"${usd} per {unit}",
                                "appliesTo": [],
                                "rateCode": f"{term}.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                }
            },
            "version": "20261101000000",
            "publicationDate": "2026-11-01T00:00:00Z",
        }
    )


def test_price_list_client_asks_for_linux_shared_list_prices_and_reads_the_terms() -> None:
    """GetProducts is asked per type and region (Linux, shared tenancy, no software,
    capacity used) and per EBS volume type; the OnDemand term's USD is the price. A
    failed call leaves its price unknown and becomes one note."""
    client = aws.client("pricing", prices.PRICING_REGION, endpoint="http://127.0.0.1:9")
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            {
                "FormatVersion": "aws_v1",
                "PriceList": [
                    _product(
                        "SKU1",
                        "0.3020000000",
                        instanceType="r5d.xlarge",
                        regionCode="eu-west-1",
                        operatingSystem="Linux",
                        tenancy="Shared",
                        preInstalledSw="NA",
                        capacitystatus="Used",
                    )
                ],
            },
            {
                "ServiceCode": "AmazonEC2",
                "FormatVersion": "aws_v1",
                "Filters": prices.instance_filters("eu-west-1", "r5d.xlarge"),
            },
        )
        stub.add_client_error(
            "get_products", "AccessDeniedException", "not allowed: pricing:GetProducts"
        )
        found = prices.from_aws(
            cost.Needs(
                instances=frozenset({("eu-west-1", "r5d.xlarge", "on-demand")}),
                volumes=frozenset({("eu-west-1", "gp3")}),
            ),
            pricing=client,
        )
        stub.assert_no_pending_responses()
    assert found.instance("eu-west-1", "r5d.xlarge", "on-demand") == D("0.302")
    assert found.volume("eu-west-1", "gp3") is None
    assert found.notes == (
        "us-east-1: get_products failed: not authorized to perform pricing:GetProducts; "
        "grant it to the deployer (examples/iam/, docs/iam.md) (AccessDeniedException)",
    )
    assert found.source.startswith("AWS Price List API")


def test_volume_prices_come_from_storage_products_by_volume_api_name() -> None:
    """An EBS volume type is a Storage product; its price is per GB-month."""
    client = aws.client("pricing", prices.PRICING_REGION, endpoint="http://127.0.0.1:9")
    with Stubber(client) as stub:
        stub.add_response(
            "get_products",
            {
                "FormatVersion": "aws_v1",
                "PriceList": [
                    _product(
                        "SKU2",
                        "0.0880000000",
                        unit="GB-Mo",
                        productFamily="Storage",
                        volumeApiName="gp3",
                        regionCode="eu-west-1",
                    )
                ],
            },
            {
                "ServiceCode": "AmazonEC2",
                "FormatVersion": "aws_v1",
                "Filters": prices.volume_filters("eu-west-1", "gp3"),
            },
        )
        assert prices.list_price(client, prices.volume_filters("eu-west-1", "gp3")) == D("0.088")


def test_price_list_client_reads_the_response_aws_recorded() -> None:
    """The GetProducts response AWS publishes as its example (botocore's
    ``pricing/2017-10-15/examples-1.json``: an io1 volume in ca-central-1, recorded
    2017-09-01), served page by page: its price is the one its own description names."""
    [example] = botocore.loaders.Loader().load_service_model("pricing", "examples-1")["examples"][
        "GetProducts"
    ]
    recorded = example["output"]
    [item] = recorded["PriceList"]
    named = re.search(r"\$([0-9.]+) per GB-month", item)
    assert named is not None and "NextToken" in recorded
    client = aws.client("pricing", prices.PRICING_REGION, endpoint="http://127.0.0.1:9")
    filters = prices.volume_filters("ca-central-1", "io1")
    expected = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "Filters": filters}
    with Stubber(client) as stub:
        stub.add_response("get_products", recorded, expected)
        last = {"FormatVersion": "aws_v1", "PriceList": []}
        stub.add_response("get_products", last, {**expected, "NextToken": recorded["NextToken"]})
        assert prices.list_price(client, filters) == D(named.group(1))
        stub.assert_no_pending_responses()


def test_disagreeing_products_give_no_price() -> None:
    """Two matching products with different prices are ambiguous: no price, no guess."""
    items = [_product("A", "0.1"), _product("B", "0.2"), _product("C", "0.1")]
    assert prices.on_demand_price(items[::2]) == D("0.1")
    assert prices.on_demand_price(items) is None
    assert prices.on_demand_price([]) is None


def test_spot_prices_come_from_the_spot_price_history(emulator: Emulator) -> None:
    """DescribeSpotPriceHistory (EC2, which the emulator serves with a placeholder
    price) gives a spot price per type: the highest of the region's zones."""
    found = prices.spot_prices("eu-west-1", ["t3.micro", "r5d.xlarge"])
    assert set(found) == {"t3.micro", "r5d.xlarge"}
    assert all(price > 0 for price in found.values())


def test_price_file_reads_into_a_table_with_its_source() -> None:
    """A price file's own source and date label the estimate."""
    assert PRICES.source == "test table, 2026-11-28"
    assert PRICES.instance("eu-west-1", "r5d.2xlarge", "spot") == D("0.2")
    assert PRICES.volume("us-east-1", "gp3") == D("0.08")
    assert Prices().instance("eu-west-1", "t3.micro", "on-demand") is None


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("0.576"), "0.576"), (D("2.49120"), "2.4912"), (D("12.5"), "12.50"), (D("0.00004"), "0.00")],
)
def test_usd_shows_at_most_four_and_at_least_two_decimals(value: Decimal, text: str) -> None:
    """Hourly prices keep their precision without trailing zeros."""
    assert cost.usd(value) == text


def test_totals_read_as_lower_bounds_when_a_price_is_missing() -> None:
    """The CLI's lines: an exact total, a lower bound with the count of lines lacking a
    price, and `cost unknown` when nothing is priced; a line shows >= or ?."""
    exact = cost.estimate([group()], PRICES)
    assert total_line(exact, "fleet") == "fleet: 2 hosts, 8 vCPUs, 0.62 USD/h (14.88 USD/day)"
    partial = cost.estimate([group(region="us-east-1", market="spot", on_demand_hosts=0)], PRICES)
    assert total_line(partial, "fleet") == (
        "fleet: 2 hosts, 8 vCPUs, at least 0.0219 USD/h (0.526 USD/day); 1 line lacks a price"
    )
    assert line_price(partial.lines[0]) == ">=0.0219"
    nothing = cost.estimate([group(region="ap-south-1")], PRICES)
    assert total_line(nothing, "running") == (
        "running: 2 hosts, 8 vCPUs, cost unknown: 1 line lacks a price"
    )
    assert line_price(nothing.lines[0]) == "?"
    assert detail_lines(nothing) == [
        "  ap-south-1: no on-demand price for r5d.xlarge",
        "  ap-south-1: no gp3 volume price",
        "prices: test table, 2026-11-28",
    ]


def test_a_missing_price_is_one_line_naming_its_regions() -> None:
    """A price missing for several deployments and regions is said once: 4 deployments
    in 17 regions without a price source were 68 lines saying the same two things."""
    regions = DEFAULT_REGIONS[:17]
    fleet = [group(name=f"load{d}", region=r) for d in range(4) for r in regions]
    unpriced = cost.estimate(fleet, cost.parse_prices({"source": "none"}, "none"))
    assert total_line(unpriced, "fleet").endswith("cost unknown: 68 lines lack a price")
    assert detail_lines(unpriced) == [
        "  every region (17): no on-demand price for r5d.xlarge",
        "  every region (17): no gp3 volume price",
        "prices: none",
    ]
    spot = [group(region=r, market="spot", on_demand_hosts=0) for r in ("eu-west-1", "us-east-1")]
    partial = cost.estimate([*spot, group(name="api", region="us-east-1")], PRICES)
    assert detail_lines(partial) == [
        "  us-east-1: no spot price for r5d.xlarge",
        "prices: test table, 2026-11-28",
    ]


def test_fleet_table_shows_whole_region_names_at_80_columns() -> None:
    """Piped output is 80 columns wide; region names that differ only at their end
    (ap-northeast-1, -2, -3) must stay whole, not all read 'ap-northeast…'."""
    regions = ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-2")
    groups = [
        group(region=r, name="load0", instance_types=["r5d.2xlarge", "r5ad.2xlarge"], lifetime="8h")
        for r in regions
    ]
    out = io.StringIO()
    show_fleet(Console(file=out, width=80), cost.estimate(groups, Prices()))
    text = out.getvalue()
    assert "…" not in text and "USD/h" in text  # no column cut or dropped
    for region in regions:
        assert region in text


def test_fleet_table_folds_a_deployment_alike_in_many_regions() -> None:
    """400 hosts in 17 regions was 68 rows: a deployment whose regions all run the same
    types, market and lifetime is one row from 5 regions on, its hosts summed; one
    that differs somewhere keeps a row per region."""
    regions = DEFAULT_REGIONS[:17]
    groups = [group(region=r, name="wide", hosts=3) for r in regions]
    groups += [group(region=r, name="narrow") for r in regions[:2]]
    out = io.StringIO()
    show_fleet(Console(file=out, width=120), cost.estimate(groups, Prices()))
    rows = [ln.split() for ln in out.getvalue().splitlines()]
    wide = [r for r in rows if r[:1] == ["wide"]]
    narrow = [r[:3] for r in rows if r[:1] == ["narrow"]]
    assert [r[:5] for r in wide] == [["wide", "every", "region", "(17)", "51"]]
    assert narrow == [["narrow", regions[0], "2"], ["narrow", regions[1], "2"]]

"""The sync planner (selection, one action per region) and ImageAsset's nix source props."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfops_cdk import App, ImageAsset, InvalidField, PerfOpsStack
from perfops_cdk.app import ImageRequirement, main
from perfops_cdk.errors import PerfOpsError
from perfops_cdk.planners.ami_sync import (
    ImageTarget,
    RegionLookup,
    describe,
    plan_image,
    select,
    sync_tags,
)

HOME = "eu-west-1"
TARGET = ImageTarget("node", "node-abc", HOME, (HOME, "us-east-1", "sa-east-1"), "me")


def requirement(name: str, regions: tuple[str, ...], prebuilt: bool = False) -> ImageRequirement:
    return ImageRequirement(
        stack="s",
        id=name,
        name=name,
        regions=regions,
        home_region=HOME,
        uuid="me",
        prebuilt=prebuilt,
        host_modules=(),
        container_modules=(),
        project_dir="/p",
        nix_file=None if prebuilt else "/p/nix/default.nix",
        attr=f"images.{name}.image",
    )


REQS = [
    requirement("used", ("us-east-1", "eu-west-1")),
    requirement("unused", ()),
    requirement("bought", ("us-east-1",), prebuilt=True),
]


def test_default_selection_is_the_used_nix_images_in_their_regions() -> None:
    """Without options: images deployments use, in their regions plus home; prebuilt skipped."""
    chosen = select(REQS)
    assert [(s.name, s.regions) for s in chosen] == [("used", ("eu-west-1", "us-east-1"))]


def test_names_all_selects_every_nix_image_and_regions_replace_the_defaults() -> None:
    """--names all takes unused images too; --regions (comma lists) replaces their regions."""
    chosen = select(REQS, names=["all"], regions=["ap-south-1,sa-east-1"], home="us-west-2")
    assert [(s.name, s.home_region, s.regions) for s in chosen] == [
        ("used", "us-west-2", ("ap-south-1", "sa-east-1", "us-west-2")),
        ("unused", "us-west-2", ("ap-south-1", "sa-east-1", "us-west-2")),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": ["usde"]}, "no nix-built image 'usde'; did you mean 'used'?"),
        ({"names": ["bought"]}, "no nix-built image 'bought'"),
        ({"regions": ["us-est-1"]}, "'us-est-1' is not allowed; must be an AWS region name"),
        ({"home": "eu-wset-1"}, "did you mean 'eu-west-1'?"),
    ],
)
def test_bad_selection_is_one_line(kwargs: dict[str, list[str] | str], message: str) -> None:
    """Unknown images and region typos raise one line naming the value and a fix."""
    with pytest.raises(PerfOpsError) as caught:
        select(REQS, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def found(region: str, **kwargs: object) -> RegionLookup:
    return RegionLookup(region, **kwargs)  # type: ignore[arg-type]


AVAILABLE = {"ami_id": "ami-1", "ami_state": "available", "ami_uuid": "me"}


@pytest.mark.parametrize(
    ("lookups", "force", "actions"),
    [
        ({}, False, ["upload", "copy", "copy"]),
        ({r: found(r, **AVAILABLE) for r in TARGET.regions}, False, ["ready"] * 3),
        (
            {HOME: found(HOME, snapshots=(("snap-1", "completed"), ("snap-2", "pending")))},
            False,
            ["register", "copy", "copy"],
        ),
        (
            {HOME: found(HOME, import_task_id="import-snap-1")},
            False,
            ["resume-import"] + ["copy"] * 2,
        ),
        (
            {
                HOME: found(HOME, **AVAILABLE),
                "us-east-1": found("us-east-1", ami_id="ami-2", ami_state="pending"),
                "sa-east-1": found("sa-east-1", ami_id="ami-3", ami_state="failed"),
            },
            False,
            ["ready", "wait", "replace"],
        ),
        ({r: found(r, **AVAILABLE) for r in TARGET.regions}, True, ["replace"] * 3),
        (
            {r: found(r, **{**AVAILABLE, "ami_uuid": "other"}) for r in TARGET.regions},
            True,
            ["ready"] * 3,
        ),
    ],
    ids=[
        "nothing-exists",
        "all-exist",
        "finished-snapshot",
        "interrupted-import",
        "pending-and-failed",
        "force-replaces-own",
        "force-keeps-others",
    ],
)
def test_plan_has_one_action_per_region(
    lookups: dict[str, RegionLookup], force: bool, actions: list[str]
) -> None:
    """What exists decides each region's action; force only ever replaces this uuid's AMIs."""
    result = plan_image(TARGET, lookups, force=force)
    by_region = {s.region: s.action for s in result.steps}
    assert [by_region[r] for r in TARGET.regions] == actions


TAGGED = {**AVAILABLE, "ami_tags": sync_tags(TARGET, "snap-1")}


@pytest.mark.parametrize(
    ("lookup", "repair"),
    [
        (TAGGED, False),
        ({**TAGGED, "ami_tags": {**sync_tags(TARGET, "snap-1"), "perf-ops": "other"}}, False),
        (AVAILABLE, True),
        ({**TAGGED, "ami_tags": {"perf-ops": "me"}}, True),
        ({**TAGGED, "ami_state": "pending"}, False),
        ({**AVAILABLE, "ami_state": "pending"}, True),
    ],
    ids=["tagged", "another-uuid", "untagged", "uuid-only", "pending-tagged", "pending-untagged"],
)
def test_ami_found_without_the_sync_tags_is_repaired(
    lookup: dict[str, object], repair: bool
) -> None:
    """An AMI lacking any sync tag key gets a repair step; a plan with one is not unchanged."""
    result = plan_image(TARGET, {r: found(r, **lookup) for r in TARGET.regions})
    assert [s.repair_tags for s in result.steps] == [repair] * 3
    if lookup.get("ami_state") == "available":
        assert result.unchanged is not repair
    assert any(line.endswith("add the sync's missing tags") for line in describe(result)) is repair


def test_finished_snapshot_is_registered_and_unfinished_ones_are_deleted_before_upload() -> None:
    """A completed snapshot is reused; a pending one from a killed upload is marked stale."""
    reuse = plan_image(TARGET, {HOME: found(HOME, snapshots=(("snap-1", "completed"),))})
    assert (reuse.home.snapshot_id, reuse.home.stale_snapshots) == ("snap-1", ())
    redo = plan_image(TARGET, {HOME: found(HOME, snapshots=(("snap-9", "pending"),))})
    assert (redo.home.action, redo.home.stale_snapshots) == ("upload", ("snap-9",))
    assert redo.needs_disk and not reuse.unchanged


def test_image_asset_nix_source_defaults_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default: nix/image.nix given the image's own name and modules; overrides resolve
    against the app's cwd and take only their own args."""
    monkeypatch.chdir(tmp_path)
    stack = PerfOpsStack(App(outdir=str(tmp_path / "out")), "s", uuid="abcdefghij")
    default = ImageAsset(
        stack, "k6", name="k6-v1", container_modules=["k6", "template"], host_modules=["h.nix"]
    )
    assert (default.nix_path, default.nix_attr) == (tmp_path / "nix" / "image.nix", None)
    assert default.nix_args == {
        "name": "k6-v1",
        "containerModules": "k6,template",
        "hostModules": "h.nix",
    }
    custom = ImageAsset(
        stack, "t", name="t-v1", nix_file="img/x.nix", attr="amazonImage", args={"seed": "2"}
    )
    assert (custom.nix_path, custom.nix_attr, custom.nix_args) == (
        tmp_path / "img" / "x.nix",
        "amazonImage",
        {"seed": "2"},
    )
    assert ImageAsset(stack, "u", name="u-v1", nix_file="y.nix").nix_attr is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nix_file": "image.json"}, "nix_file: 'image.json' is not allowed"),
        ({"attr": "images.k6 image"}, "attr: 'images.k6 image' is not allowed"),
        ({"args": {"seed": 2}}, "args['seed']: 2 is not allowed"),
    ],
)
def test_image_asset_rejects_bad_nix_source(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    """A bad nix_file, attr or args is one line at the construct's path."""
    stack = PerfOpsStack(App(outdir=str(tmp_path / "out")), "s", uuid="abcdefghij")
    with pytest.raises(InvalidField) as caught:
        ImageAsset(stack, "img", name="img-v1", **kwargs)  # type: ignore[arg-type]
    assert str(caught.value).startswith("s/img: ") and message in str(caught.value)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "ftp"], "argument --method: invalid choice: 'ftp'"),
        (["--names"], "argument --names: expected at least one argument"),
        (["--bogus"], "unknown arguments '--bogus'; allowed: --names"),
    ],
)
def test_sync_amis_bad_arguments_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deployments.py --sync-amis` with bad options: one line on stderr, exit 2, no declare."""
    declared: list[object] = []
    with pytest.raises(SystemExit) as exited:
        main(declared.append, ["--sync-amis", *argv])
    assert exited.value.code == 2 and declared == []
    err = capsys.readouterr().err
    assert err.startswith("error: --sync-amis: ") and message in err
    assert len(err.strip().splitlines()) == 1

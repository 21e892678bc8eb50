"""The nix seam: real builds of nix/test-image, and one-line errors when nix fails."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from perfops_cdk.effects import nix
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, data_block_indexes
from perfops_cdk.errors import EffectError

TEST_IMAGE = Path(__file__).resolve().parent.parent / "nix" / "test-image"
ATTR = "amazonImage"

needs_nix = pytest.mark.skipif(
    shutil.which("nix-build") is None, reason="nix-build is not installed (CI installs nix-bin)"
)


@pytest.mark.nix
@needs_nix
def test_test_image_builds_a_sparse_raw_disk_with_nixos_image_info() -> None:
    """nix-build of the test image gives a sparse raw disk that image-info.json describes."""
    out = nix.build(TEST_IMAGE, ATTR)
    info = nix.read_image_info(out)
    assert info.label == "perfops-test-image-1"
    assert info.system == nix.run(
        ["nix-instantiate", "--eval", "-E", "builtins.currentSystem"]
    ).stdout.strip().strip('"')
    assert info.boot_mode == "legacy-bios"
    assert info.format == "raw"
    assert info.file.parent == out
    assert info.logical_bytes == 64 * 1024 * 1024 == info.file.stat().st_size
    assert info.disks["root"].file == info.file
    fd = os.open(info.file, os.O_RDONLY)
    try:
        data_blocks = list(data_block_indexes(fd, info.logical_bytes))
    finally:
        os.close(fd)
    # 3.6 MiB of data at four places, two of them straddling block boundaries.
    assert data_blocks == [0, 1, 10, 11, 64, 65, 126, 127]
    assert os.stat(info.file).st_blocks * 512 < 8 * BLOCK_SIZE


@pytest.mark.nix
@needs_nix
def test_instantiate_names_the_build_output_without_building() -> None:
    """instantiate evaluates the same output path nix-build later produces, building nothing."""
    args = {"seed": f"instantiate-{os.getpid()}-{os.urandom(4).hex()}"}
    planned = nix.instantiate(TEST_IMAGE, ATTR, args=args)
    assert not planned.exists()
    assert nix.build(TEST_IMAGE, ATTR, args=args) == planned
    assert planned.is_dir()


@pytest.mark.nix
@needs_nix
def test_changed_parameters_give_a_new_image_identity() -> None:
    """A different size or seed is a different store path, so a different AMI name."""
    base = nix.instantiate(TEST_IMAGE, ATTR)
    assert nix.instantiate(TEST_IMAGE, ATTR, args={"sizeMiB": "32"}) != base
    assert nix.instantiate(TEST_IMAGE, ATTR, args={"seed": "2"}) != base
    assert nix.instantiate(TEST_IMAGE, ATTR) == base


@pytest.mark.nix
@needs_nix
def test_failed_build_is_one_line_with_nix_stderr_tail() -> None:
    """A builder that exits non-zero gives one line that quotes the builder's own message."""
    with pytest.raises(EffectError) as caught:
        nix.build(TEST_IMAGE, ATTR, args={"sizeMiB": "4", "seed": os.urandom(4).hex()})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"nix-build {TEST_IMAGE} -A {ATTR} failed (exit")
    assert "sizeMiB must be at least 16" in message


@pytest.mark.nix
@needs_nix
def test_evaluation_error_is_one_line(tmp_path: Path) -> None:
    """An expression that does not evaluate fails instantiate with one line naming the file."""
    broken = tmp_path / "broken.nix"
    broken.write_text('{ amazonImage = throw "no image here"; }\n')
    with pytest.raises(
        EffectError, match=r"^nix-instantiate .*broken.nix -A amazonImage failed"
    ) as caught:
        nix.instantiate(broken, ATTR)
    assert "no image here" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_nix_binary_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without nix on PATH, build says which program is missing and how to install it."""
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EffectError, match=r"^nix-build: not found on PATH; install nix") as caught:
        nix.build(TEST_IMAGE, ATTR)
    assert "\n" not in str(caught.value)


def test_every_nix_call_goes_through_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """instantiate calls nix-instantiate then nix-store through the replaceable run seam."""
    calls: list[tuple[str, ...]] = []

    def fake_run(argv: list[str], *, timeout: float | None = None) -> nix.NixResult:
        calls.append(tuple(argv))
        out = "/nix/store/x.drv\n" if argv[0] == "nix-instantiate" else "/nix/store/abc-img\n"
        return nix.NixResult(tuple(argv), 0, out, "")

    monkeypatch.setattr(nix, "run", fake_run)
    assert nix.instantiate(Path("/e.nix"), "img", args={"b": "2", "a": "1"}) == Path(
        "/nix/store/abc-img"
    )
    assert calls == [
        ("nix-instantiate", "/e.nix", "-A", "img", "--argstr", "a", "1", "--argstr", "b", "2"),
        ("nix-store", "--query", "--outputs", "/nix/store/x.drv"),
    ]


def _out_with_info(tmp_path: Path, info: object | str) -> Path:
    (tmp_path / "nix-support").mkdir()
    (tmp_path / "disk.raw").write_bytes(b"\1" * 4096)
    text = info if isinstance(info, str) else json.dumps(info)
    (tmp_path / "nix-support" / "image-info.json").write_text(text)
    return tmp_path


def test_reads_image_info_in_the_older_top_level_format(tmp_path: Path) -> None:
    """An image-info.json without 'disks' (older NixOS) still gives the root disk."""
    out = _out_with_info(
        tmp_path,
        {
            "label": "24.05",
            "system": "aarch64-linux",
            "logical_bytes": 4096,
            "file": str(tmp_path / "disk.raw"),
        },
    )
    info = nix.read_image_info(out)
    assert (info.system, info.logical_bytes, info.boot_mode) == (
        "aarch64-linux",
        4096,
        "legacy-bios",
    )
    assert info.disks["root"].file == tmp_path / "disk.raw"


def test_missing_image_info_is_one_line(tmp_path: Path) -> None:
    """An output without nix-support/image-info.json fails with the path it looked at."""
    with pytest.raises(
        EffectError, match=r"image-info.json: missing; the image expression must write it$"
    ):
        nix.read_image_info(tmp_path)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        (
            {"system": "x86_64-linux", "file": "disk.raw", "logical_bytes": "1"},
            "'label' must be a non-empty string",
        ),
        ({"label": "l", "system": "x86_64-linux"}, "needs 'disks.root'"),
        (
            {"label": "l", "system": "x86_64-linux", "file": "disk.raw", "logical_bytes": "lots"},
            "is not a byte count",
        ),
        (
            {"label": "l", "system": "x86_64-linux", "file": "disk.raw", "logical_bytes": 0},
            "must be positive",
        ),
        (
            {"label": "l", "system": "x86_64-linux", "file": "nope.raw", "logical_bytes": 1},
            "does not exist",
        ),
        (
            {
                "label": "l",
                "system": "x86_64-linux",
                "file": "disk.raw",
                "logical_bytes": 1,
                "boot_mode": "efi",
            },
            "boot_mode 'efi' is not one of",
        ),
    ],
)
def test_malformed_image_info_is_one_line(tmp_path: Path, content: object, complaint: str) -> None:
    """Each kind of malformed image-info.json is refused with one line saying what is wrong."""
    out = _out_with_info(tmp_path, content)
    with pytest.raises(EffectError) as caught:
        nix.read_image_info(out)
    assert complaint in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(out / "nix-support" / "image-info.json"))

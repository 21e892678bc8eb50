"""Benchmark: the full image sync against a local moto server (upload-raw path).

Per run (moto reset first, in its own process):
1. sync a 1 GiB raw image holding 128 MiB of non-zero data to its home region
   (content hash, EBS direct upload skipping zero blocks and holes, register),
   after one untimed call that makes moto build the region's backend;
2. upload the same image sending every block with 64 workers (the NixOS/amis method);
3. copy the AMI to the other 16 default regions (a sync over 17 regions);
4. resync over 17 regions with nothing changed: wall time and API calls by name.

    .venv/bin/python bench/sync.py [--runs 5] [--size-mib 1024] [--data-mib 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upload import make_image, moto_process, non_zero_blocks, reset

from perfops_cdk.effects import aws
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, upload_snapshot
from perfops_cdk.planners.ami_sync import Selection
from perfops_cdk.props.regions import DEFAULT_REGIONS
from perfops_cdk.publishing import sync as sync_module
from perfops_cdk.publishing.sync import SyncOptions, raw_identity, sync_images

MIB = 1024 * 1024
HOME = "us-east-1"
CHANGING = ("StartSnapshot", "PutSnapshotBlock", "RegisterImage", "CopyImage", "CreateTags")
CALLS: Counter[str] = Counter()


def _counting_client(real: Any) -> Any:
    def client(service: str, region: str, **kwargs: Any) -> Any:
        made = real(service, region, **kwargs)
        made.meta.events.register("before-call", lambda model, **_: CALLS.update([model.name]))
        return made

    return client


def _selection(image: Path, work: Path, regions: tuple[str, ...]) -> Selection:
    return Selection(
        name="bench",
        home_region=HOME,
        regions=regions,
        uuid="benchuuid1",
        project_dir=str(work),
        raw_path=str(image),
    )


def one_run(url: str, image: Path, work: Path, run: int) -> dict[str, Any]:
    reset(url)
    sync_module.forget_clients()
    (work / "state.json").unlink(missing_ok=True)
    options = SyncOptions(poll_s=0.2, workers=16)
    # moto builds a region's EC2 backend on first use (~1 s); both methods start warm.
    aws.client("ec2", HOME).describe_images(Owners=["self"])

    start = time.perf_counter()
    raw_identity(image)
    hash_s = time.perf_counter() - start

    start = time.perf_counter()
    [home] = sync_images([_selection(image, work, (HOME,))], options=options)
    sync_s = time.perf_counter() - start

    start = time.perf_counter()
    upload_snapshot(
        image, region=HOME, client_token=f"every-{run}", workers=64, upload_every_block=True
    )
    every_s = time.perf_counter() - start

    everywhere = _selection(image, work, DEFAULT_REGIONS)
    start = time.perf_counter()
    [copied] = sync_images([everywhere], options=options)
    copy_s = time.perf_counter() - start
    assert not copied.failed and len(copied.copied) == len(DEFAULT_REGIONS) - 1, copied

    CALLS.clear()
    start = time.perf_counter()
    [again] = sync_images([everywhere], options=options)
    resync_s = time.perf_counter() - start
    assert again.plan.unchanged and again.ami_ids == copied.ami_ids
    return {
        "sync_s": sync_s,
        "hash_s": hash_s,
        "every_s": every_s,
        "copy_s": copy_s,
        "resync_s": resync_s,
        "bytes": home.bytes_uploaded,
        "changing_calls": sum(CALLS[name] for name in CHANGING),
        "calls": sum(CALLS.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--data-mib", type=int, default=128)
    args = parser.parse_args()

    aws.client = _counting_client(aws.client)
    with moto_process() as url, tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "disk.raw"
        make_image(image, args.size_mib, args.data_mib)
        expected = non_zero_blocks(image) * BLOCK_SIZE
        runs = [one_run(url, image, Path(tmp), run) for run in range(args.runs)]

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def each(key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in runs)

    print(
        f"image {args.size_mib} MiB, {args.data_mib} MiB non-zero = {expected // MIB} MiB of "
        f"non-zero blocks; {args.runs} runs; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    print("| measure | median | runs |")
    print("| --- | ---: | --- |")
    print(f"| bytes uploaded / non-zero blocks | {med('bytes') / expected:.3f} | |")
    print(f"| sync to home: hash, upload, register s | {med('sync_s'):.2f} | {each('sync_s')} |")
    print(f"| of which content hash of the raw image s | {med('hash_s'):.2f} | {each('hash_s')} |")
    print(f"| every block, 64 workers (upload only) s | {med('every_s'):.2f} | {each('every_s')} |")
    print(f"| speed-up | {med('every_s') / med('sync_s'):.1f}x | |")
    print(f"| copy to 16 more regions s | {med('copy_s'):.2f} | {each('copy_s')} |")
    print(f"| resync, 17 regions, unchanged s | {med('resync_s'):.2f} | {each('resync_s')} |")
    print(
        f"| resync API calls (uploads+registers+copies+tags) | "
        f"{med('changing_calls'):.0f} of {med('calls'):.0f} | |"
    )


if __name__ == "__main__":
    main()

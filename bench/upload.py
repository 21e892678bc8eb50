"""Benchmark: EBS direct upload skipping zero blocks vs sending every block.

Against a local moto server (in its own process, so server and client do not share
one interpreter lock): a 1 GiB raw sparse image holding 128 MiB of non-zero data.
Prints a markdown table of the median wall time of several runs per method.

    .venv/bin/python bench/upload.py [--runs 5] [--size-mib 1024] [--data-mib 128]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import random
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

from perfops_cdk.effects import aws
from perfops_cdk.effects.ebs_snapshot import BLOCK_SIZE, upload_snapshot
from perfops_cdk.effects.emulator import EMULATOR_ENV, Emulator

MIB = 1024 * 1024
REGION = "us-east-1"
EXTENT = 2 * MIB


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in its own process, its URL exported to boto3; stopped on exit."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    url: str = parent.recv()
    os.environ.update({aws.ENDPOINT_ENV: url, **EMULATOR_ENV})
    try:
        yield url
    finally:
        parent.send("stop")
        server.join(timeout=10)


def _serve(conn: Connection) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per block otherwise
    emulator = Emulator().start()
    conn.send(emulator.url)
    conn.recv()  # any message (or the parent's exit) stops the server
    emulator.stop()


def make_image(path: Path, size_mib: int, data_mib: int) -> None:
    """Sparse image: ``data_mib`` of random bytes in 2 MiB extents spread evenly."""
    rng = random.Random(1)
    extents = data_mib * MIB // EXTENT
    stride = size_mib * MIB // extents
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)
        for i in range(extents):
            # Offsets off the block grid by a little, as file systems place data.
            f.seek(i * stride + (i % 4) * 4096)
            f.write(rng.randbytes(EXTENT))


def non_zero_blocks(path: Path) -> int:
    zero = bytes(BLOCK_SIZE)
    count = 0
    with path.open("rb") as f:
        while block := f.read(BLOCK_SIZE):
            count += block.ljust(BLOCK_SIZE, b"\0") != zero
    return count


def reset(url: str) -> None:
    with urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--data-mib", type=int, default=128)
    args = parser.parse_args()

    methods = [
        ("skip zero blocks and holes", 16, False),
        ("skip zero blocks and holes", 64, False),
        ("every block (NixOS/amis)", 64, True),
    ]
    rows = []
    with moto_process() as url, tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "disk.raw"
        make_image(image, args.size_mib, args.data_mib)
        expected = non_zero_blocks(image)
        for name, workers, every in methods:
            times, sent = [], 0
            for run in range(args.runs):
                reset(url)
                start = time.perf_counter()
                result = upload_snapshot(
                    image,
                    region=REGION,
                    client_token=f"bench-{workers}-{every}-{run}",
                    workers=workers,
                    upload_every_block=every,
                )
                times.append(time.perf_counter() - start)
                sent = result.bytes_sent
            rows.append((name, workers, sent, statistics.median(times), times))

    baseline = rows[-1][3]
    print(
        f"image {args.size_mib} MiB, {args.data_mib} MiB non-zero = {expected} blocks "
        f"({expected * BLOCK_SIZE // MIB} MiB); {args.runs} runs each; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    print("| method | workers | MiB sent | sent / non-zero blocks | median s | runs s | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    for name, workers, sent, median, times in rows:
        print(
            f"| {name} | {workers} | {sent / MIB:.0f} | {sent / (expected * BLOCK_SIZE):.3f} "
            f"| {median:.2f} | {', '.join(f'{t:.2f}' for t in times)} | {baseline / median:.1f}x |"
        )


if __name__ == "__main__":
    main()

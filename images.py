"""The images this project builds with nix and publishes as AMIs."""

from __future__ import annotations

from perfops_cdk import ImageAsset, PerfOpsStack


def declare_images(stack: PerfOpsStack) -> dict[str, ImageAsset]:
    """Declare every image on ``stack``; deployments pick theirs by key.

    The demo image is ``nix/test-image``: a small raw disk nix builds without nixpkgs
    (which cannot be fetched here). A real image leaves ``nix_file``/``attr`` at their
    defaults and is built by ``mkImage`` in ``nix/default.nix`` as ``images.<id>.image``.
    """
    return {
        "demo": ImageAsset(
            stack,
            "demo-image",
            name="perfops-demo-v1",
            container_modules=["k6"],
            nix_file="nix/test-image/default.nix",
            attr="amazonImage",
            args={"name": "perfops-demo", "sizeMiB": "64"},
        ),
    }

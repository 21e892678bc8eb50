"""The images this project builds with nix and publishes as AMIs."""

from __future__ import annotations

from perfops_cdk import ImageAsset, PerfOpsStack


def declare_images(stack: PerfOpsStack) -> dict[str, ImageAsset]:
    """Declare every image on ``stack``; deployments pick theirs by key."""
    return {
        "demo": ImageAsset(stack, "demo-image", name="perfops-demo-v1", container_modules=["k6"]),
    }

"""The cdktf app: ``python deployments.py`` (or ``cdktf synth``) writes cdktf.out/."""

from __future__ import annotations

from images import declare_images
from perfops_cdk import App, PerfOpsStack
from perfops_cdk.app import main
from stacks.demo import declare_demo_fleet


def define(app: App) -> None:
    stack = PerfOpsStack(app, "perf-ops", home_region="eu-west-1")
    images = declare_images(stack)
    declare_demo_fleet(stack, images["demo"])


if __name__ == "__main__":
    main(define)

"""Publishing: turn declared images into AMIs (sync) and remove them again (cleanup)."""

from perfops_cdk.publishing.cleanup import find_images, purge_s3, remove, state_from_tags
from perfops_cdk.publishing.sync import (
    ImageResult,
    ProgressEvent,
    SyncOptions,
    identify,
    plan_all,
    sync_images,
)

__all__ = [
    "ImageResult",
    "ProgressEvent",
    "SyncOptions",
    "find_images",
    "identify",
    "plan_all",
    "purge_s3",
    "remove",
    "state_from_tags",
    "sync_images",
]

"""Memory and vCPUs of common EC2 instance types, for HostContainers' memory check
and the fleet summary of ``perfops deploy``.

Not every type AWS sells: a type missing here is not an error, the check is skipped
and the vCPUs are shown as unknown. Within a family memory is vCPUs x a fixed
GiB-per-vCPU ratio, so the table is built from (families, ratio, sizes) rather than
typed out size by size.
"""

from __future__ import annotations

_GIB = 1024

# size -> vCPUs
_VCPUS = {
    "medium": 1,
    "large": 2,
    "xlarge": 4,
    "2xlarge": 8,
    "4xlarge": 16,
    "8xlarge": 32,
    "9xlarge": 36,
    "12xlarge": 48,
    "16xlarge": 64,
    "18xlarge": 72,
    "24xlarge": 96,
    "32xlarge": 128,
    "48xlarge": 192,
}
_INTEL_5 = ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")
_C5 = ("large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge")
_GEN_6 = (*_INTEL_5, "32xlarge")
_GEN_7I = (*_GEN_6, "48xlarge")
_GRAVITON = ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")

# (families, GiB per vCPU, sizes)
_FAMILIES: tuple[tuple[tuple[str, ...], int, tuple[str, ...]], ...] = (
    (("m5", "m5d", "m5a", "m5ad"), 4, _INTEL_5),
    (("r5", "r5d", "r5a", "r5ad", "r5n", "r5dn"), 8, _INTEL_5),
    (("c5", "c5d"), 2, _C5),
    (("m6i", "m6id", "m6a"), 4, _GEN_6),
    (("r6i", "r6id", "r6a"), 8, _GEN_6),
    (("c6i", "c6id", "c6a"), 2, _GEN_6),
    (("m7i", "m7a"), 4, _GEN_7I),
    (("r7i", "r7a"), 8, _GEN_7I),
    (("c7i", "c7a"), 2, _GEN_7I),
    (("m6g", "m6gd", "m7g", "m7gd"), 4, _GRAVITON),
    (("r6g", "r6gd", "r7g", "r7gd"), 8, _GRAVITON),
    (("c6g", "c6gd", "c7g", "c7gd"), 2, _GRAVITON),
)

# Burstable types do not follow a ratio: (vCPUs, GiB).
_BURSTABLE = {
    "nano": (2, 0.5),
    "micro": (2, 1),
    "small": (2, 2),
    "medium": (2, 4),
    "large": (2, 8),
    "xlarge": (4, 16),
    "2xlarge": (8, 32),
}

INSTANCE_MEMORY_MIB: dict[str, int] = {
    **{
        f"{family}.{size}": _VCPUS[size] * ratio * _GIB
        for families, ratio, sizes in _FAMILIES
        for family in families
        for size in sizes
    },
    **{
        f"{family}.{size}": int(gib * _GIB)
        for family in ("t3", "t3a")
        for size, (_, gib) in _BURSTABLE.items()
    },
}


INSTANCE_VCPUS: dict[str, int] = {
    **{
        f"{family}.{size}": _VCPUS[size]
        for families, _, sizes in _FAMILIES
        for family in families
        for size in sizes
    },
    **{f"{family}.{size}": v for family in ("t3", "t3a") for size, (v, _) in _BURSTABLE.items()},
}


def vcpus(instance_type: str) -> int | None:
    """The instance type's vCPUs, or None when the table does not know it."""
    return INSTANCE_VCPUS.get(instance_type)


def memory_mib(instance_type: str) -> int | None:
    """The instance type's memory in MiB, or None when the table does not know it."""
    return INSTANCE_MEMORY_MIB.get(instance_type)

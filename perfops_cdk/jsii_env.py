"""Environment for the CDK core's jsii runtime (a node process), importable without
starting it: which core to load, and what its runtime reads on start.

Commands that only spawn an app (``perfops synth``) pass it on without loading a core.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from perfops_cdk.errors import PerfOpsError

# cdktf 0.21 is the last release and its jsii runtime warns about the machine's Node
# release on every start; the banner would bury our one-line errors.
NODE_WARNING_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20",
}

# Which CDK core synthesizes: HashiCorp's cdktf 0.21 (its last release, the default) or
# its community continuation CDK Terrain (``cdktn``, the same API under another module).
BACKEND_ENV = "PERFOPS_CDK_BACKEND"
BACKENDS = ("cdktf", "cdktn")

# App context from the environment, as the cdktf CLI passes cdktf.json's "context".
CONTEXT_ENV = "CDKTF_CONTEXT_JSON"
# App context key: declare everything, but stand placeholders in for missing AMIs instead
# of failing (how ``--sync-amis``, ``--list-images`` and ``perfops images`` learn which
# images and regions are needed). ``perfops images`` sets it to the scratch directory the
# app must synthesize into.
COLLECT_IMAGES_CONTEXT = "perfops:collect-images"


def core_module(environ: Mapping[str, str] | None = None) -> str:
    """The module to import as the CDK core: ``$PERFOPS_CDK_BACKEND`` when set, else
    cdktf when it is installed, else cdktn. Raises naming the fix when neither fits."""
    env = os.environ if environ is None else environ
    chosen = env.get(BACKEND_ENV, "").strip()
    if chosen:
        if chosen not in BACKENDS:
            raise PerfOpsError(
                f"{BACKEND_ENV}: {chosen!r} is not allowed; use 'cdktf' or 'cdktn', "
                "or unset it to use whichever is installed"
            )
        if importlib.util.find_spec(chosen) is None:
            raise PerfOpsError(
                f"{BACKEND_ENV}={chosen}: the module {chosen!r} is not installed; "
                f"{_install_hint(chosen)}, or unset {BACKEND_ENV}"
            )
        return chosen
    for name in BACKENDS:
        if importlib.util.find_spec(name) is not None:
            return name
    raise PerfOpsError(
        "no CDK core installed: neither 'cdktf' nor 'cdktn' can be imported; "
        "run: pip install perfops-cdk"
    )


def _install_hint(module: str) -> str:
    if module == "cdktn":
        return "run: pip install 'perfops-cdk[cdktn]'"
    return "run: pip install perfops-cdk"

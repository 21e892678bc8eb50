"""Environment for cdktf's jsii runtime (a node process), importable without starting it.

Commands that only spawn an app (``perfops synth``) pass it on without loading cdktf.
"""

from __future__ import annotations

# cdktf 0.21 is the last release and its jsii runtime warns about the machine's Node
# release on every start; the banner would bury our one-line errors.
NODE_WARNING_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20",
}

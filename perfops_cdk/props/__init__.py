"""Props: frozen attrs value classes and validators. Pure: no AWS, no nix, no cdktf."""

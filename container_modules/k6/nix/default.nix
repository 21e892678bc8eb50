# This load client's own package set, for building or trying its pieces
# outside a container: nix-build container_modules/<client>/nix -A pkgs.k6
{ sources ? import ./sources.nix { }, system ? builtins.currentSystem }:
{
  inherit sources;
  pkgs = import sources.nixpkgs { inherit system; config = { }; overlays = [ ]; };
}

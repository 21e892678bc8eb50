# The pinned sources of nix/sources.json as store paths. Only `tarball` pins
# are used, so builtins.fetchTarball is enough and no nixpkgs is needed to
# fetch nixpkgs itself.
{ sourcesFile ? ./sources.json }:
let
  pins = builtins.fromJSON (builtins.readFile sourcesFile);
  fetch = name: pin:
    if pin.type == "tarball"
    then builtins.fetchTarball { inherit (pin) url sha256; name = "${name}-src"; }
    else throw "nix/sources.json: pin ${name} has type ${pin.type}; only tarball is supported";
in
builtins.mapAttrs fetch pins

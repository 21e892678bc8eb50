# The entry point perfops_cdk builds an ImageAsset from: the Python declaration is the
# single source of truth for what an image holds, so nothing is declared twice.
#
#   nix-build nix/image.nix --argstr name k6-v1 --argstr containerModules k6 \
#     --argstr hostModules "" --argstr format raw
#
# containerModules: comma-separated folders of container_modules/.
# hostModules: comma-separated NixOS module files, relative to the project root.
{ name
, containerModules
, hostModules ? ""
, format ? "raw"
, system ? "x86_64-linux"
}:
let
  perfops = import ./default.nix { inherit system; };
  # builtins.split interleaves matches as lists; keep the non-empty strings.
  items = text: builtins.filter (part: builtins.isString part && part != "") (builtins.split "," text);
in
(perfops.mkImage name {
  containerModules = items containerModules;
  hostModules = map (file: ../. + "/${file}") (items hostModules);
  inherit format;
}).image

# The container layout of a spec file, for comparison with Python's rendering:
#   nix-instantiate --eval --strict --json nix/lib/plan.nix --argstr specFile containers.json
{ specFile }:
(import ./containers.nix).plan (builtins.fromJSON (builtins.readFile specFile))

# Naming and addressing of load-client containers, in builtins only so that it
# evaluates without nixpkgs: the spawner's generated files, the host module,
# plan.nix and the test suite all share this one definition of the rules in
# docs/container-spec.md.
let
  # Names grow past three digits rather than wrap, so a start number of 998
  # with two containers gives a998 and a999, then a1000 would be next.
  pad3 = n:
    let s = toString n;
    in if builtins.stringLength s >= 3 then s
       else builtins.substring 0 (3 - builtins.stringLength s) "00" + s;

  containerName = service: i:
    service.containerNamePrefix + pad3 (service.containerNameStartNum + i);

  localAddress = service: i:
    "${service.network}.${toString (service.ipStartAddr + i)}";

  # What plan.nix prints: the part of the layout Python also renders.
  layout = service:
    builtins.genList (i: {
      name = containerName service i;
      localAddress = localAddress service i;
      inherit (service) hostAddress;
    }) service.containerCount;

  boolEnv = b: if b then "1" else "0";

  # Every container of a service gets the same guest module, so Nix builds a
  # single system closure per service; a guest tells itself apart by its
  # hostname, which nspawn sets to the container name.
  guestModule = { service, modulesDir }:
    let
      entry = /. + "${modulesDir}/${service.entryFolder}/modules/${service.entryFile}";
      env = {
        PERFOPS_USE_RECENT_STATE = boolEnv service.useRecentState;
        PERFOPS_SERVICE = service.name;
      } // (service.environment or { });
    in
    { ... }: {
      imports = [ entry ];
      systemd.globalEnvironment = env;
      # Also for interactive shells (nixos-container root-login) when debugging.
      environment.variables = env;
    };

  # `containers.<name>` definitions for one service, as extra-container and
  # the NixOS containers module expect them.
  serviceContainers = { service, modulesDir }:
    let guest = guestModule { inherit service modulesDir; };
    in builtins.listToAttrs (map (c: {
      inherit (c) name;
      value = {
        privateNetwork = true;
        inherit (c) hostAddress localAddress;
        autoStart = service.autoStart or true;
        config = guest;
      };
    }) (layout service));

  checkVersion = spec:
    if spec.version or null == 1 then spec
    else throw "containers.json: unsupported version ${builtins.toJSON (spec.version or null)}, expected 1";

  plan = spec:
    builtins.listToAttrs (map (s: { inherit (s) name; value = layout s; })
      (checkVersion spec).services);
in
{
  inherit pad3 containerName localAddress layout guestModule serviceContainers plan;
}

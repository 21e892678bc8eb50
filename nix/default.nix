# Images of perfops hosts. nixpkgs comes from nix/sources.json, so a build
# needs network access to releases.nixos.org the first time.
#
#   nix-build nix -A images.k6.image       # the example amazon image (raw by default)
#   nix-build nix -A images.k6.qemuFull    # a local VM with a persistent disk
# perfops_cdk builds ImageAssets through nix/image.nix, which calls mkImage with the
# Python declaration's name and modules.
{ sources ? import ./sources.nix { }, system ? "x86_64-linux" }:
let
  nixpkgs = sources.nixpkgs;
  pkgs = import nixpkgs { inherit system; config = { }; overlays = [ ]; };
  inherit (pkgs) lib;
  perfops = import ./lib/containers.nix;
  modulesRoot = ../container_modules;

  evalNixos = modules: import "${nixpkgs}/nixos/lib/eval-config.nix" { inherit system modules; };

  # name:            image name, part of the content-addressed AMI name
  # hostModules:     extra NixOS modules for the host
  # containerModules: folder names under container_modules/ to bake in; the
  #                  first one's container-wrapper.nix is also built as one
  #                  standard container, so its evaluation errors fail the
  #                  image build instead of a host at deploy time
  # extraContainers: services (containers.json shape) spawned at boot when
  #                  user data gives none; default none
  # format:          "raw" for EBS direct upload, "vpc" (VHD) for import-snapshot
  mkImage = name: { hostModules ? [ ], containerModules, extraContainers ? [ ], format ? "raw" }:
    assert lib.assertMsg (containerModules != [ ]) "mkImage ${name}: containerModules must name at least one folder of container_modules/";
    assert lib.assertOneOf "mkImage ${name} format" format [ "raw" "vpc" "qcow2" ];
    let
      baked = lib.genAttrs containerModules (folder: modulesRoot + "/${folder}");
      standard = builtins.head containerModules;
      imageSpec =
        if extraContainers == [ ] then null
        else { version = 1; deployment = name; services = extraContainers; };

      host = { ... }: {
        imports = [ ./modules/containers.nix ];
        perfops.containers = {
          enable = true;
          containerModules = baked;
          inherit imageSpec;
        };
        # Built with the image, never started: it exists to be evaluated.
        containers = perfops.serviceContainers {
          # The source folders the image bakes: a plain path, so the guest
          # module is read at evaluation like the host reads it after boot.
          modulesDir = toString modulesRoot;
          service = {
            name = "standard";
            entryFolder = standard;
            entryFile = "container-wrapper.nix";
            containerNamePrefix = "std";
            hostAddress = "10.253.0.1";
            network = "10.253.1";
            containerCount = 1;
            containerNameStartNum = 0;
            ipStartAddr = 1;
            useRecentState = false;
            autoStart = false;
          };
        };
        system.stateVersion = "24.05";
      };

      amazon = evalNixos ([
        "${nixpkgs}/nixos/maintainers/scripts/ec2/amazon-image.nix"
        host
        { amazonImage = { inherit format; name = "perfops-${name}"; }; }
      ] ++ hostModules);

      local = extra: evalNixos ([
        "${nixpkgs}/nixos/modules/virtualisation/qemu-vm.nix"
        host
        { perfops.containers.externalInterface = "eth0"; }
        extra
      ] ++ hostModules);
    in
    {
      inherit name format;
      inherit (amazon) config;
      image = amazon.config.system.build.amazonImage;
      toplevel = amazon.config.system.build.toplevel;
      # A throwaway VM: its disk lives in a temp dir.
      vm = (local { }).config.system.build.vm;
      # The seed's qemu-full: enough memory and cores for a few containers,
      # and a disk.qcow2 in the working directory that survives restarts.
      qemuFull = (local {
        virtualisation = {
          memorySize = 8192;
          cores = 4;
          diskSize = 20480;
          diskImage = "./disk.qcow2";
          graphics = false;
        };
      }).config.system.build.vm;
    };
in
{
  inherit mkImage pkgs;

  images = {
    k6 = mkImage "k6-v1" {
      containerModules = [ "k6" ];
    };
  };
}

# Host side of HostContainers: a NixOS host that can run a few hundred
# load-client containers, created after boot from /etc/perfops/containers.json
# (docs/container-spec.md) by perfops-spawn-containers.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkEnableOption mkIf mkOption types;
  cfg = config.perfops.containers;
  sources = import ../sources.nix { };

  # The dbus default of 256 connections per user is what stopped the seed at
  # about 250 containers: every container's systemd holds connections to the
  # host bus as root. Two per container plus the host's own leaves headroom.
  dbusPerUser = 2 * cfg.maxPerHost + 256;
  dbusLimits = pkgs.writeTextDir "share/dbus-1/system.d/perfops-limits.conf" ''
    <!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
     "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
    <busconfig>
      <limit name="max_connections_per_user">${toString dbusPerUser}</limit>
      <limit name="max_completed_connections">${toString (lib.max 2048 (4 * cfg.maxPerHost + 512))}</limit>
    </busconfig>
  '';

  spawner = pkgs.writeShellApplication {
    name = "perfops-spawn-containers";
    runtimeInputs = [
      pkgs.jq
      pkgs.coreutils
      pkgs.diffutils
      pkgs.gnugrep
      pkgs.util-linux
      config.systemd.package
      config.nix.package
      cfg.extraContainerPackage
    ];
    # The limit is the image's, not the spec's: user data cannot raise it.
    text = ''
      export PERFOPS_MAX_CONTAINERS=''${PERFOPS_MAX_CONTAINERS:-${toString cfg.maxPerHost}}
    '' + builtins.readFile ../spawner/perfops-spawn-containers.sh;
  };

  specPath = "/etc/perfops/containers.json";
  imageSpec = pkgs.writeText "perfops-image-containers.json" (builtins.toJSON cfg.imageSpec);
in
{
  options.perfops.containers = {
    enable = mkEnableOption "many NixOS load-client containers on this host, spawned from /etc/perfops/containers.json";

    maxPerHost = mkOption {
      type = types.ints.between 1 2000;
      default = 250;
      description = ''
        Most containers the spawner accepts on this host. Above 250, dbus's
        per-user connection limit is raised to fit. Default 250, the seed's limit.
      '';
    };

    containerModules = mkOption {
      type = types.attrsOf types.path;
      default = { };
      example = lib.literalExpression ''{ k6 = ../../container_modules/k6; }'';
      description = ''
        Folders of container_modules/ baked into the image at
        /etc/perfops/container-modules/<name>, the entryFolder values a spec may use.
        Default: none, so every spec fails validation until one is baked.
      '';
    };

    imageSpec = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      description = ''
        A containers.json (version 1) baked into the image and spawned at boot
        when user data wrote none. Default: null, user data decides alone.
      '';
    };

    sshKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Public keys allowed to log in as root. Default: none (no ssh login).";
    };

    externalInterface = mkOption {
      type = types.str;
      default = "ens5";
      description = "Interface containers are NATed out of. Default ens5, the first ENA interface on Nitro instances.";
    };

    netdata = mkOption {
      type = types.bool;
      default = true;
      description = "Run netdata on port 19999, reachable through an ssh tunnel only. Default true.";
    };

    extraContainerPackage = mkOption {
      type = types.package;
      default = pkgs.extra-container.overrideAttrs (_: {
        version = "0.13";
        src = sources.extra-container;
      });
      defaultText = lib.literalExpression "extra-container pinned in nix/sources.json";
      description = "extra-container used by the spawner. Default: the release pinned in nix/sources.json.";
    };

    nixpkgs = mkOption {
      type = types.path;
      default = sources.nixpkgs;
      defaultText = lib.literalExpression "nixpkgs pinned in nix/sources.json";
      description = ''
        nixpkgs the containers are built with on the host, linked at
        /etc/perfops/nixpkgs. Default: the pin the image itself is built from,
        so containers share the host's store paths instead of downloading more.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !(builtins.elem 19999 config.networking.firewall.allowedTCPPorts);
        message = "perfops.containers: netdata's port 19999 must not be opened in the firewall; use an ssh tunnel";
      }
    ];

    boot.kernel.sysctl = {
      # Every container's systemd and journald take inotify instances as root;
      # the default 128 runs out after a few dozen containers.
      "fs.inotify.max_user_instances" = 8192;
      "fs.inotify.max_user_watches" = 1048576;
      # One veth neighbour per container plus the load clients' peers overflow
      # the default neighbour table (gc_thresh3 = 1024): "neighbour table overflow".
      "net.ipv4.neigh.default.gc_thresh1" = 4096;
      "net.ipv4.neigh.default.gc_thresh2" = 8192;
      "net.ipv4.neigh.default.gc_thresh3" = 16384;
      "kernel.pid_max" = 4194304;
      "fs.file-max" = 4194304;
      "kernel.keys.root_maxkeys" = 1000000;
      "kernel.keys.root_maxbytes" = 25000000;
      # Load clients open many short connections through the host's NAT.
      "net.netfilter.nf_conntrack_max" = 1048576;
      "net.ipv4.ip_local_port_range" = "1024 65535";
    };

    # Per-container CPU, memory and IO show in systemd-cgtop and netdata.
    systemd.extraConfig = ''
      DefaultCPUAccounting=yes
      DefaultMemoryAccounting=yes
      DefaultIOAccounting=yes
      DefaultTasksAccounting=yes
      DefaultLimitNOFILE=1048576
    '';

    networking.nat = {
      enable = true;
      internalInterfaces = [ "ve-+" ];
      inherit (cfg) externalInterface;
    };

    # extra-container installs its units here instead of rebuilding the host.
    boot.extraSystemdUnitPaths = [ "/etc/systemd-mutable/system" ];

    services.netdata.enable = cfg.netdata;

    services.openssh = mkIf (cfg.sshKeys != [ ]) {
      enable = true;
      settings.PasswordAuthentication = false;
    };
    users.users.root.openssh.authorizedKeys.keys = cfg.sshKeys;

    services.dbus.packages = lib.optional (cfg.maxPerHost > 250) dbusLimits;

    # mdadm: the opt-in NVMe RAID0 user-data part assembles instance-store disks.
    environment.systemPackages = [ spawner cfg.extraContainerPackage pkgs.jq pkgs.mdadm ];

    environment.etc = {
      "perfops/lib/containers.nix".source = ../lib/containers.nix;
      "perfops/nixpkgs".source = cfg.nixpkgs;
    }
    // lib.mapAttrs' (name: path: lib.nameValuePair "perfops/container-modules/${name}" { source = path; })
      cfg.containerModules
    // lib.optionalAttrs (cfg.imageSpec != null) {
      "perfops/containers.image.json".source = imageSpec;
    };

    # Reruns the spawner at every boot; with an unchanged spec it makes no
    # extra-container call, so this only catches up after an interrupted run.
    systemd.services.perfops-containers = {
      description = "Spawn perfops load-client containers from ${specPath}";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      # After amazon-init: on a reboot, user data remounts the NVMe RAID0 array that
      # holds the containers' state before any container starts.
      after = [ "network-online.target" "nix-daemon.socket" "amazon-init.service" ];
      # Without a spec baked in, a host whose user data has not run yet
      # (first boot) has nothing to spawn; user data runs the spawner itself.
      unitConfig = lib.optionalAttrs (cfg.imageSpec == null) { ConditionPathExists = specPath; };
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        # Creating hundreds of containers takes minutes, not seconds.
        TimeoutStartSec = "2h";
      };
      script = ''
        spec=${specPath}
        [ -e "$spec" ] || spec=/etc/perfops/containers.image.json
        exec ${spawner}/bin/perfops-spawn-containers "$spec"
      '';
    };
  };
}

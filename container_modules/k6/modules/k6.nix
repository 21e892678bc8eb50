# A k6 HTTP load client. Its settings come from the service's `environment`
# in containers.json, which the spawner turns into every unit's environment:
#
#   PERFOPS_K6_TARGET          base URL to load, e.g. http://10.0.0.5:8080 (required)
#   PERFOPS_K6_VUS             virtual users per container (default 10)
#   PERFOPS_K6_DURATION        length of one run; the unit restarts it (default 10m)
#   PERFOPS_RECENT_STATE_URL   tar.gz with paths.txt (request mix) to restore
#                              when the spec's useRecentState is true (optional)
{ pkgs, ... }:
let
  prepareState = pkgs.writeShellScript "k6-prepare-state" ''
    set -eu
    state=$STATE_DIRECTORY
    if [ "''${PERFOPS_USE_RECENT_STATE:-0}" = 1 ]; then
      # Restore once per container life: later restarts keep what the
      # previous run left, which is the most recent state there is.
      if [ -n "''${PERFOPS_RECENT_STATE_URL:-}" ] && [ ! -e "$state/.restored" ]; then
        ${pkgs.curl}/bin/curl -fsSL --retry 5 "$PERFOPS_RECENT_STATE_URL" \
          | ${pkgs.gnutar}/bin/tar -xz -C "$state" --no-same-owner
        touch "$state/.restored"
      fi
    else
      # A cold client must not inherit the request mix of an earlier run.
      ${pkgs.findutils}/bin/find "$state" -mindepth 1 -delete
    fi
  '';
in
{
  imports = [ ./container-common.nix ];

  systemd.services.k6-load = {
    description = "k6 HTTP load client";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ];
    environment.K6_NO_USAGE_REPORT = "true";
    serviceConfig = {
      DynamicUser = true;
      StateDirectory = "k6";
      ExecStartPre = prepareState;
      ExecStart = "${pkgs.k6}/bin/k6 run --quiet ${../scripts/load.js}";
      # One run is PERFOPS_K6_DURATION long; restarting makes load continuous
      # and a missing target (not yet up) a retry, not a dead client.
      Restart = "always";
      RestartSec = 10;
    };
  };
}

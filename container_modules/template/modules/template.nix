# A load client that does nothing but show where the pieces go: copy this
# folder, replace the service, and pin extra sources in ../nix/sources.json
# (import ../nix/sources.nix { } to use them).
{ pkgs, ... }:
{
  imports = [ ./container-common.nix ];

  systemd.services.template-load-client = {
    description = "perfops template load client";
    wantedBy = [ "multi-user.target" ];
    path = [ pkgs.coreutils pkgs.hostname ];
    serviceConfig = {
      DynamicUser = true;
      StateDirectory = "template";
      Restart = "always";
      RestartSec = 30;
    };
    # PERFOPS_USE_RECENT_STATE comes from the spec's useRecentState; a real
    # client restores a snapshot here to skip a cold start (see ../../k6).
    script = ''
      if [ "''${PERFOPS_USE_RECENT_STATE:-0}" = 1 ]; then
        echo "$(hostname): would restore recent state into $STATE_DIRECTORY"
      fi
      while true; do
        echo "$(hostname): load tick"
        sleep 60
      done
    '';
  };
}

# What every load-client container shares. Hundreds of these run on one host
# and share its kernel and store, so each guest keeps only what a client needs.
{ lib, ... }:
{
  # The host's security group is the boundary; the guest sits behind its NAT.
  networking.firewall.enable = false;
  # Manuals add evaluation time to every container and nothing to a load client.
  documentation.enable = false;
  # Journals of 250 guests live on the host's disk.
  services.journald.extraConfig = ''
    SystemMaxUse=64M
  '';
  system.stateVersion = lib.mkDefault "24.05";
}

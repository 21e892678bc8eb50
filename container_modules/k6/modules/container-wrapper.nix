# Entry file for the spawner (entryFile in containers.json).
{ ... }:
{
  imports = [ ./k6.nix ];
}

# The entry file the spawner imports for every container of a service
# (entryFile in containers.json). Point it at this folder's load client.
{ ... }:
{
  imports = [ ./template.nix ];
}

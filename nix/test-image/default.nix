# A small disk image shaped like a NixOS amazon image, buildable without nixpkgs.
#
# Output: <name>.raw, a sparse raw disk of `sizeMiB` MiB with 3.6 MiB of
# deterministic non-zero data at fixed offsets (some not aligned to the 512 KiB
# EBS block size), plus nix-support/image-info.json in the NixOS amazon-image format.
# Changing `name`, `sizeMiB` or `seed` gives a new store path (a new image identity).
#
# The builder calls this Debian machine's coreutils by absolute path: nix's sandbox
# is off here and nixpkgs (which would provide them) cannot be fetched.
{
  name ? "perfops-test-image",
  sizeMiB ? "64",
  seed ? "1",
  system ? builtins.currentSystem,
}:
{
  amazonImage = derivation {
    inherit name system seed;
    sizeMiB = toString sizeMiB;
    builder = "/bin/sh";
    args = [
      "-euc"
      ''
        dd=/bin/dd cat=/bin/cat mkdir=/bin/mkdir truncate=/usr/bin/truncate
        if [ "$sizeMiB" -lt 16 ]; then
          echo "sizeMiB must be at least 16 (room for the data extents), got $sizeMiB" >&2
          exit 1
        fi
        $mkdir -p "$out/nix-support"
        image="$out/$name.raw"
        $truncate -s "$sizeMiB"M "$image"

        # A 1 MiB pattern that depends on name and seed: 64 lines doubled 9 times.
        i=0
        while [ "$i" -lt 64 ]; do
          printf '%s seed=%s line=%06d perfops test image\n' "$name" "$seed" "$i"
          i=$((i + 1))
        done > pattern
        i=0
        while [ "$i" -lt 9 ]; do
          $cat pattern pattern > doubled
          $cat doubled > pattern
          i=$((i + 1))
        done

        # write KIB_OFFSET KIB_LENGTH: pattern into the image, keeping the holes around it.
        write() {
          $dd if=pattern of="$image" bs=1024 seek="$1" count="$2" conv=notrunc 2> /dev/null
        }
        write 0 1024
        write $((5 * 1024 + 300)) 700
        write $((sizeMiB * 512)) 1024
        write $((sizeMiB * 1024 - 1024 + 100)) 900

        bytes=$((sizeMiB * 1024 * 1024))
        printf '{"label":"%s","boot_mode":"legacy-bios","system":"%s","logical_bytes":"%s","file":"%s","disks":{"root":{"logical_bytes":"%s","file":"%s"}}}\n' \
          "$name-$seed" "$system" "$bytes" "$image" "$bytes" "$image" \
          > "$out/nix-support/image-info.json"
        printf 'file raw-image %s\n' "$image" > "$out/nix-support/hydra-build-products"
      ''
    ];
  };
}

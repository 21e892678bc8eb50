#!/usr/bin/env bash
# Check what perfops_cdk needs on this machine; install the Debian packages it can.
# Prints exactly what is missing and exits 1 if anything still is.
set -euo pipefail

missing=()

need_python() {
  local py="${PYTHON:-python3}"
  if ! command -v "$py" >/dev/null 2>&1; then
    missing+=("python >= 3.11 (no $py on PATH)")
    return
  fi
  if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    missing+=("python >= 3.11 ($py is $("$py" -V 2>&1))")
  fi
}

need_command() {
  local cmd="$1" what="$2"
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$what")
}

apt_install() {
  # Debian packages the tests and demo use; installed only when absent and possible.
  local wanted=()
  command -v nix-build >/dev/null 2>&1 || wanted+=(nix-bin)
  command -v shellcheck >/dev/null 2>&1 || wanted+=(shellcheck)
  command -v jq >/dev/null 2>&1 || wanted+=(jq)
  # sshd stands in for fleet hosts in the ssh tests (it lives in /usr/sbin, often off PATH).
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || wanted+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || wanted+=(openssh-client)
  [ "${#wanted[@]}" -eq 0 ] && return
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${wanted[*]} with apt-get" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null
  else
    missing+=("Debian packages ${wanted[*]} (run: sudo apt-get install ${wanted[*]})")
  fi
}

need_python
need_command node "node >= 18 (for the cdktf CLI)"
need_command npm "npm (for the cdktf CLI)"
need_command terraform "terraform >= 1.10 (https://developer.hashicorp.com/terraform/install)"
apt_install

if [ "${#missing[@]}" -gt 0 ]; then
  printf 'missing: %s\n' "${missing[@]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# perfops-spawn-containers: bring up the load-client containers a host's
# containers.json asks for (format: docs/container-spec.md).
#
#   perfops-spawn-containers SPEC        validate, render, create what changed
#   perfops-spawn-containers --check SPEC   validate only
#   perfops-spawn-containers --status [SPEC]  one JSON document: each service's state,
#                                             containers created and running, last error
#   perfops-spawn-containers --apply NAME   (internal) create one rendered service
#
# Each service becomes one Nix file and one `extra-container create`, run in
# its own transient unit perfops-containers-<service> so services come up in
# parallel and each has its own journal. A service whose rendered file equals
# the last one applied is skipped, which makes reruns (every boot, or user data
# and the boot unit racing) free.
set -euo pipefail

state_dir=${PERFOPS_STATE_DIR:-/var/lib/perfops/containers}
modules_dir=${PERFOPS_MODULES_DIR:-/etc/perfops/container-modules}
nix_lib=${PERFOPS_NIX_LIB:-/etc/perfops/lib/containers.nix}
nixpkgs_path=${PERFOPS_NIXPKGS:-/etc/perfops/nixpkgs}
max_containers=${PERFOPS_MAX_CONTAINERS:-250}
# Where extra-container installs container@<name>.service (`extra-container list`).
units_dir=${PERFOPS_UNITS_DIR:-/etc/systemd-mutable/system}
default_spec=/etc/perfops/containers.json

prog=perfops-spawn-containers

die() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 1
}

# One jq program holds every rule so that the first broken one is reported and
# nothing else runs; `first` keeps later rules from tripping over values of the
# wrong type that an earlier rule already reported.
# shellcheck disable=SC2016 # jq variables, not shell ones
names_program='
def names: . as $s | range(0; .containerCount) | "\($s.containerNamePrefix)\(($s.containerNameStartNum + .) | tostring | if length < 3 then ("00" + .)[-3:] else . end)";
'
# shellcheck disable=SC2016
validate_program=$names_program'
def octet: test("^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$");
def quad: type == "string" and (split(".") | length == 4 and all(octet));
def net3: type == "string" and (split(".") | length == 3 and all(octet));
def int: type == "number" and . == floor;
def digits: tostring | length;
def width: if . < 3 then 3 else . end;
def svc_errors($i):
  . as $s
  | "service #\($i)" as $w
  | if type != "object" then "\($w) is not an object"
    else
      (if (.name | type) != "string" or (.name | test("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$") | not)
       then "\($w): name \(.name | tojson) is not a valid systemd unit name part ([A-Za-z0-9_.-], at most 64 chars)" else empty end),
      ("service \(.name | tojson)" as $w
       | (if (.entryFolder | type) != "string" or (.entryFolder | test("^[A-Za-z0-9_][A-Za-z0-9_.-]*$") | not)
          then "\($w): entryFolder \(.entryFolder | tojson) is not a folder name" else empty end),
         (if (.entryFile | type) != "string" or (.entryFile | test("^[A-Za-z0-9_][A-Za-z0-9_.-]*\\.nix$") | not)
          then "\($w): entryFile \(.entryFile | tojson) is not a .nix file name" else empty end),
         (if (.containerNamePrefix | type) != "string" or (.containerNamePrefix | test("^[A-Za-z][A-Za-z0-9-]{0,3}$") | not)
          then "\($w): containerNamePrefix \(.containerNamePrefix | tojson) must be 1 to 4 chars, starting with a letter" else empty end),
         (if (.hostAddress | quad | not) then "\($w): hostAddress \(.hostAddress | tojson) is not an IPv4 address" else empty end),
         (if (.network | net3 | not) then "\($w): network \(.network | tojson) must be three octets like 10.254.1" else empty end),
         (if (.containerCount | int | not) or .containerCount < 1 or .containerCount > 250
          then "\($w): containerCount \(.containerCount | tojson) must be an integer from 1 to 250" else empty end),
         (if (.containerNameStartNum | int | not) or .containerNameStartNum < 0
          then "\($w): containerNameStartNum \(.containerNameStartNum | tojson) must be an integer >= 0" else empty end),
         (if (.ipStartAddr | int | not) or .ipStartAddr < 1 or .ipStartAddr + .containerCount - 1 > 254
          then "\($w): guest addresses \(.network).\(.ipStartAddr) .. +\(.containerCount) leave 1..254" else empty end),
         (if (.useRecentState | type) != "boolean" then "\($w): useRecentState must be true or false" else empty end),
         (if (.autoStart | type) != "boolean" then "\($w): autoStart must be true or false" else empty end),
         (if (.containerNamePrefix | length) + ((.containerNameStartNum + .containerCount - 1) | digits | width) > 11
          then "\($w): container names would exceed 11 characters (ve-<name> must fit in 15)" else empty end),
         (if has("environment") and ((.environment | type) != "object"
               or (.environment | to_entries | any((.key | test("^[A-Z_][A-Z0-9_]*$") | not)
                                                   or (.value | type) != "string"
                                                   or (.value | explode | any(. < 32)))))
          then "\($w): environment must map NAME_LIKE_THIS keys to single-line strings" else empty end))
    end;
def guests: . as $s | range(0; .containerCount) | "\($s.network).\($s.ipStartAddr + .)";
def errors:
  if type != "object" then "spec is not a JSON object"
  elif .version != 1 then "unsupported spec version \(.version | tojson), expected 1"
  elif (.services | type) != "array" or (.services | length) == 0 then "spec has no services"
  else
    (.services | to_entries[] | .key as $i | .value | svc_errors($i)),
    ([.services[].name] | group_by(.)[] | select(length > 1) | "service name \(.[0] | tojson) appears more than once"),
    ([.services[].containerCount] | add | select(. > $max) | "host total of \(.) containers is over the limit of \($max)"),
    ([.services[] | names] | group_by(.)[] | select(length > 1) | "container name \(.[0]) is declared more than once"),
    ([.services[] | guests] | group_by(.)[] | select(length > 1) | "guest address \(.[0]) is used by more than one container"),
    ([.services[] | guests] as $g | .services[] | .hostAddress as $h | select($g | index([$h])) | "host address \($h) is inside a guest range")
  end;
first(errors) // empty
'

validate() {
  local spec=$1 message
  [[ -r $spec ]] || die "cannot read spec $spec"
  if ! message=$(jq -r --argjson max "$max_containers" "$validate_program" "$spec" 2>&1); then
    die "$spec is not valid JSON: ${message//$'\n'/ }"
  fi
  [[ -z $message ]] || die "$spec: $message"
  local folder file
  while IFS=$'\t' read -r folder file; do
    [[ -f $modules_dir/$folder/modules/$file ]] ||
      die "$spec: container module $folder/modules/$file is not baked into this image ($modules_dir)"
  done < <(jq -r '.services[] | [.entryFolder, .entryFile] | @tsv' "$spec")
}

# Nix string literals from JSON ones: the escapes JSON and Nix share are the
# only ones validation lets through, and `${` must not interpolate.
# shellcheck disable=SC2016
render_program='
def nix: tojson | gsub("\\$"; "\\$");
def field($k): "      \($k) = \(.[$k] | if type == "string" then nix else tojson end);";
"# Generated by perfops-spawn-containers for service \($svc.name | nix) of deployment \($deployment | nix).",
"# Rewritten from containers.json on every run; local edits are lost.",
"{ ... }:",
"let",
"  perfops = import \($lib | nix);",
"in",
"{",
"  containers = perfops.serviceContainers {",
"    modulesDir = \($modules | nix);",
"    service = {",
(["name", "entryFolder", "entryFile", "containerNamePrefix", "hostAddress", "network",
  "containerCount", "containerNameStartNum", "ipStartAddr", "useRecentState", "autoStart"]
 | .[] as $k | $svc | field($k)),
"      environment = {",
($svc.environment // {} | to_entries | sort_by(.key)[] | "        \(.key) = \(.value | nix);"),
"      };",
"    };",
"  };",
"}"
'

unit_for() {
  printf 'perfops-containers-%s' "$1"
}

render_all() {
  local spec=$1 deployment count i name
  deployment=$(jq -r '.deployment // ""' "$spec")
  count=$(jq '.services | length' "$spec")
  for ((i = 0; i < count; i++)); do
    name=$(jq -r --argjson i "$i" '.services[$i].name' "$spec")
    jq -rn --argjson svc "$(jq -c --argjson i "$i" '.services[$i]' "$spec")" \
      --arg deployment "$deployment" --arg lib "$nix_lib" --arg modules "$modules_dir" \
      "$render_program" >"$state_dir/pending/$name.nix"
    printf '%s\n' "$name"
  done
}

apply_one() {
  local name=$1
  local pending=$state_dir/pending/$name.nix
  [[ -f $pending ]] || die "no rendered file for service $name at $pending"
  local args=(create "$pending" --nixpkgs-path "$nixpkgs_path")
  # --start leaves stopped containers alone on a spec without autoStart;
  # --restart-changed makes a changed spec take effect in running ones.
  if grep -qx '      autoStart = true;' "$pending"; then
    args+=(--start --restart-changed)
  fi
  # stderr still goes to the unit's journal; a copy is kept for --status while the
  # service has not been created since.
  local log=$state_dir/errors/$name.log code=0
  mkdir -p "$state_dir/errors"
  # stdout keeps its way (fd 3); stderr runs through tee. pipefail makes a failed
  # create the pipeline's status.
  { extra-container "${args[@]}" 2>&1 1>&3 3>&- | tee "$log.new" >&2; } 3>&1 || code=$?
  if ((code != 0)); then
    mv -f "$log.new" "$log"
    exit "$code"
  fi
  rm -f "$log.new" "$log"
  mkdir -p "$state_dir/applied"
  mv -f "$pending" "$state_dir/applied/$name.nix"
}

# The line of a failed create worth showing: its first error line, else its last line.
error_line() {
  local log=$1 line
  line=$(grep -m1 -i 'error' "$log" || true)
  [[ -n $line ]] || line=$(grep -v '^[[:space:]]*$' "$log" | tail -n1 || true)
  line=${line//$'\t'/ }
  printf '%s' "${line:0:300}"
}

# One JSON document on stdout (docs/container-spec.md, "--status"). Read-only: it
# takes no lock and writes nothing, so it may run while the spawner works.
status() {
  local spec=${1:-$default_spec} message
  if [[ ! -e $spec ]]; then
    jq -n --arg spec "$spec" '{version: 1, spec: $spec, specPresent: false, specError: null,
      deployment: null, declared: 0, created: 0, running: 0, services: []}'
    return
  fi
  if ! message=$( (validate "$spec") 2>&1); then
    jq -n --arg spec "$spec" --arg error "${message#"$prog: "}" '{version: 1, spec: $spec,
      specPresent: true, specError: $error, deployment: null, declared: 0, created: 0,
      running: 0, services: []}'
    return
  fi

  local -a services=() autostart=() containers=() units=()
  local name auto names
  while IFS=$'\t' read -r name auto names; do
    services+=("$name")
    autostart+=("$auto")
    containers+=("$names")
    units+=("$(unit_for "$name").service")
    for c in $names; do units+=("container@$c.service"); done
  done < <(jq -r "$names_program"' .services[] | [.name, .autoStart, ([names] | join(" "))] | @tsv' "$spec")

  # One systemctl call for every unit (as extra-container does): one state per line.
  local -a states=()
  mapfile -t states < <(systemctl is-active "${units[@]}" 2>/dev/null || true)
  if ((${#states[@]} != ${#units[@]})); then
    states=()
    for _ in "${units[@]}"; do states+=(unknown); done
  fi

  local i=0 k=0 state created running declared c error
  for ((k = 0; k < ${#services[@]}; k++)); do
    name=${services[$k]}
    case ${states[$i]} in
      active | activating | reloading) state=creating ;;
      *)
        if [[ -f $state_dir/errors/$name.log ]]; then
          state=failed
        elif [[ -f $state_dir/applied/$name.nix && ! -f $state_dir/pending/$name.nix ]]; then
          state=applied
        else
          state=pending
        fi
        ;;
    esac
    i=$((i + 1))
    declared=0 created=0 running=0
    for c in ${containers[$k]}; do
      declared=$((declared + 1))
      [[ -e $units_dir/container@$c.service || -L $units_dir/container@$c.service ]] &&
        created=$((created + 1))
      [[ ${states[$i]} == active ]] && running=$((running + 1))
      i=$((i + 1))
    done
    error=""
    [[ $state == failed ]] && error=$(error_line "$state_dir/errors/$name.log")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$state" "${autostart[$k]}" \
      "$declared" "$created" "$running" "$error"
  done | jq -R -n --arg spec "$spec" --arg deployment "$(jq -r '.deployment // ""' "$spec")" '
    [inputs | split("\t") | {
      name: .[0], unit: "perfops-containers-\(.[0])", state: .[1], applied: (.[1] == "applied"),
      autoStart: (.[2] == "true"), declared: (.[3] | tonumber), created: (.[4] | tonumber),
      running: (.[5] | tonumber), lastError: (if .[6] == "" then null else .[6] end)}]
    | {version: 1, spec: $spec, specPresent: true, specError: null,
       deployment: (if $deployment == "" then null else $deployment end),
       declared: (map(.declared) | add // 0), created: (map(.created) | add // 0),
       running: (map(.running) | add // 0), services: .}'
}

spawn() {
  local spec=$1
  validate "$spec"
  mkdir -p "$state_dir/pending" "$state_dir/applied"
  # User data and the boot unit may both run at first boot; the loser waits
  # and then finds nothing left to do.
  exec 9>"$state_dir/lock"
  flock 9

  local name todo=()
  while read -r name; do
    if cmp -s "$state_dir/pending/$name.nix" "$state_dir/applied/$name.nix"; then
      rm -f "$state_dir/pending/$name.nix"
      printf '%s: service %s is up to date\n' "$prog" "$name"
    else
      todo+=("$name")
    fi
  done < <(render_all "$spec")

  local self
  self=$(readlink -f "${BASH_SOURCE[0]}")
  local -A pids=()
  for name in "${todo[@]}"; do
    printf '%s: creating service %s in unit %s\n' "$prog" "$name" "$(unit_for "$name")"
    # A transient unit does not inherit this environment, so pass on what
    # the worker needs to find the same files and programs.
    systemd-run --unit="$(unit_for "$name")" --collect --wait --quiet \
      --property=Type=oneshot \
      --setenv=PATH="$PATH" \
      --setenv=PERFOPS_STATE_DIR="$state_dir" \
      --setenv=PERFOPS_MODULES_DIR="$modules_dir" \
      --setenv=PERFOPS_NIX_LIB="$nix_lib" \
      --setenv=PERFOPS_NIXPKGS="$nixpkgs_path" \
      -- "$self" --apply "$name" &
    pids[$name]=$!
  done

  # Every service runs to its end: one failing does not stop the others,
  # and the next run retries only what did not get applied.
  local failed=()
  for name in "${!pids[@]}"; do
    wait "${pids[$name]}" || failed+=("$name")
  done
  if ((${#failed[@]} > 0)); then
    die "failed services: ${failed[*]} (see journalctl -u $(unit_for "${failed[0]}"))"
  fi
}

main() {
  case ${1:-} in
    --check)
      [[ $# -eq 2 ]] || die "usage: $prog --check SPEC"
      validate "$2"
      ;;
    --status)
      [[ $# -le 2 ]] || die "usage: $prog --status [SPEC]"
      status "${2:-}"
      ;;
    --apply)
      [[ $# -eq 2 ]] || die "usage: $prog --apply SERVICE"
      apply_one "$2"
      ;;
    "" | -h | --help)
      die "usage: $prog SPEC (e.g. /etc/perfops/containers.json)"
      ;;
    *)
      [[ $# -eq 1 ]] || die "usage: $prog SPEC"
      spawn "$1"
      ;;
  esac
}

main "$@"

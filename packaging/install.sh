#!/usr/bin/env bash
# Install maasflow on a MAAS host (Debian 12, Ubuntu 22.04 or newer), from this source tree:
#
#   sudo packaging/install.sh            # or: sudo packaging/install.sh --wheel maasflow-*.whl
#
# What it does, and nothing else (it enables or starts no service):
#   /opt/maasflow                  a virtualenv of its own (Debian refuses a system-wide pip
#                                  install), maasflow's wheel and its dependencies at the
#                                  versions constraints.txt pins; rerun to upgrade in place
#   /usr/local/bin/maasflow        a link to /opt/maasflow/bin/maasflow (`maasflow status`)
#   /etc/systemd/system/           maasflow.service and maasflow-serve.service
#   /etc/default/maasflow          the commented environment file, unless one exists
#   /etc/maasflow/                 filters/, mappings.json and power.example.json (existing
#                                  files are kept); the key and tokens go here, mode 0600
#
# Options:
#   --wheel FILE   install this wheel (e.g. from `./dev wheel`) instead of building one here
#                  (building needs the package index, for the build backend)
#   --root DIR     install under DIR instead of / (tests, image builds); the virtualenv
#                  works in place at DIR/opt/maasflow; no systemctl is run
#   --python PY    the Python 3.11+ that makes the virtualenv (default: the newest found)
# pip's own settings apply (PIP_INDEX_URL, PIP_NO_INDEX, PIP_FIND_LINKS for an offline host).
# Exit status: 0 installed, 2 bad usage or a missing prerequisite (with one line saying which).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/maasflow
ROOT=""
WHEEL=""
PY=""
TMP=""

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --wheel) [ $# -ge 2 ] || die "--wheel needs a file"; WHEEL=$(realpath "$2"); shift 2 ;;
      --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$(realpath -m "$2"); shift 2 ;;
      --python) [ $# -ge 2 ] || die "--python needs an interpreter"; PY=$2; shift 2 ;;
      -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
  done
  [ -z "$WHEEL" ] || [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"
  [ -n "$ROOT" ] || [ "$(id -u)" = 0 ] || die "run as root (sudo), or give --root DIR"
}

find_python() {
  [ -n "$PY" ] && { echo "$PY"; return 0; }
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
       "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  die "Python 3.11 or newer is needed (apt-get install python3)"
}

# A virtualenv at its final path (virtualenvs are not relocatable); Debian ships venv's pip
# bootstrap in python3-venv, installed here when missing and we are root on the real system.
make_venv() {
  local py=$1 venv=$2
  [ -x "$venv/bin/python" ] && return 0
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv" 2>/dev/null && return 0
  rm -rf "$venv"
  if [ -z "$ROOT" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    "$py" -m venv "$venv" && return 0
  fi
  die "cannot create a virtualenv with $py: apt-get install python3-venv"
}

build_wheel() {
  local venv=$1 out=$2
  say "building the wheel from $SRC"
  "$venv/bin/python" -m pip wheel -q --no-deps -w "$out" "$SRC" >&2
  ls "$out"/maasflow-*.whl
}

install_python() {
  local venv=$1 wheel=$2
  local constraints=(-c "$SRC/constraints.txt")
  [ -f "$SRC/constraints.txt" ] || die "$SRC/constraints.txt is missing: run from maasflow's source tree"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${constraints[@]}" "$wheel"
  # The same version again (a rebuilt wheel) is installed too: pip would skip it otherwise.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$wheel"
}

# Copy $1 to $2 with mode $3 unless $2 exists (an operator's edits are never overwritten).
keep_or_copy() {
  if [ -e "$2" ]; then say "kept $2 (exists)"; else install -D -m "$3" "$1" "$2"; fi
}

install_files() {
  local units="$ROOT/etc/systemd/system" etc="$ROOT/etc/maasflow"
  install -d -m 0755 "$units" "$etc" "$etc/filters" "$ROOT/usr/local/bin"
  for unit in maasflow.service maasflow-serve.service; do
    install -m 0644 "$SRC/systemd/$unit" "$units/$unit"
  done
  keep_or_copy "$SRC/systemd/maasflow.default" "$ROOT/etc/default/maasflow" 0644
  for sample in "$SRC"/filters/*; do
    keep_or_copy "$sample" "$etc/filters/$(basename "$sample")" 0644
  done
  keep_or_copy "$SRC/mappings.json" "$etc/mappings.json" 0644
  keep_or_copy "$SRC/power.example.json" "$etc/power.example.json" 0644
  ln -sfn "$PREFIX/bin/maasflow" "$ROOT/usr/local/bin/maasflow"
}

main() {
  parse_args "$@"
  local venv="$ROOT$PREFIX" py
  py=$(find_python)
  make_venv "$py" "$venv"
  TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
  [ -n "$WHEEL" ] || WHEEL=$(build_wheel "$venv" "$TMP")
  install_python "$venv" "$WHEEL"
  install_files
  if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
  say "installed $("$venv/bin/maasflow" --version) in $venv"
  cat <<EOF
Next:
  install -m 0600 /dev/stdin $ROOT/etc/maasflow/maas_api_key     # paste \`maas apikey --username <user>\`
  editor $ROOT/etc/default/maasflow                             # MAAS_URL, HOST_FILTER_SPEC, ...
  systemctl enable --now maasflow                   # and maasflow-serve, if you use it
EOF
}

main "$@"

# Shared by scripts/serve and scripts/test (sourced). Creates .venv and installs donjon into it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DONJON_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

# apt_install PKG...: install the Debian packages that are missing (as root, or with passwordless sudo).
apt_install() {
  local missing=() p sudo=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || sudo=(sudo -n)
  echo "installing Debian packages: ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { "${sudo[@]}" apt-get update -q >&2 \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# ensure_venv EXTRAS: a virtualenv with donjon installed (editable) plus the given extras, e.g. "test".
ensure_venv() {
  local extras=${1:-}
  command -v "$PY" >/dev/null || apt_install python3
  "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "donjon needs Python >= 3.11" >&2; exit 1; }
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  [[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
  local spec=$ROOT
  [[ -n $extras ]] && spec="$ROOT[$extras]"
  local stamp; stamp="$extras $(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)"
  if [[ "$(cat "$VENV/.donjon-installed" 2>/dev/null)" != "$stamp" ]]; then
    echo "installing donjon${extras:+[$extras]} into $VENV" >&2
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    "$VENV/bin/pip" install -q -e "$spec" 2>&1 | grep -v -e '^WARNING: Location' -e '^$' >&2 || true
    "$VENV/bin/python" -c 'import donjon' || { echo "installing donjon failed" >&2; exit 1; }
    echo "$stamp" >"$VENV/.donjon-installed"
  fi
}

#!/usr/bin/env bash
# Set up everything on a fresh Debian machine (run as root, or with sudo available):
# the MariaDB server and client, a virtualenv in .venv with the package and its test tools
# (moto and gcp-storage-emulator come with them), and Azurite, the Azure Blob emulator, with npm
# into .tools/azurite (git-ignored). Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v mariadb-dump >/dev/null 2>&1 || need_apt+=(mariadb-client)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
  as_root apt-get update -qq
  # The package's own service must not start: our servers are throwaway ones in temp dirs.
  as_root env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.schemasync-installed
# Reinstall when the dependencies or this script's install line change.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/bootstrap.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  pip_log=$(mktemp)
  pip_status=0
  .venv/bin/python -m pip install -q -e '.[test]' -e tests/plugins/example_codec >"$pip_log" 2>&1 || pip_status=$?
  grep -v "^WARNING: Location" "$pip_log" || true
  rm -f "$pip_log"
  if [ "$pip_status" != 0 ]; then
    echo "bootstrap: pip install failed (exit $pip_status)" >&2
    exit "$pip_status"
  fi
  touch "$stamp"
fi

# Azurite (npm) for the Azure storage tests; tests/storage_backends.py runs it from this prefix.
# Pinned to the version checked in shared/STORAGE-EMULATORS.md; override with AZURITE_VERSION.
azurite_version=${AZURITE_VERSION:-3.35.0}
azurite_prefix=.tools/azurite
azurite_pkg=$azurite_prefix/node_modules/azurite/package.json
installed_azurite=
if [ -x "$azurite_prefix/node_modules/.bin/azurite-blob" ] && [ -f "$azurite_pkg" ]; then
  installed_azurite=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$azurite_pkg" | head -n 1)
fi
if [ "$installed_azurite" != "$azurite_version" ]; then
  echo "bootstrap: installing azurite@$azurite_version with npm into $azurite_prefix" >&2
  mkdir -p "$azurite_prefix"
  npm install --prefix "$azurite_prefix" --no-audit --no-fund --no-update-notifier --loglevel=error \
    --save-exact "azurite@$azurite_version" >/dev/null
  [ -x "$azurite_prefix/node_modules/.bin/azurite-blob" ] || {
    echo "bootstrap: npm ran but $azurite_prefix/node_modules/.bin/azurite-blob is missing" >&2; exit 1; }
fi

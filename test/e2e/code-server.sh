#!/usr/bin/env bash
# code-server (VS Code's workbench and extension host, from npm) for the end-to-end tests, with all
# of its state in one run folder, never in $HOME or /tmp:
#
#   test/e2e/code-server.sh install VSIX      install an extension (offline) into $RUN/ext
#   test/e2e/code-server.sh start [FOLDER]    start on 127.0.0.1:$PORT in its own process group;
#                                             returns when /healthz answers
#   test/e2e/code-server.sh stop              end the whole process group (extension hosts, file
#                                             watchers, the Skeptic daemon and its worker)
#
# RUN is $SKEPTIC_E2E_RUN (required: a folder the caller owns), PORT is $SKEPTIC_E2E_PORT (8080).
# Node 24 and code-server come from test/e2e/setup.sh (cached). By hand, to look at a workspace
# in a browser:  SKEPTIC_E2E_RUN=/tmp/cs test/e2e/code-server.sh start ~/some/folder
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${SKEPTIC_E2E_RUN:?set SKEPTIC_E2E_RUN to a folder for the state of code-server}
PORT=${SKEPTIC_E2E_PORT:-8080}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
PIDFILE=$RUN/code-server.pid

stop() {
  [ -f "$PIDFILE" ] || return 0
  local pgid; pgid=$(cat "$PIDFILE")
  # Killing only the main process would orphan the file watchers and extension hosts.
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.3; done
  kill -KILL -- "-$pgid" 2>/dev/null || true
  rm -f "$PIDFILE"
}
[ "${1:-}" = stop ] && { stop; exit 0; }

{ read -r NODE_HOME; read -r CS_DIR; } < <("$HERE/setup.sh")
export PATH=$NODE_HOME/bin:$PATH
# code-server's config, data, caches, IPC sockets and temp files, all inside the run folder.
export XDG_CONFIG_HOME=$RUN/xdg/config XDG_DATA_HOME=$RUN/xdg/data XDG_CACHE_HOME=$RUN/xdg/cache
export TMPDIR=$RUN/tmp XDG_RUNTIME_DIR=$RUN/tmp
mkdir -p "$RUN/tmp" "$RUN/ud/User" "$RUN/ext" "$RUN/logs"
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" > "$RUN/config.yaml"
[ -f "$RUN/ud/User/settings.json" ] || cp "$HERE/user-settings.json" "$RUN/ud/User/settings.json"
CS=(node "$CS_DIR/node_modules/code-server/out/node/entry.js" --config "$RUN/config.yaml"
    --user-data-dir "$RUN/ud" --extensions-dir "$RUN/ext")

case "${1:-}" in
  install)
    [ -f "${2:-}" ] || { echo "usage: $0 install VSIX" >&2; exit 2; }
    "${CS[@]}" --install-extension "$2" --force ;;
  start)
    shift
    stop
    setsid nohup "${CS[@]}" --bind-addr "127.0.0.1:$PORT" --auth none \
      --disable-telemetry --disable-update-check --disable-workspace-trust \
      --disable-getting-started-override --reconnection-grace-time 30 \
      "$@" > "$RUN/logs/code-server.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    for i in $(seq 1 240); do
      curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && { echo "code-server on http://127.0.0.1:$PORT (process group $(cat "$PIDFILE"))"; exit 0; }
      kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
      sleep 0.25
    done
    echo "code-server did not start; its log:" >&2; tail -30 "$RUN/logs/code-server.log" >&2; stop; exit 1 ;;
  *) echo "usage: $0 install VSIX | start [FOLDER] | stop" >&2; exit 2 ;;
esac

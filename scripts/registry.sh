#!/usr/bin/env bash
# A real local Docker registry (Debian package `docker-registry`, distribution 2.8) with htpasswd
# (bcrypt) auth on 127.0.0.1, for the tests of the push path. Docker treats 127.0.0.0/8
# registries as insecure-allowed, so no TLS and no daemon.json change is needed.
#
#   scripts/registry.sh start    start (or keep) it; waits until GET /v2/ answers 401;
#                                last stdout line: host:port (e.g. 127.0.0.1:5000)
#   scripts/registry.sh stop     stop it (no-op when stopped)
#   scripts/registry.sh status   print "running <host:port> pid <pid>" (exit 0) or "stopped" (exit 3)
#
# Environment:
#   KIPOI_REGISTRY_PASSWORD  password (required for start; any printable characters)
#   KIPOI_REGISTRY_USER      user (default kipoi)
#   KIPOI_REGISTRY_PORT      port on 127.0.0.1 (default 5000)
#   KIPOI_REGISTRY_DIR       state dir: config.yml, htpasswd, data/, registry.pid, registry.log
#                            (default /var/tmp/kipoi-containers/registry)
#
# `start` while it runs with the same port, user and password: nothing to do. With a different
# one: it is restarted on the new settings (the stored images stay in data/).
# Not the Debian systemd/init service: the binary runs directly, in the background.
set -euo pipefail

DIR=${KIPOI_REGISTRY_DIR:-/var/tmp/kipoi-containers/registry}
PORT=${KIPOI_REGISTRY_PORT:-5000}
USER_NAME=${KIPOI_REGISTRY_USER:-kipoi}
HOSTPORT="127.0.0.1:$PORT"
CONFIG="$DIR/config.yml"
HTPASSWD="$DIR/htpasswd"
PIDFILE="$DIR/registry.pid"
LOGFILE="$DIR/registry.log"
BIN=/usr/bin/docker-registry

log() { echo "registry: $*" >&2; }
die() { echo "registry: error: $*" >&2; exit 1; }

# pid of our registry when it runs (pid file + the process really is docker-registry on our config)
running_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "docker-registry serve $CONFIG" || return 1
  echo "$pid"
}

# HTTP status of GET /v2/ (000 when nothing answers); credentials via a curl config on stdin,
# so they never show up in the process list
v2_status() {
  local auth=${1:-}
  if [ -n "$auth" ]; then
    printf 'user = "%s"\n' "$auth" | curl -s -o /dev/null -w '%{http_code}' -m 3 -K - "http://$HOSTPORT/v2/" || true
  else
    curl -s -o /dev/null -w '%{http_code}' -m 3 "http://$HOSTPORT/v2/" || true
  fi
}

# curl config-file string escaping: backslash and double quote
curl_quote() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }

ensure_installed() {
  local pkgs=() created_policy=0
  [ -x "$BIN" ] || pkgs+=(docker-registry)
  command -v htpasswd >/dev/null 2>&1 || pkgs+=(apache2-utils)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  if [ ${#pkgs[@]} -eq 0 ]; then return 0; fi
  [ "$(id -u)" = 0 ] || die "missing Debian packages ${pkgs[*]}; install them as root (apt-get install ${pkgs[*]})"
  log "installing ${pkgs[*]} (apt-get)"
  # the package's postinst would start the system service (port 5000, no auth): forbid that
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; } >"/tmp/kipoi-registry-apt.$$.log" 2>&1 || rc=$?
  if [ $created_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ $rc -ne 0 ]; then cat "/tmp/kipoi-registry-apt.$$.log" >&2; rm -f "/tmp/kipoi-registry-apt.$$.log"; die "apt-get install ${pkgs[*]} failed"; fi
  rm -f "/tmp/kipoi-registry-apt.$$.log"
}

write_config() {
  # a stable http.secret per state dir (it signs upload state; random, never printed)
  [ -s "$DIR/http-secret" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/http-secret")
  cat >"$CONFIG.new" <<EOF
# written by kipoi_containers scripts/registry.sh
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $HOSTPORT
  secret: $(cat "$DIR/http-secret")
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: kipoi-containers-test-registry
    path: $HTPASSWD
EOF
  chmod 600 "$CONFIG.new"
}

cmd_status() {
  local pid
  if pid=$(running_pid); then echo "running $HOSTPORT pid $pid"; return 0; fi
  echo "stopped"; return 3
}

cmd_stop() {
  local pid _
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

cmd_start() {
  local pw=${KIPOI_REGISTRY_PASSWORD-}
  [ -n "$pw" ] || die "KIPOI_REGISTRY_PASSWORD is not set (the registry always runs with auth)"
  [[ "$pw" != *$'\n'* && "$pw" != *$'\r'* ]] || die "KIPOI_REGISTRY_PASSWORD must be a single line"
  [[ "$USER_NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "KIPOI_REGISTRY_USER must match [A-Za-z0-9._-]+"
  [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "KIPOI_REGISTRY_PORT must be a port number"
  ensure_installed
  mkdir -p "$DIR/data"
  chmod 700 "$DIR"
  exec 9>"$DIR/registry.lock"
  flock 9

  write_config
  local pid auth
  auth="$(curl_quote "$USER_NAME:$pw")"
  if pid=$(running_pid); then
    if cmp -s "$CONFIG" "$CONFIG.new" && [ "$(v2_status "$auth")" = 200 ]; then
      rm -f "$CONFIG.new"
      log "already running (pid $pid) with the same settings"
      echo "$HOSTPORT"
      return 0
    fi
    log "running with other settings; restarting"
    cmd_stop
  fi
  mv -f "$CONFIG.new" "$CONFIG"
  # bcrypt (the registry accepts nothing else); the password goes through stdin, never argv
  local tmp="$HTPASSWD.new"
  (umask 077; printf '%s\n' "$pw" | htpasswd -B -i -c "$tmp" "$USER_NAME" >/dev/null 2>&1) || die "htpasswd failed"
  mv -f "$tmp" "$HTPASSWD"

  if [ "$(v2_status)" != 000 ]; then
    die "something else already answers on $HOSTPORT; set KIPOI_REGISTRY_PORT to a free port"
  fi
  : >>"$LOGFILE"
  # no REGISTRY_* variables from the caller's environment (they override the config file)
  local unset_args=() v
  for v in $(compgen -e); do
    if [[ "$v" == REGISTRY_* ]]; then unset_args+=(-u "$v"); fi
  done
  env "${unset_args[@]}" \
    setsid "$BIN" serve "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  local code=000 _
  for _ in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOGFILE" >&2
      rm -f "$PIDFILE"
      die "docker-registry exited at start (log: $LOGFILE)"
    fi
    code=$(v2_status)
    [ "$code" = 401 ] && break
    sleep 0.1
  done
  if [ "$code" != 401 ]; then
    tail -n 20 "$LOGFILE" >&2
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    die "GET http://$HOSTPORT/v2/ answered '$code', expected 401 (auth on) within 10 s (log: $LOGFILE)"
  fi
  [ "$(v2_status "$auth")" = 200 ] || { cmd_stop; die "the registry rejects the configured credentials (log: $LOGFILE)"; }
  log "started pid $pid on http://$HOSTPORT (user $USER_NAME; log $LOGFILE)"
  echo "$HOSTPORT"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

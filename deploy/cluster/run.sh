#!/usr/bin/env bash
# A whole pusher cluster on this machine, on loopback, as gopusher clusters are
# deployed: etcd; nsqlookupd + nsqd; three pusher nodes, each registering
# itself in etcd (etcd.enable) and consuming every push on its own NSQ channel
# (nsqd found through nsqlookupd); confd rendering nginx's upstream from the
# nodes' keys (confd/templates/pusher-upstream.tmpl) and reloading nginx; nginx
# spreading WebSocket clients over the nodes.
#
# Usage: deploy/cluster/run.sh start|stop|status
#
#   PUSHER_CLUSTER_DIR   runtime dir: logs, data, pid files, rendered configs
#                        (default ${TMPDIR:-/tmp}/pusher-cluster; start empties it)
#   PUSHER_CLUSTER_BASE  first port (default 17000): nginx BASE+80, nodes'
#                        WebSocket BASE+81..83, gateways BASE+181..183, gRPC
#                        BASE+281..283, etcd BASE+379/380, nsqd BASE+150/151,
#                        nsqlookupd BASE+160/161
#
# Needs: Node.js 20 and `npm ci` done (dist/ is built when missing), curl, Go
# (scripts/nsqd.sh and scripts/confd.sh build nsqd and confd once), and etcd
# and nginx (Debian's packages; scripts/cluster-deps.sh installs them as root
# when missing).
set -euo pipefail

PROG=run.sh
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/../.." && pwd -P)"
DIR="${PUSHER_CLUSTER_DIR:-${TMPDIR:-/tmp}/pusher-cluster}"
BASE="${PUSHER_CLUSTER_BASE:-17000}"
NODES=3
LISTEN_KEY=pusher # the key prefix the template reads: /gopusher/pusher/
TOPIC=pusher

NGINX_PORT=$((BASE + 80))
ETCD_PORT=$((BASE + 379))
ETCD_PEER_PORT=$((BASE + 380))
NSQD_TCP=$((BASE + 150))
NSQD_HTTP=$((BASE + 151))
LOOKUPD_TCP=$((BASE + 160))
LOOKUPD_HTTP=$((BASE + 161))
ws_port() { echo $((BASE + 80 + $1)); }
http_port() { echo $((BASE + 180 + $1)); }
grpc_port() { echo $((BASE + 280 + $1)); }

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# bin NAME: absolute path of a system binary (Debian's nginx is in /usr/sbin).
bin() {
  local p
  for p in "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/bin/$1"; do
    [[ -n "$p" && -x "$p" ]] && { printf '%s\n' "$p"; return 0; }
  done
  return 1
}

# wait_for WHAT CMD...: retries CMD (quietly) for 30 s.
wait_for() {
  local what=$1 i
  shift
  for ((i = 0; i < 300; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "$what did not come up in 30 s (logs in $DIR/logs)"
}

pidfile() { echo "$DIR/pids/$1.pid"; }

alive() {
  local f
  f="$(pidfile "$1")"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# spawn NAME CMD...: runs CMD in the background, output to logs/NAME.log, pid to pids/NAME.pid.
spawn() {
  local name=$1
  shift
  nohup "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

etcdctl_() { ETCDCTL_API=3 "$(bin etcdctl)" --endpoints "127.0.0.1:$ETCD_PORT" "$@"; }

registered() { [[ "$(etcdctl_ get --prefix --keys-only "/gopusher/$LISTEN_KEY/" | grep -c .)" -ge "$1" ]]; }

nginx_cmd() { echo "$(bin nginx) -p $DIR/nginx -c $DIR/nginx/nginx.conf -e $DIR/logs/nginx.log"; }

start() {
  command -v curl >/dev/null || die "curl is needed"
  if alive etcd || alive node-1; then die "already running in $DIR (run.sh stop first)"; fi
  bin etcd >/dev/null && bin etcdctl >/dev/null && bin nginx >/dev/null || "$ROOT/scripts/cluster-deps.sh"
  local nsq confd
  nsq="$("$ROOT/scripts/nsqd.sh")"
  confd="$("$ROOT/scripts/confd.sh" path)"
  [[ -f "$ROOT/dist/src/main.js" ]] || (cd "$ROOT" && npm run build >&2)

  rm -rf "$DIR"
  mkdir -p "$DIR"/{logs,pids,etcd,nsqd,nginx,confd/conf.d,confd/templates}
  # nginx's workers run as nobody when started as root: they must reach the prefix.
  chmod 755 "$DIR" "$DIR/nginx"

  log "etcd on 127.0.0.1:$ETCD_PORT"
  spawn etcd "$(bin etcd)" --name pusher-cluster --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "pusher-cluster=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_for etcd curl -fs "http://127.0.0.1:$ETCD_PORT/health"

  log "nsqlookupd on 127.0.0.1:$LOOKUPD_HTTP, nsqd on 127.0.0.1:$NSQD_TCP (README's recommended flags)"
  spawn nsqlookupd "$nsq/nsqlookupd" --tcp-address "127.0.0.1:$LOOKUPD_TCP" --http-address "127.0.0.1:$LOOKUPD_HTTP" --broadcast-address 127.0.0.1
  wait_for nsqlookupd curl -fs "http://127.0.0.1:$LOOKUPD_HTTP/ping"
  spawn nsqd "$nsq/nsqd" --tcp-address "127.0.0.1:$NSQD_TCP" --http-address "127.0.0.1:$NSQD_HTTP" --broadcast-address 127.0.0.1 \
    --data-path "$DIR/nsqd" --lookupd-tcp-address "127.0.0.1:$LOOKUPD_TCP" --mem-queue-size=0 --min-output-buffer-timeout=1ms
  wait_for nsqd curl -fs "http://127.0.0.1:$NSQD_HTTP/ping"
  # The topic exists before the first push: nsqlookupd points the nodes' consumers at it, and
  # every node's channel is there before anything is published (else early pushes miss nodes).
  curl -fs -X POST "http://127.0.0.1:$NSQD_HTTP/topic/create?topic=$TOPIC" >/dev/null

  local i
  for ((i = 1; i <= NODES; i++)); do
    log "node-$i: ws 127.0.0.1:$(ws_port "$i"), gateway :$(http_port "$i"), gRPC :$(grpc_port "$i"), NSQ channel node-$i"
    spawn "node-$i" node "$ROOT/dist/src/main.js" --config "$ROOT/config.ini" \
      --set server.host=127.0.0.1 --set "server.ws_port=$(ws_port "$i")" --set "gateway.port=$(http_port "$i")" \
      --set "grpc.addr=127.0.0.1:$(grpc_port "$i")" --set server.shards=1 --set processor.threads=1 \
      --set queue.driver=nsq --set queue.nsqd_tcp= --set "queue.lookupd_http=127.0.0.1:$LOOKUPD_HTTP" \
      --set "queue.topic=$TOPIC" --set "queue.channel=node-$i" \
      --set etcd.enable=true --set "etcd.endpoints=127.0.0.1:$ETCD_PORT" --set "etcd.listen_key=$LISTEN_KEY"
  done
  wait_for "the nodes' registration in etcd" registered "$NODES"

  log "nginx on 127.0.0.1:$NGINX_PORT, confd watching etcd"
  sed "s|@NGINX_PORT@|$NGINX_PORT|g; s|@RUN_DIR@|$DIR|g" "$HERE/nginx.conf" >"$DIR/nginx/nginx.conf"
  # Until confd renders the nodes: a valid upstream that answers 502.
  printf 'upstream pusher_ws {\n    server 127.0.0.1:9 down;\n}\n' >"$DIR/nginx/upstream.conf"
  # nginx runs as a daemon and writes its master's pid to nginx/nginx.pid.
  $(nginx_cmd) || die "nginx did not start (see $DIR/logs/nginx.log)"
  cp "$HERE/confd/templates/pusher-upstream.tmpl" "$DIR/confd/templates/"
  sed "s|@RUN_DIR@|$DIR|g; s|@NGINX@|$(bin nginx)|g" "$HERE/confd/conf.d/pusher-upstream.toml" >"$DIR/confd/conf.d/pusher-upstream.toml"
  spawn confd "$confd" -backend etcdv3 -node "http://127.0.0.1:$ETCD_PORT" -watch -confdir "$DIR/confd"
  wait_for "confd's first rendering" grep -q "weight=1" "$DIR/nginx/upstream.conf"
  # Wait until the new nginx workers (with the rendered upstream) answer.
  sleep 0.5
  log "ready: clients connect to ws://127.0.0.1:$NGINX_PORT/ws; push through any node, e.g. http://127.0.0.1:$(http_port 1)/push"
  status
}

# stop_pid NAME: SIGTERM, then SIGKILL after 15 s.
stop_pid() {
  local f pid i
  f="$(pidfile "$1")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  local i
  # Nodes first: each revokes its lease, so confd takes it out of nginx, then closes its clients.
  for ((i = 1; i <= NODES; i++)); do stop_pid "node-$i" & done
  wait
  stop_pid confd
  if [[ -f "$DIR/nginx/nginx.pid" ]]; then
    $(nginx_cmd) -s stop 2>/dev/null || true
    rm -f "$DIR/nginx/nginx.pid"
  fi
  stop_pid nsqd
  stop_pid nsqlookupd
  stop_pid etcd
  log "stopped (logs stay in $DIR/logs)"
}

status() {
  local name i
  for name in etcd nsqlookupd nsqd confd $(for ((i = 1; i <= NODES; i++)); do echo "node-$i"; done); do
    if alive "$name"; then printf '%-10s running (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"; else printf '%-10s stopped\n' "$name"; fi
  done
  if [[ -f "$DIR/nginx/nginx.pid" ]] && kill -0 "$(cat "$DIR/nginx/nginx.pid")" 2>/dev/null; then
    printf '%-10s running (pid %s), ws://127.0.0.1:%s/ws\n' nginx "$(cat "$DIR/nginx/nginx.pid")" "$NGINX_PORT"
  else
    printf '%-10s stopped\n' nginx
  fi
  if alive etcd; then
    echo "registered in etcd (/gopusher/$LISTEN_KEY/):"
    etcdctl_ get --prefix "/gopusher/$LISTEN_KEY/" --print-value-only | sed '/^$/d; s/^/  /'
  fi
  if [[ -f "$DIR/nginx/upstream.conf" ]]; then
    echo "nginx upstream (rendered by confd):"
    sed 's/^/  /' "$DIR/nginx/upstream.conf"
  fi
  for ((i = 1; i <= NODES; i++)); do
    if alive "node-$i"; then
      printf 'cluster as node-%s sees it: %s\n' "$i" "$(curl -fs -m 2 "http://127.0.0.1:$(http_port "$i")/system" || echo '(no answer)')"
      break
    fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    printf 'usage: %s start|stop|status\n' "$0" >&2
    exit 2
    ;;
esac

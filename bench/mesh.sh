# bench/mesh.sh -- W10: a mesh of W10_DEVICES devices, every one paired with every other and
# all members of one share, each in a network namespace of its own. Sourced by bench/run's inner
# part (which already runs inside the bench namespace $BENCH_NS: loopback only, no route off the
# box); uses its helpers (log, res, now, sub, ticks, hwm_kb, wait_until, kill_wait, fcount,
# gen_many, ...).
#
# Topology: one bridge in the bench namespace, and per device a namespace "$BENCH_NS-m<i>"
# joined to it by a veth pair; device i is 10.201.0.<i+1>/24. Nothing else is in those
# namespaces (checked before any daemon starts), so no packet can leave the machine. Because
# every device sends through its own veth, the bridge-side counters say who sent what: "origin
# bytes" is what device 0 put on its veth (rx of vm0), the wire total is the sum over all.
#
# W10:  W1's file (W1_MIB) added on device 0; timed until all others hold it whole (then each
#       copy is compared byte for byte, untimed), and until every device is idle again.
# W10s: W10_FILES files of W10_KIB in 10 folders added on device 0; timed until all others
#       hold them all.
# Reported: time_s, wire_bytes (all devices), origin_bytes, cpu_s (all daemons), rss_mib (the
# largest daemon). The floor: the receivers' copies made locally and durable on the same disk
# (every "device" here shares one disk, so the 9 copies are the disk's work whatever the tool).

MESH_NET=10.201.0
MESH_PORT=22110
MESH_NS_PREFIX="${BENCH_NS:-ferrybench}-m"

mesh_ns() { echo "$MESH_NS_PREFIX$1"; }
mesh_ip() { echo "$MESH_NET.$(($1 + 1))"; }

# The bridge and one namespace per device. Refuses (returns 1) if any namespace has a link or a
# route it should not.
mesh_net_up() {
  local n=$1 i ns links
  mesh_net_down
  ip link add fbmbr type bridge || return 1
  ip link set fbmbr up || return 1
  for ((i = 0; i < n; i++)); do
    ns=$(mesh_ns "$i")
    ip netns add "$ns" || return 1
    ip link add "fbm$i" type veth peer name eth0 netns "$ns" || return 1
    ip link set "fbm$i" master fbmbr up || return 1
    ip netns exec "$ns" sh -c "
      sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
      ip link set lo up && ip addr add $(mesh_ip "$i")/24 dev eth0 && ip link set eth0 up" || return 1
    links=$(ip netns exec "$ns" ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | tr '\n' ' ')
    [[ "$links" == "lo eth0 " ]] || { log "mesh: unexpected links in $ns: $links"; return 1; }
    ip netns exec "$ns" ip route get 1.1.1.1 >/dev/null 2>&1 && { log "mesh: $ns has a route off-box"; return 1; }
  done
  ip route get 1.1.1.1 >/dev/null 2>&1 && { log "mesh: the bench namespace has a route off-box"; return 1; }
  return 0
}
mesh_net_down() {
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$MESH_NS_PREFIX"); do ip netns del "$ns"; done
  ip link del fbmbr 2>/dev/null
  return 0
}
# What device i put on the bridge (its veth's rx, seen from the bridge side).
mesh_sent() { cat "/sys/class/net/fbm$1/statistics/rx_bytes" 2>/dev/null || echo 0; }
mesh_sent_all() { local i s=0; for ((i = 0; i < MESH_N; i++)); do s=$((s + $(mesh_sent "$i"))); done; echo $s; }

mcli() { local i=$1; shift; timeout 60 "$FERRY_BIN" --home "$MH/$i/home" "$@"; }
mesh_start() { # i
  local i=$1 pid
  mkdir -p "$MH/$i/home" "$MH/$i/data"
  ip netns exec "$(mesh_ns "$i")" "$FERRY_BIN" --home "$MH/$i/home" daemon --listen "$(mesh_ip "$i"):$MESH_PORT" \
    --name "D$i" --owner bench --no-mdns --no-kdeconnect --no-localsend \
    --log "${FERRY_LOG:-warn}" --log-file "$MH/$i/ferry.log" > "$MH/$i/stdout.log" 2>&1 &
  pid=$!
  STARTED+=("$pid"); MPIDS+=("$pid")
  wait_until 30 "mesh D$i up" mcli "$i" id >/dev/null 2>&1
}
mesh_pending() { mcli "$1" --json pending 2>/dev/null | jq -r --arg k "$2" '[.[] | select(.kind == $k)][0].id // empty'; }
mesh_has_pending() { [[ -n $(mesh_pending "$1" "$2") ]]; }
mesh_pair() { # i j: i asks j, j accepts
  local i=$1 j=$2 pid
  mcli "$i" pair "$(mesh_ip "$j"):$MESH_PORT" > "$MH/pair-$i-$j.log" 2>&1 &
  pid=$!
  wait_until 30 "pairing prompt on D$j" mesh_has_pending "$j" pair || return 1
  mcli "$j" accept "$(mesh_pending "$j" pair)" >/dev/null || return 1
  wait "$pid" || { log "mesh pair D$i-D$j failed: $(cat "$MH/pair-$i-$j.log")"; return 1; }
}
mesh_ok() { # i: connected to all, every share idle and in sync
  mcli "$1" --json status 2>/dev/null | jq -e --argjson n $((MESH_N - 1)) \
    '.connected >= $n and (.shares | length) >= 1 and all(.shares[]; .state == "idle" and .in_sync)' >/dev/null
}
mesh_all_ok() { local i; for ((i = 0; i < MESH_N; i++)); do mesh_ok "$i" || return 1; done; }

# Every pair paired; device 0's share offered to and accepted by every other; then every
# receiver adds every other receiver as a member (they already hold the share: no prompt).
mesh_up() {
  local i j
  MH="$WORK/mesh"; rm -rf "$MH"; mkdir -p "$MH"; MPIDS=()
  mesh_net_up "$MESH_N" || return 1
  for ((i = 0; i < MESH_N; i++)); do mesh_start "$i" || return 1; done
  for ((i = 0; i < MESH_N; i++)); do
    for ((j = i + 1; j < MESH_N; j++)); do mesh_pair "$i" "$j" || return 1; done
  done
  mcli 0 share add "$MH/0/data" --label bench >/dev/null || return 1
  for ((j = 1; j < MESH_N; j++)); do
    mcli 0 share invite bench "D$j" >/dev/null || return 1
    wait_until 30 "share offer on D$j" mesh_has_pending "$j" share || return 1
    mcli "$j" accept "$(mesh_pending "$j" share)" --path "$MH/$j/data" >/dev/null || return 1
  done
  for ((i = 1; i < MESH_N; i++)); do
    for ((j = 1; j < MESH_N; j++)); do
      ((i == j)) || mcli "$i" share invite bench "D$j" >/dev/null || return 1
    done
  done
  wait_until 120 "mesh in sync" mesh_all_ok
}
mesh_down() {
  local p i
  for p in "${MPIDS[@]}"; do kill_wait "$p"; done
  MPIDS=()
  for ((i = 0; i < MESH_N; i++)); do
    [[ -f $MH/$i/ferry.log ]] && gzip -c "$MH/$i/ferry.log" > "$OUT/logs/mesh-D$i.log.gz"
  done
  mesh_net_down
}

# Holds device 0's content? (cheap: sizes/counts; the byte check follows, untimed)
mesh_have_big() { local j; for ((j = 1; j < MESH_N; j++)); do [[ $(stat -c %s "$MH/$j/data/big.bin" 2>/dev/null) == "$SIZE1" ]] || return 1; done; }
mesh_have_small() { local j; for ((j = 1; j < MESH_N; j++)); do [[ $(fcount "$MH/$j/data/w10s") -eq $W10_FILES ]] || return 1; done; }
mesh_same_big() { local j; for ((j = 1; j < MESH_N; j++)); do cmp -s "$MH/0/data/big.bin" "$MH/$j/data/big.bin" || return 1; done; }
mesh_same_small() { local j; for ((j = 1; j < MESH_N; j++)); do same_tree "$MH/0/data/w10s" "$MH/$j/data/w10s" || return 1; done; }

# mesh_trial W BYTES ACTION HAVE SAME: times ACTION (which adds BYTES of content on device 0)
# until HAVE holds and SAME confirms it, then waits for the whole mesh to be idle before reading
# the counters (the wire figures cover it all). origin_x: what device 0 sent, in copies of the
# content (9 receivers fed by it alone: about 9).
mesh_trial() {
  local w=$1 bytes=$2 action=$3 have=$4 same=$5 t0 t1="" s0 o0 c0 c1 m=0 p h
  for p in "${MPIDS[@]}"; do reset_hwm "$p"; done
  s0=$(mesh_sent_all); o0=$(mesh_sent 0); c0=$(ticks "${MPIDS[@]}")
  t0=$(now)
  $action
  while :; do
    if $have; then t1=$(now); $same && break; t1=""; fi
    awk -v a="$t0" -v b="$(now)" -v t="$WAIT_TIMEOUT" 'BEGIN{exit !(b-a > t)}' \
      && { log "ferry $w: TIMEOUT"; res ferry "$w" 1 time_s TIMEOUT; return 1; }
    sleep 0.1
  done
  wait_until "$WAIT_TIMEOUT" "mesh idle after $w" mesh_all_ok || { res ferry "$w" 1 time_s TIMEOUT; return 1; }
  c1=$(ticks "${MPIDS[@]}")
  for p in "${MPIDS[@]}"; do h=$(hwm_kb "$p"); ((h > m)) && m=$h; done
  res ferry "$w" 1 time_s "$(sub "$t0" "$t1")"
  res ferry "$w" 1 wire_bytes $(($(mesh_sent_all) - s0))
  res ferry "$w" 1 origin_bytes $(($(mesh_sent 0) - o0))
  res ferry "$w" 1 origin_x "$(awk -v o="$(($(mesh_sent 0) - o0))" -v b="$bytes" 'BEGIN{printf "%.2f", o / b}')"
  res ferry "$w" 1 cpu_s "$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN{printf "%.2f",(b-a)/t}')"
  res ferry "$w" 1 rss_mib "$(awk -v k="$m" 'BEGIN{printf "%.1f",k/1024}')"
}
act_w10() { mv "$STAGE/w1/big.bin" "$MH/0/data/big.bin"; }
act_w10s() { mv "$STAGE/w10s" "$MH/0/data/w10s"; }

make_dataset_mesh() {
  local stamp="w10s=$W10_FILES/$W10_KIB v1"
  [[ -f $DS/stamp-w10s && "$(cat "$DS/stamp-w10s")" == "$stamp" ]] && return
  gen_many "$DS/w10s" "$W10_FILES" 10 "$W10_KIB" ferry-w10s
  [[ $(fcount "$DS/w10s") -eq $W10_FILES ]] && echo "$stamp" > "$DS/stamp-w10s"
}

# The floor: the receivers' copies written on this one disk and made durable, in parallel (as
# the devices would), with no network, hashing or index.
mesh_floor() { # w src
  local w=$1 src=$2 t0 t1 j dst="$WORK/mesh-floor"
  rm -rf "$dst"; mkdir -p "$dst"; sync
  t0=$(now)
  for ((j = 1; j < MESH_N; j++)); do cp -r "$src" "$dst/$j" & done
  wait
  sync -f "$dst"
  t1=$(now)
  res floor "$w" 1 time_s "$(sub "$t0" "$t1")"
  rm -rf "$dst"
}

session_mesh() {
  local tool=$1
  MESH_N=$W10_DEVICES
  make_dataset_mesh || { res "$tool" W10s 1 time_s SETUP_FAIL; return; }
  if [[ $tool == floor ]]; then
    mesh_floor W10 "$DS/w1/big.bin"; mesh_floor W10s "$DS/w10s"; return
  fi
  [[ $tool == ferry ]] || return 0
  mesh_up || { res ferry W10 1 time_s SETUP_FAIL; mesh_down; return; }
  stage w1; mesh_trial W10 "$SIZE1" act_w10 mesh_have_big mesh_same_big
  stage w10s; mesh_trial W10s $((W10_FILES * W10_KIB * 1024)) act_w10s mesh_have_small mesh_same_small
  mesh_down; rm -rf "$STAGE" "$MH"
}

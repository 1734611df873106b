#!/usr/bin/env bash
# Idle cost of the desktop app: starts it under Xvfb (own HOME, loopback listen) with two
# shares of 10,000 small files each, waits until both are scanned, then reports its resident
# memory and the CPU it uses over 60 idle seconds. Usage: bench/desktop-idle.sh APP FERRY
# (run inside dbus-run-session -- xvfb-run -a).
set -euo pipefail
APP=${1:?path to ferry-desktop}; FERRY=${2:?path to ferry}
export HOME=$(mktemp -d) XDG_DATA_HOME= FERRY_LISTEN=127.0.0.1:0 FERRY_LOG=warn
# Network safety: the app's discovery (mDNS multicast, KDE Connect broadcast, LocalSend
# multicast) reaches every interface; a benchmark sends nothing beyond loopback.
export FERRY_MDNS=0 FERRY_KDECONNECT=0 FERRY_LOCALSEND=0
FH="$HOME/.local/share/ferry"
for s in a b; do
    mkdir -p "$HOME/share-$s"
    python3 -c "import os,sys
d=sys.argv[1]
for i in range(10000):
    sub=os.path.join(d,f'dir{i//500:02d}'); os.makedirs(sub,exist_ok=True)
    open(os.path.join(sub,f'f{i:05d}.txt'),'w').write(f'file {i}\n'*8)" "$HOME/share-$s"
done
"$APP" & pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$HOME"' EXIT
for _ in $(seq 300); do "$FERRY" --home "$FH" status >/dev/null 2>&1 && break; sleep 0.2; done
"$FERRY" --home "$FH" share add "$HOME/share-a" >/dev/null
"$FERRY" --home "$FH" share add "$HOME/share-b" >/dev/null
for _ in $(seq 600); do
    n=$("$FERRY" --home "$FH" --json status | python3 -c "import json,sys; s=json.load(sys.stdin)['shares']; print(sum(x['files'] for x in s if x['state']=='idle'))")
    [ "$n" -ge 20000 ] && break; sleep 0.5
done
echo "indexed files: $n"
sleep 10   # let the post-scan burst settle before measuring idle
ticks() { awk '{print $14+$15}' /proc/$pid/stat; }
t0=$(ticks); sleep 60; t1=$(ticks)
hz=$(getconf CLK_TCK)
echo "idle CPU over 60 s: $(python3 -c "print(f'{($t1-$t0)/$hz/60*100:.2f}%')")"
echo "RSS: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
# WebKit renders in child processes: count them too.
kids=$(pgrep -P $pid || true)
tot=$(for p in $pid $kids; do awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null; done | awk '{s+=$1} END {printf "%.1f MiB", s/1024}')
echo "RSS with WebKit child processes: $tot"

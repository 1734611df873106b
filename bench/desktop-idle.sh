#!/usr/bin/env bash
# Idle cost of the desktop app: starts it under Xvfb (own HOME, loopback listen) with two
# shares of 10,000 small files each, waits until both are scanned, then reports its memory and
# the CPU it uses over IDLE_SECS (60) idle seconds twice: with the window open (as it starts),
# then closed to the tray the way a user closes it (WM_DELETE_WINDOW, the close button's
# message: scripts/x11-window.py). Then how long a second launch takes to bring the window
# back, and, for scale, a headless `ferry daemon` on the same home (the node alone).
# Usage: bench/desktop-idle.sh APP FERRY (run inside dbus-run-session -- xvfb-run -a).
set -euo pipefail
APP=${1:?path to ferry-desktop}; FERRY=${2:?path to ferry}
IDLE_SECS=${IDLE_SECS:-60}
XWIN="$(cd "$(dirname "$0")/.." && pwd)/scripts/x11-window.py"
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
trap 'kill $pid ${dpid:-} 2>/dev/null || true; rm -rf "$HOME"' EXIT
for _ in $(seq 300); do "$FERRY" --home "$FH" status >/dev/null 2>&1 && break; sleep 0.2; done
"$FERRY" --home "$FH" share add "$HOME/share-a" >/dev/null
"$FERRY" --home "$FH" share add "$HOME/share-b" >/dev/null
for _ in $(seq 600); do
    n=$("$FERRY" --home "$FH" --json status | python3 -c "import json,sys; s=json.load(sys.stdin)['shares']; print(sum(x['files'] for x in s if x['state']=='idle'))")
    [ "$n" -ge 20000 ] && break; sleep 0.5
done
echo "indexed files: $n"

# WebKit renders in other processes the app starts (possibly through bwrap): all descendants.
tree() { local p=$1; echo "$p"; for c in $(cat /proc/$p/task/*/children 2>/dev/null); do tree "$c"; done; }
kib() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/$3" 2>/dev/null || true; }
mib() { awk '{s+=$1} END {printf "%.1f MiB", s/1024}'; }
# CPU of the app process over IDLE_SECS, then RSS (app, all its processes) and PSS (shared
# pages counted once: the honest total).
measure() {
    local t0 t1 hz=$(getconf CLK_TCK) procs
    t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep "$IDLE_SECS"; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    echo "$1 idle CPU over $IDLE_SECS s: $(python3 -c "print(f'{($t1-$t0)/$hz/$IDLE_SECS*100:.2f}%')")"
    echo "$1 RSS: $(kib $pid VmRSS status | mib)"
    procs=$(tree $pid)
    echo "$1 RSS with WebKit child processes: $(for p in $procs; do kib $p VmRSS status; done | mib)"
    echo "$1 PSS, all processes: $(for p in $procs; do kib $p Pss smaps_rollup; done | mib)"
    echo "$1 anonymous (heap, not library pages), all processes: $(for p in $procs; do kib $p Anonymous smaps_rollup; done | mib)"
    for p in $procs; do [ "$p" = "$pid" ] || echo "  $(cat /proc/$p/comm 2>/dev/null) $(kib $p VmRSS status | mib)"; done
}

sleep 10   # let the post-scan burst settle before measuring idle
measure "window open:"
python3 "$XWIN" close Ferry
python3 "$XWIN" wait Ferry gone 10 >/dev/null
sleep 10   # WebKit's processes exit, the app trims its heap
measure "closed to tray:"
# A second launch hands over to this one (single instance), which opens the window.
t0=$(date +%s.%N)
"$APP" >/dev/null 2>&1 &
python3 "$XWIN" wait Ferry shown 30 >/dev/null
echo "reopen (second launch to window shown): $(python3 -c "import time; print(f'{time.time()-$t0:.2f} s')")"

# The node alone, for scale: the same home under `ferry daemon`.
kill $pid; wait $pid 2>/dev/null || true
"$FERRY" --home "$FH" daemon --listen 127.0.0.1:0 --no-mdns --no-kdeconnect --no-localsend 2>/dev/null & dpid=$!
for _ in $(seq 300); do "$FERRY" --home "$FH" status >/dev/null 2>&1 && break; sleep 0.2; done
sleep 20
echo "ferry daemon alone, same home: RSS $(kib $dpid VmRSS status | mib)"

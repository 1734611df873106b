#!/usr/bin/env python3
"""Draws Ferry's icons (app icon and the four tray states) as PNGs, with no dependencies:
shapes are signed-distance capsules and rounded boxes, 4x4 supersampled. Run from the repo
root; the PNGs are checked in under src-tauri/icons/."""
import math, struct, zlib, os

def png(path, w, h, px):
    raw = b"".join(b"\0" + bytes(px[y * w * 4:(y + 1) * w * 4]) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)

def capsule(x, y, ax, ay, bx, by, r):
    pax, pay, bax, bay = x - ax, y - ay, bx - ax, by - ay
    h = max(0.0, min(1.0, (pax * bax + pay * bay) / (bax * bax + bay * bay or 1e-9)))
    return math.hypot(pax - bax * h, pay - bay * h) - r

def rbox(x, y, cx, cy, hw, hh, r):
    qx, qy = abs(x - cx) - hw + r, abs(y - cy) - hh + r
    return math.hypot(max(qx, 0), max(qy, 0)) + min(max(qx, qy), 0) - r

def render(size, layers):
    """layers: list of (sdf(x,y) in unit coords 0..1, (r,g,b)) painted in order."""
    px = bytearray(size * size * 4)
    ss = 4
    for j in range(size):
        for i in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sj in range(ss):
                for si in range(ss):
                    x, y = (i + (si + .5) / ss) / size, (j + (sj + .5) / ss) / size
                    col, a = (0, 0, 0), 0.0
                    for sdf, c in layers:
                        if sdf(x, y) <= 0:
                            col, a = c, 1.0
                    acc[0] += col[0] * a; acc[1] += col[1] * a; acc[2] += col[2] * a; acc[3] += a
            n = ss * ss
            a = acc[3] / n
            k = (j * size + i) * 4
            if a > 0:
                px[k:k + 4] = bytes([round(acc[0] / acc[3]), round(acc[1] / acc[3]), round(acc[2] / acc[3]), round(a * 255)])
    return px

WHITE = (255, 255, 255)
BLUE, GREEN, AMBER, GRAY = (37, 99, 235), (22, 163, 74), (217, 119, 6), (107, 114, 128)

def arrows(w):
    # Two arrows: right on top, left below: the sync mark.
    return [
        (lambda x, y: capsule(x, y, .27, .38, .70, .38, w), WHITE),
        (lambda x, y: capsule(x, y, .70, .38, .58, .26, w), WHITE),
        (lambda x, y: capsule(x, y, .70, .38, .58, .50, w), WHITE),
        (lambda x, y: capsule(x, y, .73, .62, .30, .62, w), WHITE),
        (lambda x, y: capsule(x, y, .30, .62, .42, .50, w), WHITE),
        (lambda x, y: capsule(x, y, .30, .62, .42, .74, w), WHITE),
    ]

def main():
    out = "src-tauri/icons"
    os.makedirs(out, exist_ok=True)
    app = [(lambda x, y: rbox(x, y, .5, .5, .44, .44, .2), BLUE)] + arrows(.045)
    for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
        png(f"{out}/{name}", size, size, render(size, app))
    disc = lambda c: [(lambda x, y: math.hypot(x - .5, y - .5) - .47, c)]
    states = {
        "tray-ok": disc(GREEN) + [(lambda x, y: capsule(x, y, .28, .52, .43, .67, .06), WHITE),
                                  (lambda x, y: capsule(x, y, .43, .67, .72, .36, .06), WHITE)],
        "tray-syncing": disc(BLUE) + arrows(.055),
        "tray-attention": disc(AMBER) + [(lambda x, y: capsule(x, y, .5, .24, .5, .56, .07), WHITE),
                                         (lambda x, y: math.hypot(x - .5, y - .74) - .075, WHITE)],
        "tray-paused": disc(GRAY) + [(lambda x, y: capsule(x, y, .39, .3, .39, .7, .07), WHITE),
                                     (lambda x, y: capsule(x, y, .61, .3, .61, .7, .07), WHITE)],
    }
    for name, layers in states.items():
        png(f"{out}/{name}.png", 64, 64, render(64, layers))

main()

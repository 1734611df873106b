#!/usr/bin/env python3
"""Closes or waits for an X11 top-level window by its title, as a user's window manager would.

  x11-window.py close TITLE              send WM_DELETE_WINDOW (the close button's message)
  x11-window.py wait TITLE shown|gone S  wait up to S seconds; prints the seconds it took and
                                         the Unix time it happened at

The desktop app's bench (bench/desktop-idle.sh) and e2e flows run under a bare Xvfb, with no
window manager to press the close button for them; this sends the same client message a
window manager sends, so the app goes through its real close path (GTK delete-event, Tauri
CloseRequested). ctypes on libX11 only: nothing to install beyond what GTK already needs.
"""
import ctypes
import ctypes.util
import sys
import time

x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
Window = ctypes.c_ulong
Atom = ctypes.c_ulong
IS_VIEWABLE = 2
CLIENT_MESSAGE = 33


class XWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_int), ("y", ctypes.c_int), ("width", ctypes.c_int), ("height", ctypes.c_int),
        ("border_width", ctypes.c_int), ("depth", ctypes.c_int), ("visual", ctypes.c_void_p),
        ("root", Window), ("class_", ctypes.c_int), ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int), ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong), ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int), ("colormap", ctypes.c_ulong), ("map_installed", ctypes.c_int),
        ("map_state", ctypes.c_int), ("all_event_masks", ctypes.c_long),
        ("your_event_mask", ctypes.c_long), ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int), ("screen", ctypes.c_void_p),
    ]


class XClientMessageEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p), ("window", Window), ("message_type", Atom),
        ("format", ctypes.c_int), ("data", ctypes.c_long * 5),
        ("pad", ctypes.c_long * 12),  # XEvent is 24 longs: XSendEvent copies that many
    ]


x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XDefaultRootWindow.restype = Window
x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x11.XQueryTree.argtypes = [ctypes.c_void_p, Window, ctypes.POINTER(Window), ctypes.POINTER(Window),
                           ctypes.POINTER(ctypes.POINTER(Window)), ctypes.POINTER(ctypes.c_uint)]
x11.XFetchName.argtypes = [ctypes.c_void_p, Window, ctypes.POINTER(ctypes.c_char_p)]
x11.XGetWindowAttributes.argtypes = [ctypes.c_void_p, Window, ctypes.POINTER(XWindowAttributes)]
x11.XInternAtom.restype = Atom
x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
x11.XSendEvent.argtypes = [ctypes.c_void_p, Window, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
x11.XFree.argtypes = [ctypes.c_void_p]
x11.XFlush.argtypes = [ctypes.c_void_p]


# A window can vanish between listing it and reading its name or attributes (the app builds
# and destroys windows while this looks): Xlib's default handler would end this script on that
# BadWindow. Errors are ignored instead; the call that met one returns 0 and the window is
# skipped, as if listed a moment later.
XErrorHandler = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
IGNORE_ERRORS = XErrorHandler(lambda _dpy, _event: 0)  # kept referenced: Xlib holds a raw pointer
x11.XSetErrorHandler.argtypes = [XErrorHandler]
x11.XSetErrorHandler.restype = ctypes.c_void_p


def children(dpy, w):
    root, parent, kids, n = Window(), Window(), ctypes.POINTER(Window)(), ctypes.c_uint()
    if not x11.XQueryTree(dpy, w, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(kids), ctypes.byref(n)):
        return []
    out = [kids[i] for i in range(n.value)]
    if kids:
        x11.XFree(kids)
    return out


def shown(dpy, title):
    """Viewable windows titled `title`, down to the depth a reparenting window manager adds."""
    found, level = [], [x11.XDefaultRootWindow(dpy)]
    for _ in range(3):
        nxt = []
        for w in level:
            for c in children(dpy, w):
                name = ctypes.c_char_p()
                if x11.XFetchName(dpy, c, ctypes.byref(name)) and name.value is not None:
                    attrs = XWindowAttributes()
                    if name.value.decode(errors="replace") == title and x11.XGetWindowAttributes(
                            dpy, c, ctypes.byref(attrs)) and attrs.map_state == IS_VIEWABLE:
                        found.append(c)
                nxt.append(c)
        level = nxt
    return found


def close(dpy, title):
    wins = shown(dpy, title)
    for w in wins:
        ev = XClientMessageEvent(type=CLIENT_MESSAGE, window=w, format=32,
                                 message_type=x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0))
        ev.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        ev.data[1] = 0  # CurrentTime
        x11.XSendEvent(dpy, w, 0, 0, ctypes.byref(ev))
    x11.XFlush(dpy)
    return bool(wins)


def main(argv):
    x11.XSetErrorHandler(IGNORE_ERRORS)
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        sys.exit("x11-window: cannot open the display (DISPLAY unset?)")
    if len(argv) == 3 and argv[1] == "close":
        sys.exit(0 if close(dpy, argv[2]) else f"x11-window: no window titled {argv[2]!r} shown")
    if len(argv) == 5 and argv[1] == "wait" and argv[3] in ("shown", "gone"):
        t0, want = time.monotonic(), argv[3] == "shown"
        while time.monotonic() - t0 < float(argv[4]):
            if bool(shown(dpy, argv[2])) == want:
                print(f"{time.monotonic() - t0:.3f} {time.time():.3f}")
                return
            time.sleep(0.02)
        sys.exit(f"x11-window: {argv[2]!r} not {argv[3]} after {argv[4]} s")
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

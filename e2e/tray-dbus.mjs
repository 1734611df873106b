// Drives the app's tray menu the way a desktop shell does: over D-Bus. The app publishes a
// StatusNotifierItem (libayatana-appindicator) whose menu is a com.canonical.dbusmenu object.
// A bare dbus-run-session has no panel, so this module also plays the panel's
// StatusNotifierWatcher (the item registers with it; without one appindicator falls back to an
// XEmbed icon that has no D-Bus menu). It must be started before the app.
import dbus from 'dbus-next';
import { waitFor } from './harness.mjs';

const { Interface } = dbus.interface;
const WATCHER = 'org.kde.StatusNotifierWatcher';

class Watcher extends Interface {
  constructor() {
    super(WATCHER);
    this.items = [];
  }
  RegisterStatusNotifierItem(service) {
    this.items.push(service);
    this.StatusNotifierItemRegistered(service);
  }
  RegisterStatusNotifierHost(_service) {}
  get RegisteredStatusNotifierItems() {
    return this.items;
  }
  get IsStatusNotifierHostRegistered() {
    return true;
  }
  get ProtocolVersion() {
    return 0;
  }
  StatusNotifierItemRegistered(service) {
    return service;
  }
}
Watcher.configureMembers({
  methods: {
    RegisterStatusNotifierItem: { inSignature: 's', outSignature: '' },
    RegisterStatusNotifierHost: { inSignature: 's', outSignature: '' },
  },
  properties: {
    RegisteredStatusNotifierItems: { signature: 'as', access: 'read' },
    IsStatusNotifierHostRegistered: { signature: 'b', access: 'read' },
    ProtocolVersion: { signature: 'i', access: 'read' },
  },
  signals: { StatusNotifierItemRegistered: { signature: 's' } },
});

export async function startPanel() {
  const bus = dbus.sessionBus();
  const watcher = new Watcher();
  bus.export('/StatusNotifierWatcher', watcher);
  await bus.requestName(WATCHER, 0);
  return {
    bus,
    watcher,
    close: () => bus.disconnect(),
  };
}

/** A D-Bus call that may never be answered (a connection busy in its own call) gets 2 s. */
function bounded(p, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, fail) => (t = setTimeout(() => fail(new Error(`no D-Bus answer: ${what}`)), 2000))),
  ]);
}

/** Finds the registered item (its bus name and menu object) once the app has published it. */
async function findMenu(panel) {
  if (panel.menu) return panel.menu;
  const { bus, watcher } = panel;
  const dbusObj = await bus.getProxyObject('org.freedesktop.DBus', '/org/freedesktop/DBus');
  const names = await dbusObj.getInterface('org.freedesktop.DBus').ListNames();
  for (const reg of watcher.items) {
    // The item registers either its object path (then it lives on one of the unique names)
    // or a bus name (then at the standard path).
    const path = reg.startsWith('/') ? reg : '/StatusNotifierItem';
    // Not our own connection: it cannot answer while it waits for the answer.
    const candidates = reg.startsWith('/') ? names.filter((n) => n.startsWith(':') && n !== bus.name) : [reg];
    for (const name of candidates) {
      try {
        const obj = await bounded(bus.getProxyObject(name, path), `introspect ${name}`);
        if (!obj.interfaces['org.kde.StatusNotifierItem']) continue;
        const props = obj.getInterface('org.freedesktop.DBus.Properties');
        const menu = (await bounded(props.Get('org.kde.StatusNotifierItem', 'Menu'), 'Menu')).value;
        const menuObj = await bounded(bus.getProxyObject(name, menu), `introspect ${menu}`);
        panel.menu = menuObj.getInterface('com.canonical.dbusmenu');
        return panel.menu;
      } catch {
        // Not this connection.
      }
    }
  }
  return null;
}

function flatten(node, out = []) {
  const [id, props, children] = node;
  const label = props.label?.value;
  if (label !== undefined) out.push({ id, label: String(label).replace(/_/g, ''), enabled: props.enabled?.value !== false });
  for (const c of children) flatten(c.value, out);
  return out;
}

/** The tray menu's items, as the panel sees them. */
export async function trayItems(panel) {
  const menu = await waitFor('the tray menu on D-Bus', () => findMenu(panel));
  await bounded(menu.AboutToShow(0), 'AboutToShow').catch(() => {});
  const [, layout] = await bounded(menu.GetLayout(0, -1, []), 'GetLayout');
  return { menu, items: flatten(layout) };
}

/** Clicks the tray menu item labelled `label`, as a panel would. */
export async function clickTray(panel, label) {
  const { menu, items } = await waitFor(`tray item "${label}"`, async () => {
    const r = await trayItems(panel);
    return r.items.some((i) => i.label === label) ? r : null;
  });
  const item = items.find((i) => i.label === label);
  await bounded(menu.Event(item.id, 'clicked', new dbus.Variant('s', ''), 0), 'Event');
}

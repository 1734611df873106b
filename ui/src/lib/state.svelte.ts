// The window's live state: loaded through api.ts, refreshed when node events say something
// changed (debounced), never polled in a tight loop.
import { api, onEvent, toFerryError, type FerryError } from './api';
import type { DeviceDto, Event, NoteDto, PendingDto, SettingsDto, ShareDto, StatusDto } from './bindings';
import { emptyActivity, reduce, type Activity } from './activity';

/** Events that change what the lists show (progress events only feed Activity). */
const REFRESHING = new Set<Event['type']>([
  'device_connected', 'device_disconnected', 'prompt_added', 'prompt_resolved', 'paired', 'scan_finished',
  'applied', 'conflict', 'in_sync', 'error', 'note_received', 'note_state', 'sync_paused', 'lagged', 'index_received',
]);
const DEBOUNCE_MS = 250;
/** RTTs and share progress move without events worth sending; a slow refresh keeps them fresh. */
const SLOW_REFRESH_MS = 10_000;

export class FerryState {
  status = $state<StatusDto | null>(null);
  devices = $state<DeviceDto[]>([]);
  pending = $state<PendingDto[]>([]);
  shares = $state<ShareDto[]>([]);
  notes = $state<NoteDto[]>([]);
  settings = $state<SettingsDto | null>(null);
  defaultFolder = $state('');
  activity = $state<Activity>(emptyActivity());
  loadError = $state<FerryError | null>(null);
  loaded = $state(false);
  /** Devices to offer the default folder to as soon as pairing completes. */
  inviteOnPair = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private listeners: ((e: Event) => void)[] = [];

  shareName = (id: string): string => this.shares.find((s) => s.id === id)?.label ?? id.slice(0, 8);
  deviceName = (id: string): string => this.devices.find((d) => d.id === id)?.name ?? id.slice(0, 7);

  async refresh(): Promise<void> {
    try {
      const [status, devices, pending, shares, notes, settings] = await Promise.all([
        api.status(), api.devices(), api.pending(), api.shares(), api.notes(), api.settings(),
      ]);
      this.status = status;
      this.devices = devices;
      this.pending = pending;
      this.shares = shares;
      this.notes = notes;
      this.settings = settings;
      this.loadError = null;
    } catch (e) {
      this.loadError = toFerryError(e);
    }
    this.loaded = true;
  }

  soon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh();
    }, DEBOUNCE_MS);
  }

  /** Extra handlers (views that react to one event, e.g. pairing completing). */
  on(cb: (e: Event) => void): () => void {
    this.listeners.push(cb);
    return () => (this.listeners = this.listeners.filter((l) => l !== cb));
  }

  async start(): Promise<void> {
    this.defaultFolder = await api.defaultFolder().catch(() => '');
    await onEvent((e) => {
      this.activity = reduce(this.activity, e, Date.now(), this.shareName, this.deviceName);
      if (e.type === 'paired' && this.inviteOnPair.has(e.device)) {
        this.inviteOnPair.delete(e.device);
        const def = this.shares.find((s) => s.path === this.defaultFolder);
        if (def) void api.shareInvite(def.id, e.device).catch(() => {});
      }
      for (const l of this.listeners) l(e);
      if (REFRESHING.has(e.type)) this.soon();
    });
    await this.refresh();
    setInterval(() => void this.refresh(), SLOW_REFRESH_MS);
  }
}

export const ferry = new FerryState();

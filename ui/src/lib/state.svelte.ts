// The window's live state: loaded through api.ts, refreshed when node events say something
// changed (debounced), never polled in a tight loop.
import { api, onEvent, toFerryError, type FerryError, type SeqEvent } from './api';
import type { ConflictDto, DeviceDto, Event, NoteDto, PendingDto, SettingsDto, ShareDto, StatusDto, TransferDto } from './bindings';
import { emptyActivity, reduce, replay, type Activity } from './activity';
import { applySendEvent } from './transfers';

/** Events that change what the lists show (progress events only feed Activity). */
const REFRESHING = new Set<Event['type']>([
  'device_connected', 'device_disconnected', 'prompt_added', 'prompt_resolved', 'paired', 'device_removed', 'device_refused', 'scan_finished',
  'applied', 'conflict', 'in_sync', 'error', 'note_received', 'note_state', 'sync_paused', 'lagged', 'index_received',
  'send_offered', 'send_state', 'sync_summary', 'failed_items',
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
  transfers = $state<TransferDto[]>([]);
  conflicts = $state<ConflictDto[]>([]);
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
      const [status, devices, pending, shares, notes, settings, transfers, conflicts] = await Promise.all([
        api.status(), api.devices(), api.pending(), api.shares(), api.notes(), api.settings(), api.transfers(), api.conflicts(),
      ]);
      this.transfers = transfers;
      this.conflicts = conflicts;
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

  /**
   * Sends files to a paired device: with `paths`, those (dropped on the window); without,
   * the ones the user picks. Returns a sentence for the view, or null when the picker was
   * cancelled. Errors are thrown as FerryError.
   */
  async sendFiles(device: string, paths: string[] | null = null): Promise<string | null> {
    const chosen = paths ?? (await api.pickFiles());
    if (!chosen || chosen.length === 0) return null;
    const t = await api.send(device, chosen);
    await this.refresh();
    const n = t.files === 1 ? '1 file' : `${t.files} files`;
    return `Offered ${n} to ${t.device_name}. Progress shows in Activity.`;
  }

  /** Extra handlers (views that react to one event, e.g. pairing completing). */
  on(cb: (e: Event) => void): () => void {
    this.listeners.push(cb);
    return () => (this.listeners = this.listeners.filter((l) => l !== cb));
  }

  private apply(e: Event): void {
    this.activity = reduce(this.activity, e, Date.now(), this.shareName, this.deviceName);
    this.transfers = applySendEvent(this.transfers, e, Date.now());
    if (e.type === 'paired' && this.inviteOnPair.has(e.device)) {
      this.inviteOnPair.delete(e.device);
      const def = this.shares.find((s) => s.path === this.defaultFolder);
      if (def) void api.shareInvite(def.id, e.device).catch(() => {});
    }
    for (const l of this.listeners) l(e);
    if (REFRESHING.has(e.type)) this.soon();
  }

  /**
   * Loads the lists, then Activity from the node's kept events (this page may be new: the
   * window is rebuilt each time it opens from the tray), then applies live events. Live events
   * are listened to first and held meanwhile; those the replay already had (by `seq`) drop.
   */
  async start(): Promise<void> {
    this.defaultFolder = await api.defaultFolder().catch(() => '');
    let held: SeqEvent[] | null = [];
    let upto = 0;
    await onEvent((e) => {
      if (held) held.push(e);
      else if ((e.seq ?? Infinity) > upto) this.apply(e);
    });
    await this.refresh();
    const recent = await api.recentEvents().catch(() => null);
    if (recent) {
      upto = recent.upto;
      this.activity = replay(this.activity, recent, this.shareName, this.deviceName);
    }
    const waiting = held;
    held = null;
    for (const e of waiting) if ((e.seq ?? Infinity) > upto) this.apply(e);
    setInterval(() => void this.refresh(), SLOW_REFRESH_MS);
  }
}

export const ferry = new FerryState();

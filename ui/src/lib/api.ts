// The only module that talks to the shell: every command goes through `invoke` here, and
// node events arrive through `onEvent`. Types come from the generated bindings.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import { getCurrentWebview } from '@tauri-apps/api/webview';
import type {
  ApiError,
  AutoAcceptDto,
  ConflictDto,
  DeviceDto,
  DoctorDto,
  DeviceMuteDto,
  ErrorCode,
  Event,
  FirstRunDto,
  NoteDto,
  PairOutcomeDto,
  PairTicketDto,
  PendingDto,
  PingDto,
  ResolvedDto,
  RestoreDto,
  RestoredDto,
  RewindDto,
  RewindReqDto,
  SettingsDto,
  SettingsUpdateDto,
  ShareAddDto,
  ShareDto,
  ShareSettingsDto,
  StatusDto,
  TransferDto,
  VersionDto,
} from './bindings';

export type * from './bindings';

/** The shell's own preferences (src-tauri/src/commands.rs `AppPrefsDto`; not a node DTO). */
export interface AppPrefs {
  start_at_login: boolean;
  start_hidden: boolean;
}

/** A failed command: the node's `{code, message}`. */
export class FerryError extends Error {
  code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export function toFerryError(e: unknown): FerryError {
  if (e instanceof FerryError) return e;
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    const a = e as ApiError;
    return new FerryError(a.code, a.message);
  }
  return new FerryError('internal', typeof e === 'string' ? e : String(e));
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toFerryError(e);
  }
}

export const api = {
  status: () => call<StatusDto>('status'),
  devices: () => call<DeviceDto[]>('devices'),
  pending: () => call<PendingDto[]>('pending'),
  pair: (address: string) => call<PairTicketDto>('pair', { address }),
  pairWait: (ticket: number) => call<PairOutcomeDto>('pair_wait', { ticket }),
  accept: (id: number, path: string | null = null) => call<void>('accept', { id, path }),
  reject: (id: number) => call<void>('reject', { id }),
  shares: () => call<ShareDto[]>('shares'),
  shareAdd: (req: ShareAddDto) => call<ShareDto>('share_add', { req }),
  shareInvite: (share: string, device: string) => call<ShareDto>('share_invite', { share, device }),
  shareRemove: (share: string) => call<ShareDto>('share_remove', { share }),
  shareAck: (share: string) => call<ShareSettingsDto>('share_ack', { share }),
  versions: (path: string) => call<VersionDto[]>('versions', { path }),
  restore: (req: RestoreDto) => call<RestoredDto>('restore', { req }),
  rewind: (req: RewindReqDto) => call<RewindDto>('rewind', { req }),
  conflicts: (share: string | null = null) => call<ConflictDto[]>('conflicts', { share }),
  /** `keep`: `local`, `remote`, `both`, or a copy's name. */
  resolve: (path: string, keep: string) => call<ResolvedDto>('resolve', { path, keep }),
  send: (device: string, paths: string[]) => call<TransferDto>('send', { device, paths }),
  transfers: () => call<TransferDto[]>('transfers'),
  deviceMute: (device: string, muted: boolean) => call<DeviceMuteDto>('device_mute', { device, muted }),
  deviceAutoAccept: (device: string, on: boolean) => call<AutoAcceptDto>('device_auto_accept', { device, on }),
  /** LocalSend devices only: a favorite stays in the list while away. */
  deviceFavorite: (device: string, on: boolean) => call<DeviceDto>('device_favorite', { device, on }),
  deviceAddAddress: (device: string, address: string) => call<DeviceDto>('device_add_address', { device, address }),
  deviceRemove: (device: string) => call<DeviceDto>('device_remove', { device }),
  pickFiles: () => call<string[] | null>('pick_files'),
  ping: (device: string) => call<PingDto>('ping', { device }),
  notes: (device: string | null = null) => call<NoteDto[]>('notes', { device }),
  noteSend: (device: string, text: string) => call<NoteDto>('note_send', { device, text }),
  noteRead: (id: string) => call<NoteDto>('note_read', { id }),
  setPaused: (paused: boolean) => call<boolean>('set_paused', { paused }),
  settings: () => call<SettingsDto>('settings'),
  saveSettings: (req: SettingsUpdateDto) => call<SettingsDto>('save_settings', { req }),
  /** `ferry doctor`: Settings reads whether KDE Connect and LocalSend run, and why not. */
  doctor: () => call<DoctorDto>('doctor'),
  firstRun: (req: FirstRunDto) => call<ShareDto>('first_run', { req }),
  defaultFolder: () => call<string>('default_folder'),
  pickFolder: () => call<string | null>('pick_folder'),
  openPath: (path: string) => call<void>('open_path', { path }),
  /** Shows a file selected in the file manager (never opens it). */
  revealPath: (path: string) => call<void>('reveal_path', { path }),
  appPrefs: () => call<AppPrefs>('app_prefs'),
  saveAppPrefs: (req: AppPrefs) => call<AppPrefs>('save_app_prefs', { req }),
  /** The events the node kept (its last 300 but progress), which a new window's Activity replays. */
  recentEvents: () => call<RecentEvents>('recent_events'),
  /** The view the tray asked for, once (null when none is waiting). */
  takeNavigation: () => call<Navigation | null>('take_navigation'),
};

/** A node event as the node numbers it (`seq`, from 1), so a replay and the live stream can meet. */
export type SeqEvent = Event & { seq?: number; at_ms?: number };
export type RecentEvents = { upto: number; events: (Event & { seq: number; at_ms: number })[] };
export type Navigation = { view: string; device?: string };

/** Node events, as the node emits them. */
export function onEvent(cb: (e: SeqEvent) => void): Promise<UnlistenFn> {
  return listen<SeqEvent>('ferry-event', (m) => cb(m.payload));
}

/**
 * The tray asks the window to show a view (e.g. Send note to > device): at start (a window
 * opened for it) and whenever the shell says one is waiting.
 */
export function onNavigate(cb: (to: Navigation) => void): Promise<UnlistenFn> {
  const take = () => void api.takeNavigation().then((to) => to && cb(to), () => {});
  const unlisten = listen('ferry-navigate', take);
  take();
  return unlisten;
}

/** Files dragged over and dropped on the window: `over` while they hover, `drop` with paths. */
export function onFileDrop(cb: (e: { type: 'over' | 'leave' } | { type: 'drop'; paths: string[] }) => void): Promise<UnlistenFn> {
  return getCurrentWebview().onDragDropEvent((ev) => {
    const p = ev.payload;
    if (p.type === 'drop') cb({ type: 'drop', paths: p.paths });
    else if (p.type === 'leave') cb({ type: 'leave' });
    else cb({ type: 'over' });
  });
}

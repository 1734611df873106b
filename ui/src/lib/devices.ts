// Devices as the views show them: Ferry computers, KDE Connect devices (phones, tablets,
// desktops) and LocalSend devices side by side. Pure: unit-tested in devices.test.ts.
import type { DeviceDto, KdeDoctorDto, LsDoctorDto, PendingDto, SettingsDto } from './bindings';

/** `DeviceDto.kind` of a KDE Connect device (the node's `kind`; Ferry devices are `ferry`). */
export const KDE_KIND = 'kdeconnect';

type Kinded = Pick<DeviceDto, 'kind'>;

export function isKde(d: Kinded | null | undefined): boolean {
  return d?.kind === KDE_KIND;
}

/** `DeviceDto.kind` (and `PendingDto.device_kind`) of a LocalSend device. */
export const LS_KIND = 'localsend';

export function isLs(d: Kinded | null | undefined): boolean {
  return d?.kind === LS_KIND;
}

/** A device of another app (KDE Connect, LocalSend): shown by the icon of its type. */
export function isForeign(d: Kinded | null | undefined): boolean {
  return isKde(d) || isLs(d);
}

/**
 * Whether a share can be offered to the device. A KDE Connect device is never a member of a
 * share (the node refuses the invitation), so the UI does not offer it; removed devices are
 * not paired and are left out by the caller's `paired` filter.
 */
export function canInvite(d: Kinded & Pick<DeviceDto, 'paired'>): boolean {
  return d.paired && !isForeign(d);
}

export type DeviceIcon = 'phone' | 'tablet' | 'desktop' | 'laptop' | 'tv' | 'computer';

/**
 * SVG paths (24x24, stroked) per icon. `computer` is a Ferry device, which does not say
 * what it is (and is a computer, as Ferry runs on computers only).
 */
export const ICON_PATHS: Record<DeviceIcon, string> = {
  phone: 'M8 2.5h8a1.5 1.5 0 0 1 1.5 1.5v16a1.5 1.5 0 0 1-1.5 1.5H8A1.5 1.5 0 0 1 6.5 20V4A1.5 1.5 0 0 1 8 2.5zM11 18.5h2',
  tablet: 'M6 3h12a1.5 1.5 0 0 1 1.5 1.5v15A1.5 1.5 0 0 1 18 21H6a1.5 1.5 0 0 1-1.5-1.5v-15A1.5 1.5 0 0 1 6 3zM11 18h2',
  desktop: 'M3 4h18v12H3zM8 20h8M12 16v4',
  laptop: 'M5 6h14v9H5zM2.5 18.5h19',
  tv: 'M3 7h18v11H3zM8 21h8M9 3l3 4 3-4',
  computer: 'M4 5h16v10H4zM2 19h20M9 15v4m6-4v4',
};

/**
 * The icon for a device: its KDE Connect type, a phone when a KDE device says nothing known;
 * a LocalSend `mobile` is a phone, its `desktop` a laptop (LocalSend's own icon for it), and
 * `web`, `headless` and `server` a desktop.
 */
export function deviceIcon(d: Kinded & Pick<DeviceDto, 'device_type'>): DeviceIcon {
  if (isLs(d)) return d.device_type === 'mobile' ? 'phone' : d.device_type === 'desktop' ? 'laptop' : 'desktop';
  if (!isKde(d)) return 'computer';
  switch (d.device_type) {
    case 'tablet':
    case 'desktop':
    case 'laptop':
    case 'tv':
      return d.device_type;
    default:
      // KDE Connect's own default type, and what most of these devices are.
      return 'phone';
  }
}

/** "KDE Connect phone", "KDE Connect tablet", … for a KDE device; '' for a Ferry one. */
export function kindLabel(d: Kinded & Pick<DeviceDto, 'device_type'>): string {
  if (!isKde(d)) return '';
  const icon = deviceIcon(d);
  return `KDE Connect ${icon === 'tv' ? 'TV' : icon}`;
}

/** The LocalSend badge: "LocalSend · Pixel 8" (its model when it says one). */
export function lsBadge(d: Pick<DeviceDto, 'model'>): string {
  const model = d.model?.trim();
  return model ? `LocalSend · ${model}` : 'LocalSend';
}

/** A fingerprint in groups of 4 hex digits, upper case, as people compare them. */
export function groupFingerprint(fp: string | null | undefined, digits = 64): string {
  const hex = (fp ?? '').replace(/[^0-9a-fA-F]/g, '').toUpperCase().slice(0, digits);
  return hex.match(/.{1,4}/g)?.join(' ') ?? '';
}

/**
 * A whole fingerprint as the prompt and Settings show it: lines of 8 groups (32 hex digits),
 * so a SHA-256 reads as two even lines instead of wrapping wherever the width ends.
 */
export function fingerprintLines(fp: string | null | undefined): string[] {
  const groups = groupFingerprint(fp).split(' ').filter(Boolean);
  const lines: string[] = [];
  for (let i = 0; i < groups.length; i += 8) lines.push(groups.slice(i, i + 8).join(' '));
  return lines;
}

/** The short fingerprint shown in lists: the first 16 hex digits, in groups of 4. */
export function shortFingerprint(fp: string | null | undefined): string {
  return groupFingerprint(fp, 16);
}

/** A device's reachability as one pill: the label and whether it reads as good news. */
export function deviceState(d: Pick<DeviceDto, 'kind' | 'paired' | 'connected' | 'nearby' | 'warning'>): { label: string; ok: boolean } {
  // LocalSend has no pairing and no connection: a device is heard on the network or not. Its
  // warning (another certificate under a known alias) is a caution shown beside, not a refusal.
  if (isLs(d)) return d.nearby ? { label: 'Nearby', ok: true } : { label: 'Away', ok: false };
  // A refused device (e.g. another certificate than the paired one) may still be heard nearby,
  // but nothing reaches this computer from it: that is its state.
  if (d.warning) return { label: 'Refused', ok: false };
  if (d.paired && d.connected) return { label: 'Connected', ok: true };
  if (d.paired && isKde(d) && d.nearby) return { label: 'Nearby', ok: false };
  if (d.paired) return { label: isKde(d) ? 'Not reachable' : 'Offline', ok: false };
  if (d.connected) return { label: 'Connected, not paired', ok: false };
  return { label: d.nearby ? 'Nearby, not paired' : 'Not paired', ok: false };
}

/**
 * Whether a pairing prompt comes from a KDE Connect device: its device is listed as one (an
 * unpaired KDE device that connected is listed as nearby), or, before the list caught up,
 * the prompt has what only KDE prompts have: no owner and an 8-hex-digit verification key
 * (Ferry's code is 6 decimal digits and Ferry devices always have an owner).
 */
export function isKdePrompt(p: Pick<PendingDto, 'device' | 'owner' | 'code'>, devices: (Kinded & Pick<DeviceDto, 'id'>)[]): boolean {
  const d = devices.find((x) => x.id === p.device);
  if (d) return isKde(d);
  return p.owner === '' && /^[0-9a-fA-F]{8}$/.test(p.code ?? '');
}

/**
 * Settings' line under the KDE Connect switch: whether it runs now and, if not, why (the
 * doctor's reason, e.g. another KDE Connect holds the port); then whether the box differs
 * from what runs, which takes effect at the next start. `doctor` is null until it answered.
 */
export function kdeSettingHint(
  s: Pick<SettingsDto, 'kdeconnect' | 'kdeconnect_now'>,
  doctor: Pick<KdeDoctorDto, 'state' | 'reason' | 'port' | 'nearby' | 'connected'> | null,
  checked: boolean,
): { now: string; running: boolean; later: string } {
  let now: string;
  if (s.kdeconnect_now) {
    const port = doctor?.port != null ? ` on TCP port ${doctor.port}` : '';
    const counts = doctor ? ` · ${doctor.nearby} nearby, ${doctor.connected} connected` : '';
    now = `Running now${port}${counts}. Phones pair from their KDE Connect app.`;
  } else if (doctor?.reason) {
    now = `Not running now: ${doctor.reason}.`;
  } else if (s.kdeconnect) {
    // Saved on, yet off: the environment or a flag turned it off for this run.
    now = 'Not running now: turned off for this run (FERRY_KDECONNECT=0 or --no-kdeconnect).';
  } else {
    now = 'Not running now: turned off.';
  }
  // Like the mDNS box: the box against what runs now. Asked for but failed (port taken) is
  // not promised to start: it is tried again.
  let later = '';
  if (checked !== s.kdeconnect_now) {
    if (!checked) later = 'Ferry stops KDE Connect after it restarts.';
    else if (doctor?.state === 'failed') later = 'Ferry tries again when it restarts.';
    else later = 'Ferry starts KDE Connect after it restarts.';
  }
  return { now: now.replace(/\.\.$/, '.'), running: s.kdeconnect_now, later };
}

/**
 * Settings' line under the LocalSend switch, like the KDE Connect one: whether it runs now
 * (its port, the devices heard, whether a PIN is asked) or why not, then what the box changes
 * at the next start. `doctor` is null until it answered.
 */
export function lsSettingHint(
  s: Pick<SettingsDto, 'localsend' | 'localsend_now'>,
  doctor: Pick<LsDoctorDto, 'state' | 'reason' | 'port' | 'nearby' | 'pin'> | null,
  checked: boolean,
): { now: string; running: boolean; later: string } {
  let now: string;
  if (s.localsend_now) {
    const port = doctor?.port != null ? ` on TCP port ${doctor.port}` : '';
    const counts = doctor ? ` · ${doctor.nearby} nearby` : '';
    now = `Running now${port}${counts}. Devices with the LocalSend app open on this network show up in Devices.`;
  } else if (doctor?.reason) {
    now = `Not running now: ${doctor.reason}.`;
  } else if (s.localsend) {
    now = 'Not running now: turned off for this run (FERRY_LOCALSEND=0 or --no-localsend).';
  } else {
    now = 'Not running now: turned off.';
  }
  let later = '';
  if (checked !== s.localsend_now) {
    if (!checked) later = 'Ferry stops LocalSend after it restarts.';
    else if (doctor?.state === 'failed') later = 'Ferry tries again when it restarts.';
    else later = 'Ferry starts LocalSend after it restarts.';
  }
  return { now: now.replace(/\.\.$/, '.'), running: s.localsend_now, later };
}

/**
 * What Settings sends for the PIN: null keeps the saved one (the field was not touched), ''
 * removes it, anything else (trimmed) becomes the PIN.
 */
export function pinUpdate(touched: boolean, value: string): string | null {
  return touched ? value.trim() : null;
}

import { describe, expect, it } from 'vitest';
import type { DeviceDto } from './bindings';
import {
  canInvite,
  deviceIcon,
  deviceState,
  fingerprintLines,
  groupFingerprint,
  isForeign,
  isKde,
  isKdePrompt,
  isLs,
  kdeSettingHint,
  kindLabel,
  lsBadge,
  lsSettingHint,
  pinUpdate,
  shortFingerprint,
} from './devices';

const dev = (over: Partial<DeviceDto>): DeviceDto => ({
  id: 'd1',
  name: 'Pixel',
  owner: '',
  paired: true,
  connected: false,
  addresses: [],
  last_seen_ms: null,
  rtt_ms: null,
  bytes_sent: null,
  bytes_received: null,
  nearby: false,
  nearby_addresses: [],
  muted: false,
  auto_accept: false,
  removed: false,
  removed_by: null,
  kind: 'ferry',
  device_type: null,
  warning: null,
  model: null,
  fingerprint: null,
  favorite: false,
  ...over,
});

describe('devices', () => {
  it('tells KDE Connect devices from Ferry ones', () => {
    expect(isKde(dev({ kind: 'kdeconnect' }))).toBe(true);
    expect(isKde(dev({ kind: 'ferry' }))).toBe(false);
    expect(isKde(null)).toBe(false);
  });
  it('never offers a share to a KDE Connect device', () => {
    expect(canInvite(dev({ kind: 'ferry' }))).toBe(true);
    expect(canInvite(dev({ kind: 'kdeconnect' }))).toBe(false);
    expect(canInvite(dev({ kind: 'ferry', paired: false }))).toBe(false);
  });
  it('picks the icon from the KDE device type, a phone when unknown', () => {
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'phone' }))).toBe('phone');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'tablet' }))).toBe('tablet');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'desktop' }))).toBe('desktop');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'laptop' }))).toBe('laptop');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'tv' }))).toBe('tv');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: 'toaster' }))).toBe('phone');
    expect(deviceIcon(dev({ kind: 'kdeconnect', device_type: null }))).toBe('phone');
    // A Ferry device's type is ignored: Ferry devices are computers.
    expect(deviceIcon(dev({ kind: 'ferry', device_type: 'phone' }))).toBe('computer');
  });
  it('labels KDE devices by kind and type', () => {
    expect(kindLabel(dev({ kind: 'kdeconnect', device_type: 'phone' }))).toBe('KDE Connect phone');
    expect(kindLabel(dev({ kind: 'kdeconnect', device_type: 'tv' }))).toBe('KDE Connect TV');
    expect(kindLabel(dev({ kind: 'ferry' }))).toBe('');
  });
  it('shows reachability: connected, nearby, not reachable, offline', () => {
    expect(deviceState(dev({ kind: 'kdeconnect', connected: true }))).toEqual({ label: 'Connected', ok: true });
    expect(deviceState(dev({ kind: 'kdeconnect', nearby: true }))).toEqual({ label: 'Nearby', ok: false });
    expect(deviceState(dev({ kind: 'kdeconnect' }))).toEqual({ label: 'Not reachable', ok: false });
    expect(deviceState(dev({ kind: 'ferry' }))).toEqual({ label: 'Offline', ok: false });
    expect(deviceState(dev({ kind: 'kdeconnect', paired: false, nearby: true })).label).toBe('Nearby, not paired');
    expect(deviceState(dev({ kind: 'kdeconnect', paired: false, connected: true, nearby: true })).label).toBe('Connected, not paired');
    expect(deviceState(dev({ kind: 'kdeconnect', nearby: true, warning: 'another certificate' }))).toEqual({ label: 'Refused', ok: false });
  });
  it('knows a KDE pairing prompt by its device, else by its key and missing owner', () => {
    const kde = [dev({ id: 'k', kind: 'kdeconnect', paired: false })];
    const ferry = [dev({ id: 'f', kind: 'ferry', paired: false, owner: 'dana' })];
    expect(isKdePrompt({ device: 'k', owner: '', code: '1A2B3C4D' }, kde)).toBe(true);
    expect(isKdePrompt({ device: 'f', owner: 'dana', code: '123456' }, ferry)).toBe(false);
    // Not listed yet: only the prompt itself tells.
    expect(isKdePrompt({ device: 'x', owner: '', code: 'a1b2c3d4' }, [])).toBe(true);
    expect(isKdePrompt({ device: 'x', owner: 'dana', code: '123456' }, [])).toBe(false);
    expect(isKdePrompt({ device: 'x', owner: '', code: null }, [])).toBe(false);
  });
  it('says in Settings whether KDE Connect runs, why not, and what the next start changes', () => {
    const doc = { state: 'running', reason: null, port: 1716, nearby: 2, connected: 1 };
    const on = kdeSettingHint({ kdeconnect: true, kdeconnect_now: true }, doc, true);
    expect(on).toEqual({ now: 'Running now on TCP port 1716 · 2 nearby, 1 connected. Phones pair from their KDE Connect app.', running: true, later: '' });
    expect(kdeSettingHint({ kdeconnect: true, kdeconnect_now: true }, null, true).now).toBe('Running now. Phones pair from their KDE Connect app.');
    // Another KDE Connect holds the port: the doctor's reason, one full stop.
    const taken = { state: 'failed', reason: 'another KDE Connect (kdeconnectd or GSConnect) already uses UDP port 1716 on this computer.', port: null, nearby: 0, connected: 0 };
    const off = kdeSettingHint({ kdeconnect: true, kdeconnect_now: false }, taken, true);
    expect(off.running).toBe(false);
    expect(off.now).toBe('Not running now: another KDE Connect (kdeconnectd or GSConnect) already uses UDP port 1716 on this computer.');
    expect(off.later).toBe('Ferry tries again when it restarts.');
    expect(kdeSettingHint({ kdeconnect: true, kdeconnect_now: false }, { ...taken, state: 'off', reason: null }, true).later).toBe(
      'Ferry starts KDE Connect after it restarts.',
    );
    expect(kdeSettingHint({ kdeconnect: true, kdeconnect_now: false }, null, true).now).toMatch(/turned off for this run/);
    expect(kdeSettingHint({ kdeconnect: false, kdeconnect_now: false }, null, false)).toEqual({ now: 'Not running now: turned off.', running: false, later: '' });
    expect(kdeSettingHint({ kdeconnect: true, kdeconnect_now: true }, doc, false).later).toBe('Ferry stops KDE Connect after it restarts.');
  });

  describe('LocalSend', () => {
    const FP = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const ls = (over: Partial<DeviceDto> = {}) => dev({ kind: 'localsend', paired: false, ...over });
    it('tells LocalSend devices apart, and never offers them a share', () => {
      expect(isLs(ls())).toBe(true);
      expect(isKde(ls())).toBe(false);
      expect(isForeign(ls())).toBe(true);
      expect(isForeign(dev({ kind: 'ferry' }))).toBe(false);
      expect(canInvite(ls({ paired: true }))).toBe(false);
    });
    it('shows a phone for mobile, a laptop for desktop, a desktop for the rest', () => {
      expect(deviceIcon(ls({ device_type: 'mobile' }))).toBe('phone');
      expect(deviceIcon(ls({ device_type: 'desktop' }))).toBe('laptop');
      for (const t of ['web', 'headless', 'server', null]) expect(deviceIcon(ls({ device_type: t }))).toBe('desktop');
    });
    it('badges with the model when it says one', () => {
      expect(lsBadge(ls({ model: 'Pixel 8' }))).toBe('LocalSend · Pixel 8');
      expect(lsBadge(ls({ model: '  ' }))).toBe('LocalSend');
      expect(lsBadge(ls())).toBe('LocalSend');
    });
    it('groups fingerprints by 4, upper case; the short one is the first 16 digits', () => {
      expect(shortFingerprint(FP)).toBe('A1B2 C3D4 E5F6 0718');
      const full = groupFingerprint(FP);
      expect(full.split(' ')).toHaveLength(16);
      expect(full.replace(/ /g, '')).toBe(FP.toUpperCase());
      expect(groupFingerprint('ab:cd:ef')).toBe('ABCD EF');
      expect(shortFingerprint(null)).toBe('');
      const lines = fingerprintLines(FP);
      expect(lines).toHaveLength(2);
      expect(lines.join(' ')).toBe(full);
      expect(lines[0].split(' ')).toHaveLength(8);
      expect(fingerprintLines('')).toEqual([]);
    });
    it('is Nearby or Away, its warning a caution and not a refusal', () => {
      expect(deviceState(ls({ nearby: true, connected: true }))).toEqual({ label: 'Nearby', ok: true });
      expect(deviceState(ls({ nearby: false }))).toEqual({ label: 'Away', ok: false });
      expect(deviceState(ls({ nearby: true, warning: 'another certificate' })).label).toBe('Nearby');
    });
    it('says in Settings whether it runs, on which port, and why not', () => {
      const doc = { state: 'running', reason: null, port: 53317, nearby: 2, pin: false };
      const on = lsSettingHint({ localsend: true, localsend_now: true }, doc, true);
      expect(on.running).toBe(true);
      expect(on.now).toMatch(/^Running now on TCP port 53317 · 2 nearby\./);
      expect(on.later).toBe('');
      const failed = lsSettingHint({ localsend: true, localsend_now: false }, { ...doc, state: 'failed', reason: 'port 53317 is taken', port: null }, true);
      expect(failed.now).toBe('Not running now: port 53317 is taken.');
      expect(failed.later).toBe('Ferry tries again when it restarts.');
      expect(lsSettingHint({ localsend: true, localsend_now: false }, null, true).now).toMatch(/FERRY_LOCALSEND=0/);
      expect(lsSettingHint({ localsend: false, localsend_now: false }, null, true).later).toBe('Ferry starts LocalSend after it restarts.');
      expect(lsSettingHint({ localsend: true, localsend_now: true }, null, false).later).toBe('Ferry stops LocalSend after it restarts.');
    });
    it('sends the PIN only when typed: empty removes it, untouched keeps it', () => {
      expect(pinUpdate(false, '')).toBeNull();
      expect(pinUpdate(false, '1234')).toBeNull();
      expect(pinUpdate(true, '')).toBe('');
      expect(pinUpdate(true, ' 1234 ')).toBe('1234');
    });
  });
});

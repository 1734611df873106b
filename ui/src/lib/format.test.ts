import { describe, expect, it } from 'vitest';
import { formatBytes, formatCode, offerFolder, plural, timeAgo, validAddress } from './format';

describe('format', () => {
  it('formats bytes with SI units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.5 KB');
    expect(formatBytes(25_000_000)).toBe('25 MB');
    expect(formatBytes(-1)).toBe('—');
  });
  it('says how long ago', () => {
    const now = 1_000_000_000_000;
    expect(timeAgo(now - 10_000, now)).toBe('just now');
    expect(timeAgo(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(timeAgo(now - 3 * 3600_000, now)).toBe('3 h ago');
    expect(timeAgo(now - 26 * 3600_000, now)).toBe('yesterday');
  });
  it('groups the pairing code like the CLI', () => {
    expect(formatCode('123456')).toBe('123 456');
    expect(formatCode('123 456')).toBe('123 456');
    expect(formatCode('12')).toBe('12');
  });
  it('shows a KDE Connect key as it is, letters and all', () => {
    // 8 hex digits, six of them decimal: must not be read as a Ferry code.
    expect(formatCode('12ab3456')).toBe('12ab3456');
    expect(formatCode('1A2B3C4D')).toBe('1A2B3C4D');
  });
  it('checks HOST:PORT', () => {
    expect(validAddress('127.0.0.1:22010')).toBe(true);
    expect(validAddress('laptop.local:22010')).toBe(true);
    expect(validAddress('[::1]:22010')).toBe(true);
    expect(validAddress('127.0.0.1')).toBe(false);
    expect(validAddress('127.0.0.1:0')).toBe(false);
    expect(validAddress('127.0.0.1:70000')).toBe(false);
    expect(validAddress('a b:1')).toBe(false);
  });
  it('puts an offered share beside the default folder without clashing', () => {
    expect(offerFolder('/home/ann/Ferry', 'Photos', [])).toBe('/home/ann/Photos');
    expect(offerFolder('/home/ann/Ferry', 'Photos', ['/home/ann/Photos'])).toBe('/home/ann/Photos 2');
    expect(offerFolder('/home/ann/Ferry', 'Ferry', [])).toBe('/home/ann/Ferry shared');
    expect(offerFolder('/home/ann/Ferry', 'a/b', [])).toBe('/home/ann/a-b');
  });
  it('pluralizes', () => {
    expect(plural(1, 'file')).toBe('1 file');
    expect(plural(2, 'file')).toBe('2 files');
  });
});

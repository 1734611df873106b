import { describe, expect, it } from 'vitest';
import { attentionText, failedCount, overall, shareState } from './status';
import type { ShareStatusDto, StatusDto } from './bindings';

describe('status', () => {
  it('words a share attention note for the window', () => {
    expect(attentionText("refused a peer's deletion of 14 files on 2026-11-23 20:35:59Z; local files kept and sent back (`ferry share ack` clears this)"))
      .toBe("Refused a peer's deletion of 14 files on 2026-11-23 20:35:59Z; local files kept and sent back.");
    expect(attentionText('held deletes.')).toBe('Held deletes.');
    expect(attentionText('')).toBe('');
  });

  it('shows a share with items that cannot be synced as out of sync', () => {
    expect(shareState('idle', false, 0, 2)).toBe('Out of sync · 2 items failed');
    expect(shareState('idle', false, 0, 1)).toBe('Out of sync · 1 item failed');
    expect(shareState('idle', true, 0)).toBe('Up to date');
    expect(shareState('idle', false, 3, 2)).toBe('Syncing · 3 to fetch');
    const share = { state: 'idle', need: 0, last_error: null, attention: null, failed_items: [{ path: 'pipe', reason: 'a FIFO' }], failed_more: 4 } as unknown as ShareStatusDto;
    expect(failedCount(share)).toBe(5);
    expect(overall({ paused: false, shares: [share] } as unknown as StatusDto, [])).toBe('attention');
  });
});

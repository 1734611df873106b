import { describe, expect, it } from 'vitest';
import { attentionText } from './status';

describe('status', () => {
  it('words a share attention note for the window', () => {
    expect(attentionText("refused a peer's deletion of 14 files on 2026-11-23 20:35:59Z; local files kept and sent back (`ferry share ack` clears this)"))
      .toBe("Refused a peer's deletion of 14 files on 2026-11-23 20:35:59Z; local files kept and sent back.");
    expect(attentionText('held deletes.')).toBe('Held deletes.');
    expect(attentionText('')).toBe('');
  });
});

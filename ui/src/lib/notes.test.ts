import { describe, expect, it } from 'vitest';
import type { NoteDto } from './bindings';
import { conversations, receipt, totalUnread } from './notes';

const note = (over: Partial<NoteDto>): NoteDto => ({
  id: 'n',
  from: 'a',
  to: 'b',
  peer: 'p1',
  peer_name: 'Desk',
  outgoing: false,
  text: 'hi',
  sent_at: 1,
  state: 'unread',
  refused: null,
  ...over,
});

describe('notes', () => {
  it('groups by peer, counts unread incoming only, newest conversation first', () => {
    const cs = conversations(
      [
        note({ id: '1', sent_at: 5 }),
        note({ id: '2', sent_at: 3, outgoing: true, state: 'delivered' }),
        note({ id: '3', peer: 'p2', peer_name: 'Laptop', sent_at: 9, state: 'read' }),
      ],
      [{ id: 'p3', name: 'Tablet' }],
    );
    expect(cs.map((c) => c.name)).toEqual(['Laptop', 'Desk', 'Tablet']);
    expect(cs[1].notes.map((n) => n.id)).toEqual(['2', '1']);
    expect(cs[1].unread).toBe(1);
    expect(cs[0].unread).toBe(0);
    expect(totalUnread([note({}), note({ outgoing: true, state: 'queued' })])).toBe(1);
  });
  it('words receipts', () => {
    expect(receipt(note({ outgoing: true, state: 'read' }))).toBe('Read');
    expect(receipt(note({ outgoing: true, state: 'refused', refused: 'muted' }))).toBe('Not accepted: muted');
    expect(receipt(note({}))).toBe('');
  });
});

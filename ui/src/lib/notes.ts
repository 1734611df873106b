// Notes: conversations per device and unread counts. Pure: unit-tested.
import type { NoteDto } from './bindings';

export type Conversation = {
  peer: string;
  name: string;
  notes: NoteDto[];
  unread: number;
  last: number;
};

/** Groups notes per peer (oldest first inside), conversations newest first. */
export function conversations(notes: NoteDto[], devices: { id: string; name: string }[] = []): Conversation[] {
  const byPeer = new Map<string, Conversation>();
  for (const d of devices) byPeer.set(d.id, { peer: d.id, name: d.name, notes: [], unread: 0, last: 0 });
  for (const n of notes) {
    let c = byPeer.get(n.peer);
    if (!c) {
      c = { peer: n.peer, name: n.peer_name, notes: [], unread: 0, last: 0 };
      byPeer.set(n.peer, c);
    }
    c.notes.push(n);
    if (!n.outgoing && n.state === 'unread') c.unread++;
    c.last = Math.max(c.last, n.sent_at);
  }
  for (const c of byPeer.values()) c.notes.sort((a, b) => a.sent_at - b.sent_at);
  return [...byPeer.values()].sort((a, b) => b.last - a.last || a.name.localeCompare(b.name));
}

export function totalUnread(notes: NoteDto[]): number {
  return notes.filter((n) => !n.outgoing && n.state === 'unread').length;
}

/** A sent note's receipt as the conversation shows it. */
export function receipt(n: NoteDto): string {
  if (!n.outgoing) return '';
  switch (n.state) {
    case 'queued':
      return 'Waiting to send';
    case 'delivered':
      return 'Delivered';
    case 'read':
      return 'Read';
    case 'refused':
      return `Not accepted${n.refused ? `: ${n.refused}` : ''}`;
    default:
      return n.state;
  }
}

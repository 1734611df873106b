use super::*;

fn id(b: u8) -> DeviceId {
    DeviceId([b; 32])
}

/// A temp file holding `parts` (the chunks of a content), its chunk list, and a download of it
/// started at chunk `start` with `written` chunks on the file.
fn download(parts: &[Vec<u8>], start: usize, written: u64) -> (tempfile::TempDir, Download, watch::Sender<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    std::fs::write(&p, parts.concat()).unwrap();
    let file = Arc::new(std::fs::OpenOptions::new().read(true).write(true).open(&p).unwrap());
    let chunks: Vec<ChunkInfo> =
        parts.iter().map(|d| ChunkInfo { hash: ChunkHash::of(d), len: d.len() as u32 }).collect();
    let offsets = parts.iter().scan(0u64, |o, d| Some(std::mem::replace(o, *o + d.len() as u64))).collect();
    let (tx, rx) = watch::channel(written);
    let d = Download { content: ChunkHash::of(&parts.concat()), file, chunks, offsets, start, written: rx };
    (dir, d, tx)
}

#[test]
fn a_download_serves_only_written_chunks_that_still_match() {
    let parts: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 + i as usize]).collect();
    let offset = |i: usize| parts[..i].iter().map(|p| p.len() as u64).sum::<u64>();
    let at = |i: usize| (offset(i), parts[i].len() as u32, ChunkHash::of(&parts[i]));
    // Started at chunk 3: written so far 3 and 4 (the writer's first two).
    let (_dir, d, tx) = download(&parts, 3, 2);
    assert_eq!(d.have(), vec![(3, 5)]);
    let (o, l, h) = at(4);
    assert_eq!(d.read(o, l, h), Some(parts[4].clone()), "a written chunk is served");
    let (o, l, h) = at(0);
    assert_eq!(d.read(o, l, h), None, "chunk 0 is not written yet");
    tx.send_replace(3);
    assert_eq!(d.read(o, l, h), Some(parts[0].clone()), "now it is");
    assert_eq!(d.have(), vec![(0, 1), (3, 5)]);
    // Not one of the content's chunks: another hash, another length, an offset inside a chunk.
    assert_eq!(d.read(o, l, ChunkHash::of(b"other")), None);
    assert_eq!(d.read(o, l - 1, h), None);
    assert_eq!(d.read(o + 1, l, h), None);
    // The bytes on disk no longer hash to the chunk: not served.
    let (o4, l4, h4) = at(4);
    d.file.write_all_at(b"XX", o4).unwrap();
    assert_eq!(d.read(o4, l4, h4), None, "re-hashed before it is served");
}

#[test]
fn have_ranges_follow_the_rotation() {
    assert_eq!(have_ranges(10, 0, 0), vec![]);
    assert_eq!(have_ranges(10, 0, 4), vec![(0, 4)]);
    assert_eq!(have_ranges(10, 7, 3), vec![(7, 10)]);
    assert_eq!(have_ranges(10, 7, 5), vec![(0, 2), (7, 10)]);
    assert_eq!(have_ranges(10, 7, 99), vec![(0, 7), (7, 10)]);
    assert_eq!(have_ranges(10, 12, 2), vec![(0, 2)], "a start beyond the list is 0");
    for (n, start, w) in [(10, 7, 5), (3, 1, 3), (1, 0, 1)] {
        ferry_proto::wire::Message::check_progress(&have_ranges(n, start, w)).unwrap();
    }
}

#[test]
fn the_registry_forgets_a_download_when_its_guard_goes() {
    let downloads = Arc::new(Downloads::default());
    let p = RelPath::new("big.bin").unwrap();
    let (_dir, d, _tx) = download(&[vec![1; 10]], 0, 1);
    let guard = downloads.register(p.clone(), d);
    assert!(downloads.get(&p).is_some());
    drop(guard);
    assert!(downloads.get(&p).is_none());
}

#[test]
fn heard_progress_is_bounded_and_forgotten() {
    let heard = Heard::default();
    let (share, content) = (ShareId([1; 10]), ChunkHash::of(b"c"));
    let p = |i: usize| RelPath::new(format!("f{i}")).unwrap();
    assert!(heard.record(share, p(0), content, vec![(2, 5)]));
    assert!(heard.covers(share, &p(0), content, 4));
    assert!(!heard.covers(share, &p(0), content, 5));
    assert!(!heard.covers(share, &p(0), ChunkHash::of(b"other"), 4), "another content");
    assert_eq!(heard.chunks_in(share), 3);
    for i in 1..MAX_HEARD {
        assert!(heard.record(share, p(i), content, vec![(0, 1)]));
    }
    assert!(!heard.record(share, p(MAX_HEARD), content, vec![(0, 1)]), "past the cap");
    assert!(heard.record(share, p(0), content, vec![(0, 9)]), "an update of a known one still goes in");
    assert!(heard.record(share, p(0), content, vec![]), "the end of a download");
    assert!(!heard.covers(share, &p(0), content, 4));
    assert!(heard.record(share, p(MAX_HEARD), content, vec![(0, 1)]), "room again");
}

#[test]
fn source_choice_prefers_devices_that_announced_the_chunk() {
    let (a, b, c) = (id(1), id(2), id(3));
    // Chunk 7: b and c announced it, a holds the whole file.
    assert_eq!(candidates(7, 0, &[b, c], &[a]), vec![c, b, a]);
    assert_eq!(candidates(8, 0, &[b, c], &[a]), vec![b, c, a]);
    // A device both announcing and holding is asked once.
    assert_eq!(candidates(0, 0, &[b], &[a, b]), vec![b, a]);
    // Nobody announced it: the holders, spread by chunk as before.
    assert_eq!(candidates(1, 0, &[], &[a, b]), vec![b, a]);
    // The salt spreads devices asking for the same chunk.
    assert_eq!(candidates(7, 1, &[b, c], &[a]), vec![b, c, a]);
    assert!(candidates::<DeviceId>(3, 9, &[], &[]).is_empty());
}

#[test]
fn starts_are_apart_or_where_someone_else_has_chunks() {
    let (a, b, c, d) = (id(1), id(2), id(3), id(4));
    // Nobody else fetching it: file order.
    assert_eq!(start_for(100, b, &[], &[]), 0);
    // Two: halves.
    assert_eq!(start_for(100, b, &[a], &[]), 50);
    // Four devices: each in its own quarter, by rank.
    let starts: Vec<usize> = [a, b, c, d].iter().map(|me| start_for(100, *me, &[a, b, c, d], &[])).collect();
    assert_eq!(starts, vec![0, 25, 50, 75]);
    // Someone announced chunks: start at the longest range.
    assert_eq!(start_for(100, b, &[a, c], &[vec![(0, 3), (40, 60)], vec![(80, 85)]]), 40);
    // Nonsense beyond the content is ignored.
    assert_eq!(start_for(100, b, &[], &[vec![(200, 300)]]), 0);
}

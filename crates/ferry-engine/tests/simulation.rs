//! Seeded multi-device simulation: random edits, deletes and partial syncs between random
//! pairs of devices, then full rounds of reconnection; every device must end with the same live
//! content (conflict copies included), within a bounded number of rounds.

use std::collections::BTreeMap;

use ferry_engine::{Action, decide};
use ferry_proto::{ChunkHash, ChunkInfo, DeviceId, FileKind, FileRecord, RelPath, Seq, VersionVector};
use rand::{Rng, SeedableRng, rngs::StdRng};

struct Device {
    id: DeviceId,
    files: BTreeMap<RelPath, FileRecord>,
}

fn record(path: &RelPath, content: u64, version: VersionVector, by: DeviceId, mtime: i64) -> FileRecord {
    let hash = ChunkHash::of(&content.to_le_bytes());
    FileRecord {
        path: path.clone(),
        kind: FileKind::File,
        deleted: false,
        size: 8,
        mtime_ns: mtime,
        executable: false,
        version,
        seq: Seq(0),
        hash,
        chunks: vec![ChunkInfo { hash, len: 8 }],
        modified_by: by,
    }
}

fn edit(dev: &mut Device, path: &RelPath, content: u64, clock: i64) {
    let version = dev.files.get(path).map(|r| r.version.clone()).unwrap_or_default().bumped(dev.id);
    let rec = record(path, content, version, dev.id, clock);
    dev.files.insert(path.clone(), rec);
}

fn delete(dev: &mut Device, path: &RelPath) {
    if let Some(r) = dev.files.get_mut(path)
        && !r.deleted
    {
        r.deleted = true;
        r.version = r.version.bumped(dev.id);
        r.modified_by = dev.id;
    }
}

/// Applies `from`'s index to `to` the way a node does. Returns whether anything changed.
fn sync(from: &Device, to: &mut Device) -> bool {
    let mut changed = false;
    for (path, remote) in &from.files {
        let local = to.files.get(path).cloned();
        match decide(local.as_ref(), remote) {
            Action::Nothing | Action::ConflictLocalWins => {}
            Action::ConflictRemoteWinsArchive | Action::OverrideLocal => {
                unreachable!("only decide_with_policy settles by policy")
            }
            Action::Apply => {
                to.files.insert(path.clone(), remote.clone());
                changed = true;
            }
            Action::MergeVersion => {
                let l = to.files.get_mut(path).unwrap();
                l.version = l.version.merged(&remote.version);
                changed = true;
            }
            Action::ConflictRemoteWins => {
                let l = local.unwrap();
                let copy = path
                    .with_file_name(&format!(
                        "{}.sync-conflict-{}-{}",
                        path.file_name(),
                        l.mtime_ns,
                        l.modified_by.short()
                    ))
                    .unwrap();
                let version = to.files.get(&copy).map(|r| r.version.clone()).unwrap_or_default().bumped(to.id);
                let mut c = l.clone();
                c.path = copy.clone();
                c.version = version;
                c.modified_by = to.id;
                to.files.insert(copy, c);
                to.files.insert(path.clone(), remote.clone());
                changed = true;
            }
        }
    }
    changed
}

fn live(dev: &Device) -> BTreeMap<RelPath, ChunkHash> {
    dev.files.iter().filter(|(_, r)| !r.deleted).map(|(p, r)| (p.clone(), r.hash)).collect()
}

fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.gen_range(2..=4);
    let mut devs: Vec<Device> =
        (0..n).map(|i| Device { id: DeviceId([i as u8 + 1; 32]), files: BTreeMap::new() }).collect();
    let paths: Vec<RelPath> = (0..5).map(|i| RelPath::new(format!("d/f{i}")).unwrap()).collect();
    let mut clock = 0i64;
    for _ in 0..200 {
        clock += 1;
        let d = rng.gen_range(0..n);
        match rng.gen_range(0..10) {
            0..=4 => {
                let p = &paths[rng.gen_range(0..paths.len())];
                edit(&mut devs[d], p, rng.r#gen(), clock);
            }
            5 => {
                let p = &paths[rng.gen_range(0..paths.len())];
                delete(&mut devs[d], p);
            }
            _ => {
                let to = rng.gen_range(0..n);
                if to != d {
                    let (a, b) = if d < to {
                        let (x, y) = devs.split_at_mut(to);
                        (&x[d], &mut y[0])
                    } else {
                        let (x, y) = devs.split_at_mut(d);
                        (&y[0], &mut x[to])
                    };
                    sync(a, b);
                }
            }
        }
    }
    // Reconnect everyone until quiet; bounded so a livelock fails instead of hanging.
    let mut rounds = 0;
    loop {
        let mut changed = false;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let from = Device { id: devs[i].id, files: devs[i].files.clone() };
                    changed |= sync(&from, &mut devs[j]);
                }
            }
        }
        if !changed {
            break;
        }
        rounds += 1;
        assert!(rounds < 50, "seed {seed}: no convergence after 50 rounds");
    }
    let first = live(&devs[0]);
    for d in &devs[1..] {
        assert_eq!(live(d), first, "seed {seed}: devices disagree");
    }
}

#[test]
fn random_histories_converge() {
    for seed in 0..300 {
        run(seed);
    }
}

//! The campaign's seeded workload. Every content is written whole before it gets its name (a
//! staged file renamed into place), so Ferry never sees a half-written file of ours; on B's side
//! (the mount) the staged file and both directories are also fsynced, as a careful program
//! would: what a cut takes from B is then Ferry's own unsynced work, never the test's.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use rand::Rng;

use super::{Campaign, MAX_FILES};
use crate::common::{self, path_str, random_bytes, tree};

/// Small files: up to this many bytes (at least 1: no content the workload writes is empty, so
/// an empty file after a cut is always Ferry's).
const SMALL_MAX: usize = 20_000;
/// Big files: a few MiB, so a cut can land in the middle of one's pull.
const BIG_MIN: usize = 2 << 20;
const BIG_MAX: usize = 6 << 20;
/// Files in a new tree: above ferry-fs's group size for one `syncfs` (32), so that a tree
/// arriving at B goes through the group commit (the LazyFS report's case).
const TREE: std::ops::RangeInclusive<usize> = 40..=80;
/// Operations per burst.
const BURST: std::ops::RangeInclusive<usize> = 3..=8;

fn fsync_dir(p: &Path) {
    fs::File::open(p).and_then(|f| f.sync_all()).unwrap_or_else(|e| panic!("fsync {}: {e}", p.display()));
}

impl Campaign {
    fn content(&mut self, len: usize) -> Vec<u8> {
        self.counter += 1;
        let data = random_bytes(self.seed.wrapping_mul(1_000_003).wrapping_add(self.counter), len.max(1));
        self.written.insert(blake3::hash(&data).to_hex().to_string());
        data
    }

    /// Writes `data` at `rel` in A's share, whole, through a rename.
    fn put_a(&mut self, rel: &str, data: &[u8]) {
        self.counter += 1;
        let staged = self.stage_a.join(format!("s{}", self.counter));
        fs::write(&staged, data).unwrap();
        let target = self.dir_a.join(rel);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::rename(&staged, &target).unwrap();
    }

    /// Writes `data` at `rel` in B's share (on the mount), whole and durable.
    fn put_b(&mut self, rel: &str, data: &[u8]) {
        self.counter += 1;
        let staged = self.stage_b.join(format!("s{}", self.counter));
        let mut f = fs::File::create(&staged).unwrap();
        std::io::Write::write_all(&mut f, data).unwrap();
        f.sync_all().unwrap();
        drop(f);
        let target = self.dir_b.join(rel);
        if fs::rename(&staged, &target).is_err() {
            // Ferry moved the file or its folder meanwhile: the edit did not happen.
            let _ = fs::remove_file(&staged);
            return;
        }
        fsync_dir(target.parent().unwrap());
        fsync_dir(&self.stage_b);
    }

    /// A's files (conflict copies left alone), sorted: the seed decides which one is picked.
    fn files_a(&self) -> Vec<String> {
        let t = tree(&self.dir_a);
        t.into_iter()
            .filter(|(k, v)| v.starts_with("file:") && !k.contains(".sync-conflict-"))
            .map(|(k, _)| k)
            .collect()
    }

    pub(super) fn new_file(&mut self, big: bool) -> String {
        let len = if big { self.rng.gen_range(BIG_MIN..=BIG_MAX) } else { self.rng.gen_range(1..=SMALL_MAX) };
        let rel = format!("d{}/f{}.{}", self.rng.gen_range(0..4), self.counter + 1, if big { "bin" } else { "txt" });
        let data = self.content(len);
        self.put_a(&rel, &data);
        rel
    }

    /// A seeded burst of operations; returns the paths it touched and how many conflicts it
    /// tried to make.
    pub(super) fn burst(&mut self) -> (HashSet<String>, usize) {
        let mut touched = HashSet::new();
        let mut conflicts = 0;
        for _ in 0..self.rng.gen_range(BURST) {
            let files = self.files_a();
            let pick = |c: &mut Campaign| files.get(c.rng.gen_range(0..files.len().max(1))).cloned();
            match self.rng.gen_range(0..100) {
                0..30 if files.len() < MAX_FILES => {
                    touched.insert(self.new_file(false));
                }
                30..36 if files.len() < MAX_FILES => {
                    touched.insert(self.new_file(true));
                }
                36..56 => {
                    if let Some(p) = pick(self) {
                        let len = self.rng.gen_range(1..=SMALL_MAX);
                        let data = self.content(len);
                        self.put_a(&p, &data);
                        touched.insert(p);
                    }
                }
                56..68 => {
                    if let Some(p) = pick(self) {
                        let to = format!(
                            "d{}/moved{}-{}",
                            self.rng.gen_range(0..4),
                            self.counter,
                            p.rsplit('/').next().unwrap()
                        );
                        self.counter += 1;
                        fs::create_dir_all(self.dir_a.join(&to).parent().unwrap()).unwrap();
                        fs::rename(self.dir_a.join(&p), self.dir_a.join(&to)).unwrap();
                        touched.extend([p, to]);
                    }
                }
                // Few deletes at a time: the mass-delete guard holds more than half the files.
                68..76 if files.len() > 10 => {
                    if let Some(p) = pick(self) {
                        fs::remove_file(self.dir_a.join(&p)).unwrap();
                        touched.insert(p);
                    }
                }
                76..84 => {
                    if let Some(p) = pick(self) {
                        // The newest version back, on B (it may have none yet: then it refuses).
                        let _ = self.b.try_cli(&["restore", path_str(&self.dir_b.join(&p))]);
                        touched.insert(p);
                    }
                }
                84..90 => {
                    if let Some(p) = pick(self).filter(|p| self.dir_b.join(p).is_file()) {
                        let (x, y) = (self.rng.gen_range(1..=SMALL_MAX), self.rng.gen_range(1..=SMALL_MAX));
                        let (x, y) = (self.content(x), self.content(y));
                        self.put_b(&p, &y);
                        self.put_a(&p, &x);
                        self.conflicts_made += 1;
                        conflicts += 1;
                        touched.insert(p);
                    }
                }
                90..94 => self.send(),
                94..96 if files.len() + TREE.end() < MAX_FILES => {
                    touched.extend(self.new_tree());
                }
                96..97 => {
                    // A whole tree goes (what it holds stays under the mass-delete threshold
                    // while the share holds more than twice as many files).
                    let trees: Vec<String> =
                        files.iter().filter_map(|f| f.strip_suffix("/x.txt")).map(String::from).collect();
                    if let Some(t) = trees.first().filter(|_| files.len() > 3 * TREE.end()) {
                        // Conflict copies in it go too.
                        let gone: Vec<String> =
                            tree(&self.dir_a).into_keys().filter(|f| f.starts_with(&format!("{t}/"))).collect();
                        fs::remove_dir_all(self.dir_a.join(t)).unwrap();
                        touched.extend(gone);
                    }
                }
                _ => {
                    self.counter += 1;
                    self.a.cli(&["note", "send", "beta", &format!("note {}", self.counter)]);
                }
            }
        }
        // Conflict copies are named after the path: whatever the burst touched may get one.
        let copies: Vec<String> = common::conflict_copies(&tree(&self.dir_b));
        touched.extend(copies);
        (touched, conflicts)
    }

    /// A new folder of small files, written in one go (as a copy or an unpacked archive would).
    fn new_tree(&mut self) -> Vec<String> {
        self.counter += 1;
        let (top, n) = (format!("t{}", self.counter), self.rng.gen_range(TREE));
        let mut paths = Vec::with_capacity(n + 1);
        for i in 0..n {
            let rel = if i == 0 { format!("{top}/x.txt") } else { format!("{top}/s{}/f{i}.txt", i % 3) };
            let len = self.rng.gen_range(1..=2000);
            let data = self.content(len);
            self.put_a(&rel, &data);
            paths.push(rel);
        }
        paths
    }

    /// A one-shot send of a new file from A to B (queued; B accepts sends from A).
    fn send(&mut self) {
        let len = self.rng.gen_range(1..=(BIG_MAX / 2));
        self.counter += 1;
        let data = random_bytes(self.seed.wrapping_mul(7_000_003).wrapping_add(self.counter), len);
        self.sent.insert(blake3::hash(&data).to_hex().to_string());
        let p = self.stage_a.join(format!("send-{}.bin", self.counter));
        fs::write(&p, &data).unwrap();
        self.a.cli(&["send", "beta", path_str(&p), "--no-wait"]);
    }
}

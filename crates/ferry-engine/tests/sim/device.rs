//! One simulated device: a disk (path -> content), its index, its view of every other member's
//! index, its version history and its guard memory. Scans and pulls go through exactly the
//! engine's functions; this file only does the "IO" around them (the disk and the index are
//! maps), the way ferry-node's share worker does with real files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ferry_engine::guard::{self, GuardDecision, GuardInput, MassDeleteGuard};
use ferry_engine::pull::{self, LocalFate, Step};
use ferry_engine::scan::{self, Seen};
use ferry_engine::{ChunkSource, Entry, VersionReason, plan_chunks};
use ferry_proto::{ChunkHash, ChunkInfo, ConflictPolicy, DeviceId, FileKind, FileRecord, RelPath, ShareMode};

/// Pull passes per wake-up, as ferry-node's `MAX_PULL_PASSES`.
const MAX_PULL_PASSES: usize = 4;
/// The share's mass-delete threshold (the node's default).
pub const PERCENT: u8 = ferry_engine::policy::MASS_DELETE_PERCENT;

/// A file on a simulated disk: its content is named by its hash (one chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    pub hash: ChunkHash,
    pub mtime_ns: i64,
    pub inode: u64,
}

/// The size of every simulated file (one 8-byte chunk).
const SIZE: u64 = 8;

pub struct Device {
    pub id: DeviceId,
    pub mode: ShareMode,
    pub policy: ConflictPolicy,
    pub index: BTreeMap<RelPath, Entry>,
    pub disk: BTreeMap<RelPath, OnDisk>,
    /// What each other member last told us (its sent records).
    pub views: BTreeMap<DeviceId, BTreeMap<RelPath, FileRecord>>,
    /// Contents kept as versions.
    pub history: BTreeSet<ChunkHash>,
    /// In memory: lost on a restart.
    pub guard: MassDeleteGuard,
    /// Stored settings: the user's allowance of a held mass delete, and an open prompt.
    pub allowed: bool,
    pub prompt_open: bool,
    next_inode: u64,
    /// Moves on every change to the index or the disk (for "quiet" detection).
    pub changes: u64,
    /// Conflict copies whose name was taken already ([`pull::copy_name_taken`]).
    pub copy_names_taken: u64,
}

/// Outcome of one pull.
#[derive(Default, Debug)]
pub struct Pulled {
    pub applied: usize,
    pub failed: usize,
}

impl Device {
    pub fn new(id: DeviceId, mode: ShareMode, policy: ConflictPolicy, members: &[DeviceId]) -> Device {
        Device {
            id,
            mode,
            policy,
            index: BTreeMap::new(),
            disk: BTreeMap::new(),
            views: members.iter().filter(|m| **m != id).map(|m| (*m, BTreeMap::new())).collect(),
            history: BTreeSet::new(),
            guard: MassDeleteGuard::new(),
            allowed: false,
            prompt_open: false,
            next_inode: 1,
            changes: 0,
            copy_names_taken: 0,
        }
    }

    fn inode(&mut self) -> u64 {
        self.next_inode += 1;
        self.next_inode
    }

    /// The user writes `hash` at `path` (then the watcher's scan).
    pub fn write(&mut self, path: &RelPath, hash: ChunkHash, now_ns: i64) {
        let inode = self.inode();
        self.disk.insert(path.clone(), OnDisk { hash, mtime_ns: now_ns, inode });
        self.scan(std::slice::from_ref(path));
    }

    /// The user deletes these paths at once (then one scan).
    pub fn remove(&mut self, paths: &[RelPath]) {
        for p in paths {
            self.disk.remove(p);
        }
        self.scan(paths);
    }

    /// The user renames `from` to `to` (same inode and mtime).
    pub fn rename(&mut self, from: &RelPath, to: &RelPath) {
        if let Some(f) = self.disk.remove(from) {
            self.disk.insert(to.clone(), f);
        }
        self.scan(&[from.clone(), to.clone()]);
    }

    pub fn live_disk(&self) -> BTreeMap<RelPath, ChunkHash> {
        self.disk.iter().map(|(p, f)| (p.clone(), f.hash)).collect()
    }

    /// What this device sends: its records that are not local changes.
    pub fn sent(&self) -> impl Iterator<Item = &FileRecord> {
        self.index.values().filter(|e| !e.local_change).map(|e| &e.record)
    }

    /// Scans `paths` the way the scanner reports them (only what differs from the index), then
    /// commits through [`scan::updates`] and [`scan::effect`].
    pub fn scan(&mut self, paths: &[RelPath]) {
        let mut seen = Vec::new();
        for p in paths {
            match self.disk.get(p) {
                Some(f) => {
                    let unchanged = self
                        .index
                        .get(p)
                        .is_some_and(|e| !e.record.deleted && e.record.mtime_ns == f.mtime_ns && e.inode == f.inode);
                    if !unchanged {
                        seen.push(Seen::Upsert(scan::Observed {
                            path: p.clone(),
                            kind: FileKind::File,
                            size: SIZE,
                            mtime_ns: f.mtime_ns,
                            inode: f.inode,
                            executable: false,
                            hash: f.hash,
                            chunks: vec![ChunkInfo { hash: f.hash, len: SIZE as u32 }],
                        }));
                    }
                }
                None if self.index.get(p).is_some_and(|e| !e.record.deleted) => seen.push(Seen::Deleted(p.clone())),
                None => {}
            }
        }
        let updates = scan::updates(&seen, &|p| self.index.get(p).cloned(), self.mode, self.id);
        let effects: Vec<scan::Effect> =
            updates.iter().map(|u| scan::effect(u, self.index.get(&u.entry.record.path), self.id)).collect();
        for (u, e) in updates.into_iter().zip(effects) {
            if let Some(k) = e.keep {
                // The snapshot link is always there in the simulation.
                self.history.insert(k.hash);
            }
            self.commit(u.entry);
        }
    }

    pub fn commit(&mut self, entry: Entry) {
        if std::env::var("FERRY_SIM_PATH").is_ok_and(|p| p == entry.record.path.as_str()) {
            let r = &entry.record;
            eprintln!(
                "  {} commits {}{} v{:?} by {} lc={}",
                self.id.short(),
                if r.deleted { "DEL " } else { "" },
                &r.hash.to_hex()[..6],
                r.version.0.iter().map(|(d, c)| format!("{}:{c}", &d.short()[..3])).collect::<Vec<_>>(),
                r.modified_by.short(),
                entry.local_change
            );
        }
        if self.index.get(&entry.record.path) != Some(&entry) {
            self.index.insert(entry.record.path.clone(), entry);
            self.changes += 1;
        }
    }

    /// Pulls (up to [`MAX_PULL_PASSES`] passes while something is applied), fetching content
    /// only from `served` (the connected peers' disks), then scans the conflict copies it made.
    pub fn pull(&mut self, served: &BTreeMap<DeviceId, BTreeMap<RelPath, ChunkHash>>, now_ms: i64) -> Pulled {
        let mut total = Pulled::default();
        if !self.mode.receives() {
            return total;
        }
        let mut copies = Vec::new();
        for _ in 0..MAX_PULL_PASSES {
            let p = self.pull_pass(served, now_ms, &mut copies);
            total.failed = p.failed;
            total.applied += p.applied;
            if p.applied == 0 {
                break;
            }
        }
        self.scan(&copies);
        total
    }

    /// The plan of one pass: for every path, [`pull::plan_path`] over the members' views.
    fn plan(&self) -> BTreeMap<RelPath, pull::Wanted> {
        let members: Vec<DeviceId> = self.views.keys().copied().collect();
        let paths: BTreeSet<&RelPath> = self.index.keys().chain(self.views.values().flat_map(|v| v.keys())).collect();
        let mut wanted = BTreeMap::new();
        for p in paths {
            let remotes: Vec<Option<FileRecord>> = members.iter().map(|d| self.views[d].get(p).cloned()).collect();
            let local = self.index.get(p).map(|e| &e.record);
            if let Some(w) = pull::plan_path(local, &members, &remotes, self.policy) {
                wanted.insert(p.clone(), w);
            }
        }
        wanted
    }

    fn pull_pass(
        &mut self,
        served: &BTreeMap<DeviceId, BTreeMap<RelPath, ChunkHash>>,
        now_ms: i64,
        copies: &mut Vec<RelPath>,
    ) -> Pulled {
        let mut wanted = self.plan();
        let live_files = self.index.values().filter(|e| e.record.is_file()).count();
        let deletes = guard::wanted_deletes(wanted.values().map(|w| &w.target), |p| {
            self.index.get(p).is_some_and(|e| e.record.is_file())
        });
        let input = GuardInput { live_files, percent: PERCENT, allowed: self.allowed, prompt_open: self.prompt_open };
        let decision = self.guard.check(&deletes, input, now_ms);
        if std::env::var("FERRY_SIM_TRACE").is_ok() && !deletes.is_empty() {
            eprintln!("{} guard {} deletes of {live_files} at {now_ms}: {decision:?}", self.id.short(), deletes.len());
        }
        match decision {
            GuardDecision::Apply => {}
            GuardDecision::ApplyAllowed => self.allowed = false,
            GuardDecision::Hold { paths, prompt } => {
                for p in &paths {
                    wanted.remove(p);
                }
                self.prompt_open |= prompt.is_some();
            }
        }
        let holders: HashMap<RelPath, Vec<DeviceId>> =
            wanted.iter().map(|(p, w)| (p.clone(), w.holders.clone())).collect();
        let mut items = pull::ordered(wanted.into_values().map(|w| (w.target, w.action)));
        let local_chunks = pull::local_chunks(self.index.values(), &pull::needed_chunks(&items));
        let mut out = Pulled::default();
        let mut deleted = 0;
        self.apply_moves(&mut items, &mut out, &mut deleted);
        for (target, action) in items {
            let local = self.index.get(&target.path).cloned();
            if std::env::var("FERRY_SIM_PATH").is_ok_and(|p| p == target.path.as_str()) {
                eprintln!(
                    "  {} pull {action:?} of {} by {}",
                    self.id.short(),
                    &target.hash.to_hex()[..6],
                    target.modified_by.short()
                );
            }
            match pull::step(action, local.as_ref().map(|e| &e.record), &target, self.id) {
                Step::Nothing => {}
                Step::Record(record) | Step::KeepOurs(record) => {
                    let e = local.expect("merge and override imply a local entry");
                    self.commit(Entry { record, ..e });
                    out.applied += 1;
                }
                Step::Write { record, fate, applied, .. } => {
                    let sources = &holders[&target.path];
                    if self.write_target(&record, local.as_ref(), fate, sources, served, &local_chunks, copies) {
                        out.applied += 1;
                        deleted += u64::from(applied == pull::Applied::Deleted);
                    } else {
                        out.failed += 1;
                    }
                }
            }
        }
        self.guard.applied_deletes(deleted, now_ms);
        out
    }

    /// The renames of a pass ([`pull::pair_moves`]), applied as renames when the disk agrees.
    fn apply_moves(
        &mut self,
        items: &mut Vec<(FileRecord, ferry_engine::Action)>,
        out: &mut Pulled,
        deleted: &mut u64,
    ) {
        let local: HashMap<RelPath, Entry> =
            items.iter().filter_map(|(t, _)| self.index.get(&t.path).map(|e| (t.path.clone(), e.clone()))).collect();
        let mut done = BTreeSet::new();
        for (n, d) in pull::pair_moves(items, &local) {
            let (new, del) = (items[n].0.clone(), items[d].0.clone());
            let old = &local[&del.path];
            let on_disk = self.disk.get(&del.path).is_some_and(|f| f.inode == old.inode && f.hash == old.record.hash);
            if !on_disk || self.disk.contains_key(&new.path) {
                continue;
            }
            let mut f = self.disk.remove(&del.path).expect("checked");
            f.mtime_ns = new.mtime_ns;
            self.disk.insert(new.path.clone(), f);
            let record = pull::record_for(self.index.get(&new.path).map(|e| &e.record), &new, self.id);
            let tomb = pull::record_for(Some(&old.record), &del, self.id);
            self.commit(Entry { record, inode: f.inode, local_change: false });
            self.commit(Entry { record: tomb, inode: 0, local_change: false });
            out.applied += 2;
            *deleted += 1;
            done.extend([n, d]);
        }
        let mut i = 0;
        items.retain(|_| {
            i += 1;
            !done.contains(&(i - 1))
        });
    }

    /// Makes the disk match `target` the way `Worker::apply` does; false when it cannot now
    /// (content unavailable, something unindexed in the way, a conflict name taken).
    #[allow(clippy::too_many_arguments)]
    fn write_target(
        &mut self,
        target: &FileRecord,
        local: Option<&Entry>,
        fate: LocalFate,
        sources: &[DeviceId],
        served: &BTreeMap<DeviceId, BTreeMap<RelPath, ChunkHash>>,
        local_chunks: &HashMap<ChunkHash, (RelPath, u64)>,
        copies: &mut Vec<RelPath>,
    ) -> bool {
        let path = &target.path;
        let live_here = local.filter(|e| !e.record.deleted);
        // The disk must still be what the index says (else the node rescans first).
        let disk_ok = match live_here {
            Some(e) => self.disk.get(path).is_some_and(|f| f.hash == e.record.hash),
            None => !self.disk.contains_key(path),
        };
        if !disk_ok {
            copies.push(path.clone());
            return false;
        }
        if target.is_file() {
            let fetchable = sources.iter().any(|s| served.get(s).and_then(|m| m.get(path)) == Some(&target.hash));
            let all = plan_chunks(target, local_chunks).into_iter().all(|src| match src {
                // A local chunk is verified before use: it must still be there.
                ChunkSource::Local { path: lp, .. } => {
                    self.disk.get(&lp).is_some_and(|f| f.hash == target.hash) || fetchable
                }
                ChunkSource::Remote => fetchable,
            });
            if !all {
                return false;
            }
        }
        match fate {
            LocalFate::ConflictCopy => {
                let l = &live_here.expect("a conflict copy implies a live local file").record;
                let copy = copy_name(path, l.mtime_ns, &l.modified_by);
                if self.disk.contains_key(&copy) {
                    // `rename_within` never overwrites: the engine says what to do instead.
                    let f = self.disk.remove(path).expect("checked");
                    assert_eq!(pull::copy_name_taken(fate), LocalFate::Archive(VersionReason::Conflict));
                    self.history.insert(f.hash);
                    self.copy_names_taken += 1;
                } else {
                    let f = self.disk.remove(path).expect("checked");
                    self.disk.insert(copy.clone(), f);
                    copies.push(copy);
                }
            }
            LocalFate::Archive(_) => {
                let f = self.disk.remove(path).expect("checked");
                self.history.insert(f.hash);
            }
            LocalFate::RemoveEntry => {
                self.disk.remove(path);
            }
            LocalFate::Untouched => {}
        }
        let inode = if target.deleted {
            self.disk.remove(path);
            0
        } else {
            let inode = self.inode();
            self.disk.insert(path.clone(), OnDisk { hash: target.hash, mtime_ns: target.mtime_ns, inode });
            inode
        };
        self.commit(Entry { record: target.clone(), inode, local_change: false });
        self.changes += 1;
        true
    }
}

/// The simulation's conflict copy name, shaped like `ferry_fs::conflict_name`'s: the same
/// inputs (the loser's mtime and writer, so every device names one loser alike) and the mark
/// before the extension, so `a.txt`'s copy `a.sync-conflict-...txt` sorts (and is applied)
/// before `a.txt` itself.
pub fn copy_name(path: &RelPath, mtime_ns: i64, by: &DeviceId) -> RelPath {
    let name = path.file_name();
    let middle = format!(".sync-conflict-{mtime_ns}-{}", by.short());
    let named = match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => format!("{}{middle}{}", &name[..i], &name[i..]),
        _ => format!("{name}{middle}"),
    };
    path.with_file_name(&named).unwrap()
}

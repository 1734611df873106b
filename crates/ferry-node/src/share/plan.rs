//! Planning a pull pass: which paths it looks at ([`PullScope`]), what it wants there
//! ([`plan_pull`]), the order devices fetching the same files apply them in ([`spread_files`]),
//! and which of the wanted chunks this device already holds ([`local_chunks_of`]).

use super::*;
use crate::records;
use ferry_engine::pull;
use ferry_proto::Seq;

/// Which paths a pull pass plans (see [`plan_pull`]).
pub(super) enum PullScope {
    /// The share's paths in path order, from the first after `after` (the start with None),
    /// until `cap` live paths are wanted: a window of a big pass. A round's first window (from
    /// the start) also holds every deletion of the share, wherever it is; later ones none.
    Window { after: Option<RelPath>, cap: usize },
    /// These paths alone, by point lookups (see `need.rs`): the cost follows them, not the share.
    Paths(Vec<RelPath>),
}

#[cfg(test)]
impl PullScope {
    /// Every path of the share in one plan.
    pub(super) const ALL: PullScope = PullScope::Window { after: None, cap: usize::MAX };
}

/// What a pull pass works on (see [`plan_pull`]).
pub(super) struct PullPlan {
    /// For each path to change, the one remote record to move to and what to do.
    pub(super) wanted: HashMap<RelPath, (FileRecord, Action)>,
    /// Our entries at the wanted paths.
    pub(super) local: HashMap<RelPath, LocalEntry>,
    /// For each wanted path, the members whose record has the wanted content.
    pub(super) holders: HashMap<RelPath, Vec<DeviceId>>,
    /// Live files in the local index among the paths planned (for the mass-delete guard: every
    /// path's in a round's first window, which walks the whole share).
    pub(super) live_files: usize,
    pub(super) states: WalkStates,
    /// A window that reached its cap: the next one starts after this path.
    pub(super) next: Option<RelPath>,
    /// The plan holds every wanted path of the share (a window from the start that did not
    /// reach its cap).
    pub(super) whole: bool,
}

/// Walks the local index and every member's index side by side, in path order, keeping only
/// the paths where some member has a record this device should move to (one path decoded at a
/// time: the memory is that of the work, not of the share). `scope` says which paths: a window
/// of them, or some paths by point lookups.
pub(super) fn plan_pull(
    s: &ferry_store::Store,
    id: &ShareId,
    members: &[DeviceId],
    policy: ferry_proto::ConflictPolicy,
    scope: &PullScope,
) -> Result<PullPlan, ferry_store::StoreError> {
    // How a test sees whether a pass planned at all (tests/tests/restart_mark.rs).
    if crate::fault::failing("pull.plan") {
        return Err(ferry_store::StoreError::Invalid("fault point pull.plan".into()));
    }
    let mut plan = PullPlan {
        wanted: HashMap::new(),
        local: HashMap::new(),
        holders: HashMap::new(),
        live_files: 0,
        states: WalkStates { generation: 0, local: Default::default(), remotes: Vec::new() },
        next: None,
        whole: false,
    };
    let (cap, first, later) = match *scope {
        PullScope::Window { cap, ref after } => (cap, after.is_none(), after.is_some()),
        PullScope::Paths(_) => (usize::MAX, false, false),
    };
    // Live paths wanted so far. Deletions do not count: a round's first window keeps every
    // deletion of the share (the guard counts them all, renames pair with them), so the later
    // windows skip them.
    let mut live_wanted = 0;
    let visit = |local: Option<LocalEntry>, remotes: Vec<Option<FileRecord>>| {
        let l = local.as_ref().map(|e| &e.record);
        if l.is_some_and(FileRecord::is_file) {
            plan.live_files += 1;
        }
        let Some(w) = pull::plan_path(l, members, &remotes, policy) else { return Ok(true) };
        let deleted = w.target.deleted;
        if (deleted && later) || (!deleted && live_wanted >= cap) {
            // A later window's deletion (its round's first window has it), or a live path past
            // the first window's cap (the next window's): the first window walks on only to
            // count the live files and collect the deletions.
            return Ok(true);
        }
        let path = w.target.path.clone();
        plan.holders.insert(path.clone(), w.holders);
        plan.wanted.insert(path.clone(), (w.target, w.action));
        if let Some(e) = local {
            plan.local.insert(path.clone(), e);
        }
        if !deleted {
            live_wanted += 1;
            if live_wanted == cap {
                plan.next = Some(path);
                return Ok(first);
            }
        }
        Ok(true)
    };
    let states = match scope {
        PullScope::Window { after, .. } => s.walk_share_from(id, members, after.as_ref(), visit)?,
        PullScope::Paths(paths) => {
            let mut visit = visit;
            s.walk_paths(id, members, paths, |l, r| visit(l, r).map(drop))?
        }
    };
    plan.whole = matches!(scope, PullScope::Window { after: None, .. }) && plan.next.is_none();
    plan.states = states;
    Ok(plan)
}

/// Rotates the live files and links of `items` (ordered: after the directories, before the
/// deletions, so any order among them is right) to start at a place given by this device's
/// rank among the share's devices (see [`crate::swarm::start_for`]): devices fetching the same
/// new files start apart, and each can fetch from the others what they applied first.
pub(super) fn spread_files(items: &mut [(FileRecord, Action)], me: DeviceId, members: &[DeviceId]) {
    if members.len() < 2 {
        return; // one other device: nobody else fetches these, keep path order
    }
    let is_dir = |t: &FileRecord| !t.deleted && t.kind == FileKind::Dir;
    let lo = items.iter().position(|(t, _)| !is_dir(t)).unwrap_or(items.len());
    let hi = items.iter().position(|(t, _)| t.deleted).unwrap_or(items.len()).max(lo);
    let files = &mut items[lo..hi];
    let start = crate::swarm::start_for(files.len(), me, members, &[]);
    files.rotate_left(start);
}

/// Where this device holds each of the `needed` chunks (a file and an offset), from one
/// streaming pass over the local index; which entries may lend their chunks is the engine's
/// call ([`pull::local_chunks`], asked one entry at a time so the index is never all in memory).
/// With `upto`, only the entries not written since the index stood at that seq are asked: a
/// round's later windows look at what this device held when the round began, not at what the
/// round's own windows fetched (that would make each window cost the files before it).
pub(super) fn local_chunks_of(
    s: &ferry_store::Store,
    id: &ShareId,
    needed: &std::collections::HashSet<ChunkHash>,
    upto: Option<Seq>,
) -> Result<HashMap<ChunkHash, (RelPath, u64)>, ferry_store::StoreError> {
    let mut found: HashMap<ChunkHash, (RelPath, u64)> = HashMap::new();
    let visit = |e| {
        for (hash, at) in pull::local_chunks([&records::into_entry(e)], needed) {
            found.entry(hash).or_insert(at);
        }
        Ok(found.len() < needed.len())
    };
    match upto {
        None => s.for_each_local(id, visit)?,
        Some(seq) => s.for_each_local_upto(id, seq, visit)?,
    }
    Ok(found)
}

/// A windowed round (see [`PullScope::Window`]) between its windows: the deletions its first
/// window found, offered to every window so its new files can pair with them (a rename moves
/// the file instead of copying it), applied by the last window; and the index's seq when the
/// round began.
#[derive(Default)]
pub(super) struct Round {
    deletions: HashMap<RelPath, (FileRecord, Action)>,
    local: HashMap<RelPath, LocalEntry>,
    /// Local seq when the round began (None outside rounds): later windows look for reusable
    /// chunks in what this device held then (see [`local_chunks_of`]).
    pub(super) began_at: Option<Seq>,
}

impl Round {
    /// A round that begins with the local index at `seq`.
    pub(super) fn beginning_at(seq: Seq) -> Round {
        Round { began_at: Some(seq), ..Default::default() }
    }

    /// Adds the round's deletions (and our entries at them) to a window's wanted paths. A path
    /// the window planned itself keeps the window's plan: its record is newer than the round's
    /// first window (a path deleted then and made again since is wanted live, not deleted).
    pub(super) fn offer(
        &mut self,
        wanted: &mut HashMap<RelPath, (FileRecord, Action)>,
        local: &mut HashMap<RelPath, LocalEntry>,
    ) {
        for (path, deletion) in self.deletions.drain() {
            if let std::collections::hash_map::Entry::Vacant(slot) = wanted.entry(path) {
                if let Some(ours) = self.local.remove(slot.key()) {
                    local.entry(slot.key().clone()).or_insert(ours);
                }
                slot.insert(deletion);
            }
        }
        self.local.clear();
    }

    /// Takes back the deletions a window that is not its round's last did not apply.
    pub(super) fn keep_back(
        &mut self,
        items: &mut Vec<(FileRecord, Action)>,
        local: &mut HashMap<RelPath, LocalEntry>,
    ) {
        for (t, a) in items.extract_if(.., |(t, _)| t.deleted) {
            if let Some(e) = local.remove(&t.path) {
                self.local.insert(t.path.clone(), e);
            }
            self.deletions.insert(t.path.clone(), (t, a));
        }
    }
}

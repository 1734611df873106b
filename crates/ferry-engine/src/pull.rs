//! The pull plan: for each path, which one of the members' records this device moves to (and
//! from whom its content can come), which wanted deletions and new files are one rename, and
//! what becomes of our current content when a wanted record is written (kept as a conflict copy,
//! kept as a version, removed, or untouched).
//!
//! Replaces, in ferry-node `share.rs`: the closure of `plan_pull` (the remote choice and the
//! holders), `pull_pass`'s per-action match (merge, override, which content is archived and
//! why), `Worker::apply`'s "conflict copy or version" choice and its `Applied` action text;
//! in `share/fast.rs`: `groupable` and the pairing half of `apply_moves`.

use std::collections::{HashMap, HashSet};

use ferry_proto::{ChunkHash, ConflictPolicy, DeviceId, FileKind, FileRecord, RelPath, VersionOrdering};

use crate::{Action, Entry, VersionReason, apply_order, decide_with_policy, override_record, remote_wins};

/// One path the pull wants to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The one remote record to move to.
    pub target: FileRecord,
    pub action: Action,
    /// The members whose record has the target's content (where to fetch it from), in member order.
    pub holders: Vec<DeviceId>,
}

/// The pull decision for one path: `local` is our record (None: no entry), `remotes[i]` is
/// member `members[i]`'s record (None: it has none). None when nothing is to be done.
///
/// Among the remote records worth moving to, the greatest version wins; between concurrent
/// ones the conflict winner ([`remote_wins`]); a tombstone for something we never had is
/// recorded with no disk work, so the first one found will do.
///
/// Node: call it from `plan_pull`'s `walk_share` closure with `(local.map(|e| &e.record),
/// members, &remotes, policy)` and insert `target`, `action` and `holders` into the plan.
pub fn plan_path(
    local: Option<&FileRecord>,
    members: &[DeviceId],
    remotes: &[Option<FileRecord>],
    policy: ConflictPolicy,
) -> Option<Wanted> {
    let mut best: Option<(&FileRecord, Action)> = None;
    for r in remotes.iter().flatten() {
        let action = decide_with_policy(local, r, policy);
        if matches!(action, Action::Nothing | Action::ConflictLocalWins) {
            continue;
        }
        best = match best {
            None => Some((r, action)),
            Some(cur) if local.is_none() && r.deleted => Some(cur),
            Some((cur, cur_action)) => {
                let better = match r.version.compare(&cur.version) {
                    VersionOrdering::Greater => true,
                    VersionOrdering::Concurrent => remote_wins(cur, r),
                    _ => false,
                };
                if better { Some((r, action)) } else { Some((cur, cur_action)) }
            }
        };
    }
    let (target, action) = best?;
    let holders = members
        .iter()
        .zip(remotes)
        .filter(|(_, r)| r.as_ref().is_some_and(|r| r.hash == target.hash))
        .map(|(d, _)| *d)
        .collect();
    Some(Wanted { target: target.clone(), action, holders })
}

/// The wanted items in the order they are applied ([`apply_order`]).
pub fn ordered(wanted: impl IntoIterator<Item = (FileRecord, Action)>) -> Vec<(FileRecord, Action)> {
    let mut items: Vec<(FileRecord, Action)> = wanted.into_iter().collect();
    items.sort_by(|a, b| apply_order(&a.0, &b.0));
    items
}

/// The chunks the wanted live files are made of: the only ones worth looking for locally.
pub fn needed_chunks(items: &[(FileRecord, Action)]) -> HashSet<ChunkHash> {
    items.iter().filter(|(t, _)| t.is_file()).flat_map(|(t, _)| t.chunks.iter().map(|c| c.hash)).collect()
}

/// Where this device holds each of `needed` (a file and an offset), from the local entries in
/// index order: sent files only (a receive-only local change may not be what peers announced).
/// Replaces ferry-node `share.rs: local_chunks_of`'s per-entry test.
pub fn local_chunks<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    needed: &HashSet<ChunkHash>,
) -> HashMap<ChunkHash, (RelPath, u64)> {
    let mut found: HashMap<ChunkHash, (RelPath, u64)> = HashMap::new();
    for e in entries {
        if found.len() >= needed.len() {
            break;
        }
        if e.record.is_file() && !e.local_change {
            for (off, c) in e.record.chunk_offsets() {
                if needed.contains(&c.hash) {
                    found.entry(c.hash).or_insert((e.record.path.clone(), off));
                }
            }
        }
    }
    found
}

/// True for an item the grouped new-file path can apply: a plain pull of a live file where
/// nothing live is recorded here (so there is nothing to archive and nothing to conflict with).
/// Replaces ferry-node `share/fast.rs: Worker::groupable` (pass `local.map(|e| &e.record)`).
pub fn groupable(target: &FileRecord, action: &Action, local: Option<&FileRecord>) -> bool {
    matches!(action, Action::Apply) && target.is_file() && !target.deleted && local.is_none_or(|l| l.deleted)
}

/// The renames among `items`: pairs `(new, gone)` of indexes where `items[gone]` is a tombstone
/// of a non-empty file we hold (sent, not a local change) and `items[new]` a groupable new file
/// with the same content and the same executable bit. Each tombstone pairs at most once.
///
/// Replaces the pairing in ferry-node `share/fast.rs: apply_moves`; the node then tries each
/// pair as a rename on disk (falling back to the ordinary path when the disk disagrees).
pub fn pair_moves(items: &[(FileRecord, Action)], local: &HashMap<RelPath, Entry>) -> Vec<(usize, usize)> {
    let mut gone: HashMap<(ChunkHash, u64), Vec<usize>> = HashMap::new();
    for (i, (t, a)) in items.iter().enumerate() {
        if !t.deleted || !matches!(a, Action::Apply) {
            continue;
        }
        if let Some(l) = local.get(&t.path)
            && l.record.is_file()
            && !l.local_change
            && l.record.size > 0
        {
            gone.entry((l.record.hash, l.record.size)).or_default().push(i);
        }
    }
    let mut pairs = Vec::new();
    if gone.is_empty() {
        return pairs;
    }
    for (i, (t, a)) in items.iter().enumerate() {
        if !groupable(t, a, local.get(&t.path).map(|e| &e.record)) {
            continue;
        }
        if let Some(list) = gone.get_mut(&(t.hash, t.size))
            && let Some(d) = list.pop()
        {
            // A tombstone is spent even when the executable bits differ (then the ordinary
            // path handles both), as in the node.
            if local[&items[d].0.path].record.executable == t.executable {
                pairs.push((i, d));
            }
        }
    }
    pairs
}

/// What becomes of our current content at a path when a wanted record is written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFate {
    /// Nothing live here (no entry or a tombstone), or a directory/link staying as it is.
    Untouched,
    /// Our live file lost a conflict: rename it to a conflict copy (`ferry_fs::conflict_name`
    /// of its mtime and `modified_by`), which the next scan picks up as a new file.
    ConflictCopy,
    /// Our live file becomes a version, for this reason.
    Archive(VersionReason),
    /// A directory or link that goes away or changes kind: remove it.
    RemoveEntry,
}

/// How a wanted record reaches the disk and the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing (the action asks for nothing).
    Nothing,
    /// Same content on both sides: record this version (merged), disk untouched.
    Record(FileRecord),
    /// This device's policy wins the conflict: record this (our content, a version that has
    /// seen theirs), disk untouched; counts as a conflict.
    KeepOurs(FileRecord),
    /// Make the disk match the target (fetch, then deal with our content as `fate`), then commit
    /// `record`: the target, under a version that has also seen ours when the two were
    /// concurrent (see [`step`]). `conflict`: counts as a conflict in the summary (newest-wins
    /// archives).
    Write { record: FileRecord, fate: LocalFate, applied: Applied, conflict: bool },
}

/// What an applied change was, for events and summaries (the node's `Event::Applied` action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    Changed,
    Deleted,
}

impl Applied {
    /// The node's event text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Applied::Added => "added",
            Applied::Changed => "changed",
            Applied::Deleted => "deleted",
        }
    }
}

/// The step for one wanted item. `local` is our record at the path, `me` this device.
///
/// Replaces `pull_pass`'s `match action` and the choice at the top of ferry-node
/// `share.rs: Worker::apply` (with `conflict` = `action == ConflictRemoteWins`; a
/// `ConflictRemoteWinsArchive` version's reason is `Conflict`). The node commits `record`
/// where it committed `target.clone()`, and when the conflict copy's name is taken it uses
/// [`copy_name_taken`] instead of failing.
///
/// A target concurrent with our record (a conflict it wins, or an edit beating our deletion)
/// is recorded under a version of ours that has seen both ([`record_for`]). Recording it verbatim (as the node did) drops
/// this device's counter for the path: its next change there then gets a version that can
/// equal one it made before, on other content, and devices holding the two stay apart forever
/// ("Equal": nothing to do). The simulation found it; see `tests/regressions.rs`.
pub fn step(action: Action, local: Option<&FileRecord>, target: &FileRecord, me: DeviceId) -> Step {
    match action {
        Action::Nothing | Action::ConflictLocalWins => Step::Nothing,
        Action::MergeVersion => {
            let l = local.expect("a merge implies a local record");
            Step::Record(FileRecord { version: l.version.merged(&target.version), ..l.clone() })
        }
        Action::OverrideLocal => Step::KeepOurs(override_record(local.expect("a conflict implies local"), target, me)),
        Action::Apply | Action::ConflictRemoteWins | Action::ConflictRemoteWinsArchive => {
            let live = local.filter(|l| !l.deleted);
            let fate = match live {
                None => LocalFate::Untouched,
                Some(l) if l.kind == FileKind::File => match action {
                    Action::ConflictRemoteWins => LocalFate::ConflictCopy,
                    Action::ConflictRemoteWinsArchive => LocalFate::Archive(VersionReason::Conflict),
                    _ if target.deleted => LocalFate::Archive(VersionReason::Deleted),
                    _ => LocalFate::Archive(VersionReason::Replaced),
                },
                Some(l) if l.kind != target.kind || target.deleted => LocalFate::RemoveEntry,
                Some(_) => LocalFate::Untouched,
            };
            let applied = if target.deleted {
                Applied::Deleted
            } else if live.is_some() {
                Applied::Changed
            } else {
                Applied::Added
            };
            Step::Write {
                record: record_for(local, target, me),
                fate,
                applied,
                conflict: action == Action::ConflictRemoteWinsArchive,
            }
        }
    }
}

/// The record to commit for an applied `target` over our record `local`: the target as it is,
/// or, when the two are concurrent, the target under a new version of this device that has
/// seen both (merged, then bumped by `me`; see [`step`]). Every path that applies a target must
/// commit this: [`Step::Write`] carries it, and the node's grouped new files
/// (`share/fast.rs: apply_group`, where our tombstone may be concurrent with the new file) and
/// renames (`apply_moves`) commit `record_for(local, target, me)` too.
///
/// Why the bump: a merge alone would attach the counters of our losing record to the winner's
/// content, and another device merging other records can reach the same vector with other
/// content (again "Equal": stuck). A counter only this device's decision carries keeps "one
/// version, one content". The other holders of the target then see a greater version with the
/// same content and take it (the content is local: nothing crosses the network).
pub fn record_for(local: Option<&FileRecord>, target: &FileRecord, me: DeviceId) -> FileRecord {
    match local {
        Some(l) if l.version.compare(&target.version) == VersionOrdering::Concurrent => {
            FileRecord { version: l.version.merged(&target.version).bumped(me), ..target.clone() }
        }
        _ => target.clone(),
    }
}

/// The fate of our losing file when its conflict copy's name is already taken: the copy was
/// made already (another device lost the same conflict with the same content and its copy
/// reached us), or, very rarely, other content has that name. Our content is then kept as a
/// version (reason `Conflict`) instead. Renaming onto the name would overwrite it, and the
/// node's `rename_within` refuses to, so the pull of that path failed on every pass and never
/// converged (found by the simulation; see `tests/regressions.rs`).
pub fn copy_name_taken(fate: LocalFate) -> LocalFate {
    match fate {
        LocalFate::ConflictCopy => LocalFate::Archive(VersionReason::Conflict),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::rec;
    use ferry_proto::VersionVector;

    const A: DeviceId = DeviceId([1; 32]);
    const B: DeviceId = DeviceId([2; 32]);
    const C: DeviceId = DeviceId([3; 32]);

    fn tomb(r: &FileRecord, by: DeviceId) -> FileRecord {
        FileRecord { deleted: true, version: r.version.bumped(by), modified_by: by, ..r.clone() }
    }

    #[test]
    fn plan_path_takes_the_greatest_and_names_its_holders() {
        let base = rec("f", b"x", VersionVector::new().bumped(A), A, 1);
        let newer = rec("f", b"y", base.version.bumped(B), B, 2);
        let remotes = vec![Some(base.clone()), Some(newer.clone()), Some(newer.clone())];
        let w = plan_path(Some(&base), &[A, B, C], &remotes, ConflictPolicy::KeepBoth).unwrap();
        assert_eq!((w.target, w.action, w.holders), (newer.clone(), Action::Apply, vec![B, C]));
        assert!(plan_path(Some(&newer), &[A, B], &remotes[..2], ConflictPolicy::KeepBoth).is_none());
        // Concurrent candidates: the conflict winner (later mtime).
        let other = rec("f", b"z", base.version.bumped(C), C, 3);
        let w = plan_path(Some(&base), &[B, C], &[Some(newer.clone()), Some(other.clone())], ConflictPolicy::KeepBoth)
            .unwrap();
        assert_eq!(w.target, other);
        // A tombstone of something we never had: the first one found.
        let (t1, t2) = (tomb(&base, B), tomb(&newer, C));
        let w = plan_path(None, &[B, C], &[Some(t1.clone()), Some(t2)], ConflictPolicy::KeepBoth).unwrap();
        assert_eq!(w.target, t1);
    }

    #[test]
    fn steps_say_what_becomes_of_our_content() {
        let ours = rec("f", b"ours", VersionVector::new().bumped(A), A, 5);
        let theirs = rec("f", b"theirs", VersionVector::new().bumped(B), B, 9);
        let s = |a, l: Option<&FileRecord>, t: &FileRecord| step(a, l, t, A);
        // The write's parts, without the record (checked below).
        let w = |a, l: Option<&FileRecord>, t: &FileRecord| match s(a, l, t) {
            Step::Write { fate, applied, conflict, .. } => Some((fate, applied, conflict)),
            _ => None,
        };
        assert_eq!(w(Action::Apply, None, &theirs), Some((LocalFate::Untouched, Applied::Added, false)));
        assert_eq!(
            w(Action::ConflictRemoteWins, Some(&ours), &theirs),
            Some((LocalFate::ConflictCopy, Applied::Changed, false))
        );
        assert_eq!(
            w(Action::ConflictRemoteWinsArchive, Some(&ours), &theirs),
            Some((LocalFate::Archive(VersionReason::Conflict), Applied::Changed, true))
        );
        let gone = tomb(&ours, B);
        assert_eq!(
            w(Action::Apply, Some(&ours), &gone),
            Some((LocalFate::Archive(VersionReason::Deleted), Applied::Deleted, false))
        );
        assert_eq!(w(Action::Apply, Some(&gone), &theirs), Some((LocalFate::Untouched, Applied::Added, false)));
        let mut dir = ours.clone();
        dir.kind = FileKind::Dir;
        assert_eq!(w(Action::Apply, Some(&dir), &theirs), Some((LocalFate::RemoveEntry, Applied::Changed, false)));
        assert_eq!(copy_name_taken(LocalFate::ConflictCopy), LocalFate::Archive(VersionReason::Conflict));
        assert_eq!(copy_name_taken(LocalFate::Untouched), LocalFate::Untouched);
        match s(Action::OverrideLocal, Some(&ours), &theirs) {
            Step::KeepOurs(r) => assert_eq!(r.version.compare(&theirs.version), VersionOrdering::Greater),
            other => panic!("{other:?}"),
        }
        match s(Action::MergeVersion, Some(&ours), &FileRecord { hash: ours.hash, ..theirs.clone() }) {
            Step::Record(r) => assert_eq!(r.version, ours.version.merged(&theirs.version)),
            other => panic!("{other:?}"),
        }
        assert_eq!(s(Action::ConflictLocalWins, Some(&ours), &theirs), Step::Nothing);
    }

    /// Regression (found by the simulation): a target that wins over a concurrent record of
    /// ours is recorded under a new version of ours that has seen both, so this device's counter for the
    /// path never goes back and its next version cannot equal an older one of other content.
    #[test]
    fn a_concurrent_winner_is_recorded_under_both_versions() {
        let ours = rec("f", b"ours", VersionVector::new().bumped(A).bumped(A), A, 5);
        let theirs = rec("f", b"theirs", VersionVector::new().bumped(B), B, 9);
        let gone = FileRecord { deleted: true, ..ours.clone() };
        for (action, local) in
            [(Action::ConflictRemoteWins, &ours), (Action::ConflictRemoteWinsArchive, &ours), (Action::Apply, &gone)]
        {
            let Step::Write { record, .. } = step(action, Some(local), &theirs, A) else { panic!("{action:?}") };
            assert_eq!(record.version, ours.version.merged(&theirs.version).bumped(A), "{action:?}");
            assert_eq!(FileRecord { version: theirs.version.clone(), ..record }, theirs, "otherwise the target");
        }
        // Not concurrent: the target as it is.
        let newer = rec("f", b"new", ours.version.bumped(B), B, 9);
        let Step::Write { record, .. } = step(Action::Apply, Some(&ours), &newer, A) else { panic!() };
        assert_eq!(record, newer);
    }

    #[test]
    fn renames_pair_a_tombstone_with_a_new_file_of_the_same_content() {
        let old = rec("old", b"content", VersionVector::new().bumped(A), A, 1);
        let entry = |r: &FileRecord, local_change| Entry { record: r.clone(), inode: 7, local_change };
        let mut local = HashMap::new();
        local.insert(old.path.clone(), entry(&old, false));
        let new = rec("new", b"content", VersionVector::new().bumped(B), B, 1);
        let other = rec("other", b"else", VersionVector::new().bumped(B), B, 1);
        let items = ordered([(tomb(&old, B), Action::Apply), (other, Action::Apply), (new.clone(), Action::Apply)]);
        let pairs = pair_moves(&items, &local);
        assert_eq!(pairs.len(), 1);
        let (n, d) = pairs[0];
        assert_eq!((&items[n].0.path, &items[d].0.path), (&new.path, &old.path));
        // A local change (receive-only) is not what the peer renamed; nor a different x bit.
        local.insert(old.path.clone(), entry(&old, true));
        assert!(pair_moves(&items, &local).is_empty());
        local.insert(old.path.clone(), entry(&FileRecord { executable: true, ..old.clone() }, false));
        assert!(pair_moves(&items, &local).is_empty());
    }

    #[test]
    fn chunks_are_reused_from_sent_files_only() {
        let a = rec("a", b"abc", VersionVector::new().bumped(A), A, 1);
        let b = rec("b", b"abc", VersionVector::new().bumped(A), A, 1);
        let items = vec![(rec("n", b"abc", VersionVector::new().bumped(B), B, 1), Action::Apply)];
        let needed = needed_chunks(&items);
        let entries = [
            Entry { record: a.clone(), inode: 1, local_change: true },
            Entry { record: b.clone(), inode: 2, local_change: false },
        ];
        let found = local_chunks(&entries, &needed);
        assert_eq!(found[&a.hash], (b.path.clone(), 0));
        assert!(groupable(&items[0].0, &Action::Apply, None));
        assert!(!groupable(&items[0].0, &Action::Apply, Some(&a)));
    }
}

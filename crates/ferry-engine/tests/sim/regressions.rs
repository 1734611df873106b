//! Histories the simulation found failing, replayed step by step on the simulated devices
//! (which drive the engine's own decisions). Each fails on the decisions as they were before
//! `ferry_engine::pull::{record_for, copy_name_taken}`.

use ferry_proto::{ChunkHash, ConflictPolicy, DeviceId, RelPath, ShareMode};

use super::device::Device;
use super::world::talk;

fn devices(n: u8) -> Vec<Device> {
    let ids: Vec<DeviceId> = (1..=n).map(|i| DeviceId([i; 32])).collect();
    ids.iter().map(|id| Device::new(*id, ShareMode::SendReceive, ConflictPolicy::KeepBoth, &ids)).collect()
}

fn content(n: u64) -> ChunkHash {
    ChunkHash::of(&n.to_le_bytes())
}

/// An applied record concurrent with ours used to be recorded with the peer's version as it
/// was, which dropped this device's own counter for the path. Its next edit then reused a
/// version vector another device had already given to other content: two devices held
/// different files under equal versions, and "equal" means nothing to do, forever.
#[test]
fn a_lost_counter_no_longer_makes_two_contents_share_a_version() {
    let mut d = devices(3);
    let (a, m, c) = (0, 1, 2);
    let f = RelPath::new("f").unwrap();
    // M writes W; C takes it. A writes X, later (A's wins conflicts).
    d[m].write(&f, content(1), 1_000);
    talk(&mut d, m, c, 1);
    d[a].write(&f, content(2), 2_000);
    // M loses to A's X (its W becomes a conflict copy) and takes X.
    talk(&mut d, a, m, 2);
    assert_eq!(d[m].disk[&f].hash, content(2));
    // A deletes f; then C's (stale) W beats the deletion on A: edit beats delete.
    d[a].remove(std::slice::from_ref(&f));
    talk(&mut d, a, c, 3);
    assert_eq!(d[a].disk[&f].hash, content(1));
    // Both edit f without talking. With A's counter lost, both new versions were {A:1, M:1}.
    d[a].write(&f, content(3), 4_000);
    d[m].write(&f, content(4), 5_000);
    let (va, vm) = (&d[a].index[&f].record.version, &d[m].index[&f].record.version);
    assert_ne!(va, vm, "two contents under one version");
    for _ in 0..4 {
        talk(&mut d, a, m, 6);
        talk(&mut d, m, c, 6);
        talk(&mut d, a, c, 6);
    }
    assert_eq!(d[a].live_disk(), d[m].live_disk());
    assert_eq!(d[a].live_disk(), d[c].live_disk());
    assert_eq!(d[a].disk[&f].hash, content(4), "the later edit wins");
}

/// A device that lost a conflict renamed its file to the copy name even when that name was
/// already taken by the same copy, received from a device that lost the same conflict first
/// (for `a.txt` the copy `a.sync-conflict-...txt` sorts first, so it arrives in the same pull,
/// just before the conflict). `rename_within` never overwrites: that path failed on every pull
/// and the devices never converged. The engine now keeps the content as a version instead
/// ([`ferry_engine::pull::copy_name_taken`]), and the winner comes under a version that has
/// seen the loser ([`ferry_engine::pull::record_for`]), so the second device often has no
/// conflict left at all.
#[test]
fn a_conflict_copy_received_first_does_not_block_the_conflict() {
    let mut d = devices(3);
    let (a, b, c) = (0, 1, 2);
    let f = RelPath::new("a.txt").unwrap();
    d[a].write(&f, content(1), 1_000);
    talk(&mut d, a, b, 1);
    d[c].write(&f, content(2), 2_000);
    // B loses to C: B's copy of A's content, and C's content at a.txt.
    talk(&mut d, b, c, 2);
    let copies: Vec<&RelPath> = d[b].disk.keys().filter(|p| p.as_str().contains(".sync-conflict-")).collect();
    assert_eq!(copies.len(), 1);
    assert!(copies[0] < &f, "the copy sorts first");
    // A hears of both from B at once.
    talk(&mut d, a, b, 3);
    for _ in 0..3 {
        talk(&mut d, a, c, 4);
        talk(&mut d, b, c, 4);
        talk(&mut d, a, b, 4);
    }
    assert_eq!(d[a].live_disk(), d[b].live_disk());
    assert_eq!(d[a].live_disk(), d[c].live_disk());
    assert_eq!(d[a].disk[&f].hash, content(2));
    assert_eq!(d[a].disk.len(), 2, "the file and one copy");
}

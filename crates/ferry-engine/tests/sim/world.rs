//! One seeded history: devices with random modes and conflict policies edit, delete, rename,
//! mass-delete, restart, override, revert and talk in pairs (some pairs cut off for a while);
//! then every partition heals and full rounds run until nothing changes. Checked: every device
//! ends with the same live files (conflict copies included), every index matches its disk, and
//! no content that was ever written is lost (live somewhere, or a version somewhere).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ferry_engine::{guard, plan_override, plans};
use ferry_proto::{ChunkHash, ConflictPolicy, DeviceId, FileRecord, RelPath, ShareMode};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::device::Device;

/// Devices `a` and `b` exchange their indexes (what each sends), then each pulls what it can
/// fetch from the other, at `now_ms`.
pub fn talk(devs: &mut [Device], a: usize, b: usize, now_ms: i64) {
    for (from, to) in [(a, b), (b, a)] {
        let id = devs[from].id;
        let sent: Vec<FileRecord> = devs[from].sent().cloned().collect();
        let view = devs[to].views.get_mut(&id).expect("members know each other");
        for r in sent {
            view.insert(r.path.clone(), r);
        }
    }
    for (me, peer) in [(a, b), (b, a)] {
        let served = BTreeMap::from([(devs[peer].id, devs[peer].live_disk())]);
        devs[me].pull(&served, now_ms);
    }
}

/// Paths the users pick from: enough for a mass delete (more than the guard's minimum of 10).
const POOL: usize = 24;
/// Full rounds allowed for the devices to settle once everyone can talk.
const MAX_ROUNDS: usize = 40;

/// What one history exercised (summed over all histories for the report).
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    pub ops: u64,
    pub talks: u64,
    pub holds: u64,
    pub rejects: u64,
    pub overrides: u64,
    pub reverts: u64,
    pub restarts: u64,
    pub partitions: u64,
    /// Conflict copies live at the end.
    pub copies: u64,
    pub copy_names_taken: u64,
    pub rounds: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.ops += o.ops;
        self.talks += o.talks;
        self.holds += o.holds;
        self.rejects += o.rejects;
        self.overrides += o.overrides;
        self.reverts += o.reverts;
        self.restarts += o.restarts;
        self.partitions += o.partitions;
        self.copies += o.copies;
        self.copy_names_taken += o.copy_names_taken;
        self.rounds += o.rounds;
    }
}

pub struct World {
    rng: StdRng,
    pub devs: Vec<Device>,
    pool: Vec<RelPath>,
    /// Pairs that cannot talk until the given step.
    cut: HashMap<(usize, usize), u64>,
    step: u64,
    now_ms: i64,
    /// Every content ever written.
    written: BTreeSet<ChunkHash>,
    next_content: u64,
    pub stats: Stats,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = rng.gen_range(2..=5);
        let ids: Vec<DeviceId> = (0..n).map(|i| DeviceId([i as u8 + 1; 32])).collect();
        // At most one send-only device and one this-device-wins device: two of either would
        // each insist on its own content forever (documented on the policy and on override).
        let send_only = rng.gen_bool(0.3).then(|| rng.gen_range(0..n));
        let master = rng.gen_bool(0.3).then(|| rng.gen_range(0..n));
        let devs = (0..n)
            .map(|i| {
                let mode = if Some(i) == send_only {
                    ShareMode::SendOnly
                } else if rng.gen_bool(0.2) {
                    ShareMode::ReceiveOnly
                } else {
                    ShareMode::SendReceive
                };
                let policy = if Some(i) == master {
                    ConflictPolicy::ThisDeviceWins
                } else if rng.gen_bool(0.4) {
                    ConflictPolicy::NewestWins
                } else {
                    ConflictPolicy::KeepBoth
                };
                Device::new(ids[i], mode, policy, &ids)
            })
            .collect();
        // Extensions that sort after a conflict copy's mark (`.txt`) and before it (`.doc`), and
        // none: a copy is applied before or after its original in a pull.
        let ext = ["", ".txt", ".doc"];
        let pool = (0..POOL).map(|i| RelPath::new(format!("d{}/f{i:02}{}", i % 3, ext[i / 3 % 3])).unwrap()).collect();
        World {
            rng,
            devs,
            pool,
            cut: HashMap::new(),
            step: 0,
            now_ms: 1_000_000,
            written: BTreeSet::new(),
            next_content: 0,
            stats: Stats::default(),
        }
    }

    fn content(&mut self) -> ChunkHash {
        self.next_content += 1;
        let h = ChunkHash::of(&self.next_content.to_le_bytes());
        self.written.insert(h);
        h
    }

    fn now_ns(&self) -> i64 {
        self.now_ms * 1_000_000
    }

    /// Runs the random phase, then the settling phase, and checks the invariants.
    pub fn run(&mut self) -> Result<(), String> {
        let steps = self.rng.gen_range(40..120);
        for _ in 0..steps {
            self.step += 1;
            self.now_ms += self.rng.gen_range(0..20_000);
            self.random_op();
            self.answer_prompts(0.3, true);
        }
        self.cut.clear();
        self.settle()?;
        self.stats.copy_names_taken = self.devs.iter().map(|d| d.copy_names_taken).sum();
        self.stats.copies = self.devs[0].disk.keys().filter(|p| p.as_str().contains(".sync-conflict-")).count() as u64;
        self.check()
    }

    fn random_op(&mut self) {
        let n = self.devs.len();
        let d = self.rng.gen_range(0..n);
        self.stats.ops += 1;
        let live: Vec<RelPath> = self.devs[d].disk.keys().cloned().collect();
        let free: Vec<RelPath> = self.pool.iter().filter(|p| !self.devs[d].disk.contains_key(*p)).cloned().collect();
        match self.rng.gen_range(0..100) {
            0..30 => {
                let p = self.pool[self.rng.gen_range(0..POOL)].clone();
                let (h, now) = (self.content(), self.now_ns());
                self.devs[d].write(&p, h, now);
            }
            30..38 if !live.is_empty() => {
                let p = live[self.rng.gen_range(0..live.len())].clone();
                self.devs[d].remove(&[p]);
            }
            38..45 if !live.is_empty() && !free.is_empty() => {
                let from = live[self.rng.gen_range(0..live.len())].clone();
                let to = free[self.rng.gen_range(0..free.len())].clone();
                self.devs[d].rename(&from, &to);
            }
            45..48 => {
                // Many new files at once (so that a mass delete becomes possible).
                for p in free.into_iter().take(15) {
                    let (h, now) = (self.content(), self.now_ns());
                    self.devs[d].write(&p, h, now);
                }
            }
            48..51 if live.len() > 12 => {
                // Most files deleted at once: the other devices' guards should hold it.
                let keep = self.rng.gen_range(0..live.len() / 3);
                self.devs[d].remove(&live[keep..]);
            }
            51..53 => {
                // A restart: the guard's memory is lost; index, history and settings stay.
                self.devs[d].guard = guard::MassDeleteGuard::new();
                self.stats.restarts += 1;
            }
            53..56 => {
                let (a, b) = (self.rng.gen_range(0..n), self.rng.gen_range(0..n));
                if a != b {
                    let until = self.step + self.rng.gen_range(5..40);
                    self.cut.insert((a.min(b), a.max(b)), until);
                    self.stats.partitions += 1;
                }
            }
            56..58 => {
                self.override_or_revert(d);
            }
            _ => {
                let e = self.rng.gen_range(0..n);
                if e != d && self.cut.get(&(d.min(e), d.max(e))).is_none_or(|until| *until <= self.step) {
                    self.talk(d, e);
                }
            }
        }
    }

    /// `a` and `b` exchange their indexes, then each pulls what it can fetch from the other.
    pub fn talk(&mut self, a: usize, b: usize) {
        self.stats.talks += 1;
        talk(&mut self.devs, a, b, self.now_ms);
    }

    /// The user answers open mass-delete prompts (each with probability `p`): accept, or refuse
    /// (which republishes the files) when `may_refuse`. A device that cannot republish
    /// (receive-only) accepts. Once the histories settle users accept: a user who refused every
    /// deletion a send-only device's override makes would keep the two apart forever.
    fn answer_prompts(&mut self, p: f64, may_refuse: bool) {
        for i in 0..self.devs.len() {
            if !self.devs[i].prompt_open || !self.rng.gen_bool(p) {
                continue;
            }
            self.stats.holds += 1;
            let accept = !may_refuse || !self.devs[i].mode.sends() || self.rng.gen_bool(0.5);
            let answer = guard::answer(accept);
            let dev = &mut self.devs[i];
            dev.prompt_open = false;
            dev.allowed = answer.allowed;
            if answer.republish {
                self.stats.rejects += 1;
                let local: Vec<_> = dev.index.values().cloned().collect();
                let views: Vec<&BTreeMap<RelPath, FileRecord>> = dev.views.values().collect();
                let maps: Vec<HashMap<RelPath, FileRecord>> =
                    views.iter().map(|v| v.iter().map(|(p, r)| (p.clone(), r.clone())).collect()).collect();
                let refs: Vec<&HashMap<RelPath, FileRecord>> = maps.iter().collect();
                for u in plans::plan_republish(&local, &refs, dev.mode, dev.id) {
                    dev.commit(u.entry);
                }
            }
        }
    }

    /// A send-only device overrides the others; a receive-only device reverts its changes.
    /// Returns whether it did anything.
    fn override_or_revert(&mut self, d: usize) -> bool {
        let now_ns = self.now_ns();
        let dev = &mut self.devs[d];
        match dev.mode {
            ShareMode::SendOnly => {
                let local: HashMap<RelPath, FileRecord> =
                    dev.index.iter().map(|(p, e)| (p.clone(), e.record.clone())).collect();
                let maps: Vec<HashMap<RelPath, FileRecord>> =
                    dev.views.values().map(|v| v.iter().map(|(p, r)| (p.clone(), r.clone())).collect()).collect();
                let refs: Vec<&HashMap<RelPath, FileRecord>> = maps.iter().collect();
                let plan = plan_override(&local, &refs, dev.id, now_ns);
                let changed = !plan.is_empty();
                for record in plan {
                    let (inode, local_change) =
                        dev.index.get(&record.path).map(|e| (e.inode, e.local_change)).unwrap_or_default();
                    dev.commit(ferry_engine::Entry { record, inode, local_change });
                }
                self.stats.overrides += u64::from(changed);
                changed
            }
            ShareMode::ReceiveOnly => {
                let remote_live: HashSet<RelPath> = dev
                    .views
                    .values()
                    .flat_map(|v| v.values())
                    .filter(|r| !r.deleted)
                    .map(|r| r.path.clone())
                    .collect();
                let plan = plans::plan_revert(dev.index.values(), &remote_live);
                for p in &plan.archive {
                    if let Some(f) = dev.disk.remove(p) {
                        dev.history.insert(f.hash);
                    }
                }
                let changed = !plan.updates.is_empty();
                for u in plan.updates {
                    dev.commit(u.entry);
                }
                self.stats.reverts += u64::from(changed);
                changed
            }
            ShareMode::SendReceive => false,
        }
    }

    /// Full rounds (every pair talks, prompts are answered) until nothing changes.
    fn rounds_until_quiet(&mut self) -> Result<(), String> {
        for _ in 0..MAX_ROUNDS {
            self.stats.rounds += 1;
            let before: u64 = self.devs.iter().map(|d| d.changes).sum();
            self.now_ms += 5_000;
            let n = self.devs.len();
            for a in 0..n {
                for b in a + 1..n {
                    self.talk(a, b);
                }
            }
            // A prompt answered now lets the next round apply what it held: not quiet yet.
            let prompted = self.devs.iter().any(|d| d.prompt_open);
            self.answer_prompts(1.0, false);
            let after: u64 = self.devs.iter().map(|d| d.changes).sum();
            if after == before && !prompted {
                return Ok(());
            }
        }
        Err(format!("no quiet after {MAX_ROUNDS} full rounds"))
    }

    /// Heals everything: rounds until quiet; then receive-only devices revert and a send-only
    /// device overrides (it never takes the others' changes), and rounds again, until none of
    /// them has anything left to do.
    fn settle(&mut self) -> Result<(), String> {
        for _ in 0..6 {
            self.rounds_until_quiet()?;
            let mut acted = false;
            for d in 0..self.devs.len() {
                acted |= self.override_or_revert(d);
            }
            if !acted {
                return Ok(());
            }
        }
        Err("overrides and reverts keep finding work".into())
    }

    fn check(&self) -> Result<(), String> {
        for d in &self.devs {
            let indexed: BTreeMap<RelPath, ChunkHash> = d
                .index
                .values()
                .filter(|e| !e.record.deleted)
                .map(|e| (e.record.path.clone(), e.record.hash))
                .collect();
            if indexed != d.live_disk() {
                return Err(format!("device {}: index and disk disagree", d.id.short()));
            }
        }
        let first = self.devs[0].live_disk();
        for d in &self.devs[1..] {
            let other = d.live_disk();
            if other != first {
                let diff: Vec<&RelPath> = first
                    .keys()
                    .chain(other.keys())
                    .filter(|p| first.get(*p) != other.get(*p))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                return Err(format!(
                    "devices {} ({:?}) and {} ({:?}) disagree at {diff:?}{}",
                    self.devs[0].id.short(),
                    self.devs[0].mode,
                    d.id.short(),
                    d.mode,
                    self.trace(diff[0])
                ));
            }
        }
        for h in &self.written {
            let kept = self.devs.iter().any(|d| d.history.contains(h) || d.disk.values().any(|f| f.hash == *h));
            if !kept {
                return Err(format!("content {} was lost", &h.to_hex()[..12]));
            }
        }
        Ok(())
    }

    /// Every device's record and views of `p` (with `FERRY_SIM_TRACE` set).
    fn trace(&self, p: &RelPath) -> String {
        if std::env::var("FERRY_SIM_TRACE").is_err() {
            return String::new();
        }
        let show = |r: &FileRecord| {
            format!(
                "{}{:?} v{:?} by {}",
                if r.deleted { "DEL " } else { "" },
                &r.hash.to_hex()[..6],
                r.version.0.values().collect::<Vec<_>>(),
                r.modified_by.short()
            )
        };
        let mut out = format!("\n  at {p}:");
        for d in &self.devs {
            let e = d.index.get(p);
            out += &format!(
                "\n  {} {:?} prompt={} index: {:?} lc={:?}",
                d.id.short(),
                d.mode,
                d.prompt_open,
                e.map(|e| show(&e.record)),
                e.map(|e| e.local_change)
            );
            for (id, v) in &d.views {
                out += &format!("\n     view of {}: {:?}", id.short(), v.get(p).map(show));
            }
        }
        out
    }

    /// A short description of the devices, for a failing seed.
    pub fn describe(&self) -> String {
        self.devs.iter().map(|d| format!("{}:{:?}/{:?}", d.id.short(), d.mode, d.policy)).collect::<Vec<_>>().join(", ")
    }
}

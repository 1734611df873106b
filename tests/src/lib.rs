//! Test harness for multi-node tests: in-process nodes on 127.0.0.1 with their own homes
//! (mDNS is never started here: [`config`] turns it off), helpers to pair them and share folders through the same API
//! the CLI uses, and bounded waits that wake on node events rather than sleeping.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_node::api::{AcceptDto, InviteDto, PendingDto, ShareAddDto};
use ferry_node::{Config, Node};
use tempfile::TempDir;

pub mod kdeconnectd;
pub mod kdepeer;
pub mod localsendd;
pub mod lspeer;
pub mod messy;
pub mod netns;
pub mod powercut;
pub mod rogue;
pub mod sends;
pub mod unsyncable;

/// Long enough for a slow CI machine, short enough that a hang fails fast.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct TestNode {
    pub node: Node,
    pub name: String,
    pub home: PathBuf,
    _home_dir: Option<TempDir>,
    /// What this test changed in the node's [`config`] (kept for restarts).
    tweak: fn(&mut Config),
}

pub fn config(name: &str, home: &Path) -> Config {
    Config {
        home: home.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        name: name.to_string(),
        owner: "tester".into(),
        log: "info".into(),
        log_file: None,
        rescan_interval: Duration::from_secs(3600),
        debounce: Duration::from_millis(50),
        // Never mDNS here: these nodes run in the root namespace (network safety rule).
        mdns: false,
        mdns_interfaces: vec![],
        // Nor KDE Connect, whose discovery is a broadcast.
        kdeconnect: false,
        kdeconnect_bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        // Nor LocalSend, whose discovery is a multicast.
        localsend: false,
        localsend_bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        localsend_port: 0,
        localsend_pin: None,
        static_addresses: Default::default(),
        inbox: home.join("Inbox"),
        mass_delete_percent: 50,
        prune_interval: Duration::from_secs(3600),
        pull_window: ferry_node::config::DEFAULT_PULL_WINDOW,
    }
}

/// Sends the logs of the nodes in this process to the test's output when `RUST_LOG` is set
/// (`RUST_LOG=ferry_node=debug cargo test ... -- --nocapture`), to see where a failing test
/// stalled; without it, nothing is logged (as before). Idempotent: every node calls it.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::from_default_env();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

impl TestNode {
    pub async fn start(name: &str) -> TestNode {
        Self::start_with(name, |_| {}).await
    }

    /// Starts a node whose [`config`] `tweak` changed (and changes again on every restart
    /// through [`delete_while_away`]).
    pub async fn start_with(name: &str, tweak: fn(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        let mut n = Self::start_at_with(name, &home, tweak).await;
        n._home_dir = Some(dir);
        n
    }

    /// Starts (or restarts) a node on an existing home.
    pub async fn start_at(name: &str, home: &Path) -> TestNode {
        Self::start_at_with(name, home, |_| {}).await
    }

    pub async fn start_at_with(name: &str, home: &Path, tweak: fn(&mut Config)) -> TestNode {
        init_tracing();
        let mut cfg = config(name, home);
        tweak(&mut cfg);
        let node = Node::start(cfg).await.expect("node starts");
        TestNode { node, name: name.into(), home: home.to_path_buf(), _home_dir: None, tweak }
    }

    /// Stops the node, keeping its home (and the temp dir guard) for a restart.
    pub async fn stop(self) -> (PathBuf, Option<TempDir>) {
        self.node.shutdown().await;
        (self.home, self._home_dir)
    }

    pub fn addr(&self) -> String {
        self.node.listen_addr().to_string()
    }

    pub fn id(&self) -> String {
        self.node.device_id().to_string()
    }
}

/// Waits until `cond` holds, re-checking whenever either node emits an event (and at least
/// every 200 ms, for conditions on the file system). Panics with `what` after `WAIT`.
pub async fn wait_for<F, Fut>(nodes: &[&TestNode], what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_some(nodes, what, || {
        let f = cond();
        async move { f.await.then_some(()) }
    })
    .await
}

/// Like [`wait_for`], returning the first `Some` the probe yields.
pub async fn wait_some<T, F, Fut>(nodes: &[&TestNode], what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    let mut subs: Vec<_> = nodes.iter().map(|n| n.node.subscribe()).collect();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            dump_status(nodes).await;
            panic!("timed out after {WAIT:?} waiting for: {what}");
        }
        let any_event = futures_select(&mut subs);
        let _ = tokio::time::timeout(Duration::from_millis(200), any_event).await;
    }
}

/// Prints each node's status (shares' state, counts, needs, items that cannot be synced; its
/// connections), so a timeout says which side stalled where.
async fn dump_status(nodes: &[&TestNode]) {
    for n in nodes {
        // Bounded: the node may be the one that hangs.
        match tokio::time::timeout(Duration::from_secs(5), n.node.status()).await {
            Ok(Ok(st)) => eprintln!("status of {}: {}", n.name, serde_json::to_string(&st).unwrap_or_default()),
            Ok(Err(e)) => eprintln!("status of {}: {e}", n.name),
            Err(_) => eprintln!("status of {}: no answer within 5 s", n.name),
        }
    }
}

async fn futures_select(subs: &mut [ferry_node::Subscription]) {
    let futs: Vec<_> = subs.iter_mut().map(|r| Box::pin(async move { r.recv().await.ok() })).collect();
    if futs.is_empty() {
        std::future::pending::<()>().await;
    }
    let _ = select_all(futs).await;
}

/// Minimal select_all over boxed futures (keeps the harness free of extra dependencies).
async fn select_all<F: Future + Unpin>(mut futs: Vec<F>) -> F::Output {
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let std::task::Poll::Ready(v) = std::pin::Pin::new(f).poll(cx) {
                return std::task::Poll::Ready(v);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Pairs `a` (asking) with `b` (accepting); asserts both saw the same code.
pub async fn pair(a: &TestNode, b: &TestNode) {
    let ticket = a.node.pair(&b.addr()).await.expect("pair request");
    let prompt: PendingDto = wait_some(&[a, b], "pairing prompt on b", || {
        let b = b.node.clone();
        async move { b.pending().await.unwrap().into_iter().find(|p| p.kind == "pair") }
    })
    .await;
    assert_eq!(prompt.code.as_deref(), Some(ticket.code.as_str()), "both screens show the same code");
    assert_eq!(prompt.device, a.id());
    b.node.accept(AcceptDto { id: prompt.id, path: None }).await.expect("accept");
    let outcome = a.node.pair_wait(ticket.ticket).await.unwrap();
    assert_eq!(outcome.state, "accepted", "{}", outcome.message);
    wait_for(&[a, b], "both connected", || async { connected(a, &b.id()).await && connected(b, &a.id()).await }).await;
}

pub async fn connected(n: &TestNode, device: &str) -> bool {
    n.node.devices().await.unwrap().iter().any(|d| d.id == device && d.paired && d.connected)
}

/// Shares `a_dir` from `a` with `b`, which accepts it into `b_dir`. Returns the share id.
pub async fn share(a: &TestNode, a_dir: &Path, b: &TestNode, b_dir: &Path, mode: Option<&str>) -> String {
    let s = a
        .node
        .share_add(ShareAddDto { path: a_dir.display().to_string(), label: None, mode: mode.map(String::from) })
        .await
        .expect("share add");
    accept_share_offer(a, b, &s.id, b_dir).await;
    s.id
}

/// Two paired nodes with a fresh folder of `a`'s shared into a fresh folder of `b`'s:
/// `(a, b, a's folder, b's folder, share id)`.
pub async fn two_sharing() -> (TestNode, TestNode, TempDir, TempDir, String) {
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    pair(&a, &b).await;
    let da = tempfile::tempdir().unwrap();
    let db = tempfile::tempdir().unwrap();
    let id = share(&a, da.path(), &b, db.path(), None).await;
    (a, b, da, db, id)
}

/// `names.len()` nodes, every two paired, all members of one share made by the first (each
/// device lists every other as a member, as a mesh of devices sharing one folder does):
/// `(nodes, their folders, share id)`.
pub async fn mesh(names: &[&str]) -> (Vec<TestNode>, Vec<TempDir>, String) {
    let mut nodes = Vec::new();
    for n in names {
        nodes.push(TestNode::start(n).await);
    }
    for i in 0..nodes.len() {
        for j in i + 1..nodes.len() {
            pair(&nodes[i], &nodes[j]).await;
        }
    }
    let dirs: Vec<TempDir> = nodes.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let id = share(&nodes[0], dirs[0].path(), &nodes[1], dirs[1].path(), None).await;
    for k in 2..nodes.len() {
        accept_share_offer(&nodes[0], &nodes[k], &id, dirs[k].path()).await;
    }
    // The receivers list each other too (the share exists on both: no offer, only members).
    for i in 1..nodes.len() {
        for j in 1..nodes.len() {
            if i != j {
                nodes[i]
                    .node
                    .share_invite(InviteDto { share: id.clone(), device: nodes[j].id() })
                    .await
                    .expect("invite");
            }
        }
    }
    let refs: Vec<&TestNode> = nodes.iter().collect();
    wait_for(&refs, "every device lists every other as a member", || async {
        for n in &nodes {
            let list = n.node.share_list().await.unwrap();
            let Some(s) = list.iter().find(|s| s.id == id) else { return false };
            if nodes.iter().any(|m| m.id() != n.id() && !s.devices.contains(&m.id())) {
                return false;
            }
        }
        true
    })
    .await;
    (nodes, dirs, id)
}

/// Invites `b` to `a`'s share `id` and accepts it on `b` into `b_dir`.
pub async fn accept_share_offer(a: &TestNode, b: &TestNode, id: &str, b_dir: &Path) {
    a.node.share_invite(InviteDto { share: id.to_string(), device: b.id() }).await.expect("invite");
    let offer: PendingDto = wait_some(&[a, b], "share offer on b", || {
        let b = b.node.clone();
        let id = id.to_string();
        async move {
            b.pending().await.unwrap().into_iter().find(|p| p.kind == "share" && p.share_id.as_deref() == Some(&id))
        }
    })
    .await;
    b.node.accept(AcceptDto { id: offer.id, path: Some(b_dir.display().to_string()) }).await.expect("accept share");
}

/// Kind and BLAKE3 of every entry under `root` except Ferry's own folder: equal maps mean
/// byte-identical trees (links compared by target).
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == ".ferry" {
            continue;
        }
        // Entries may vanish while we look (a node renaming a temp file into place).
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default();
            out.insert(rel, format!("link:{target}"));
        } else if meta.is_dir() {
            out.insert(rel, "dir".into());
            walk(root, &p, out);
        } else {
            let data = std::fs::read(&p).unwrap_or_default();
            use std::os::unix::fs::PermissionsExt;
            let x = meta.permissions().mode() & 0o111 != 0;
            out.insert(rel, format!("file:{}:{}", blake3::hash(&data).to_hex(), if x { "x" } else { "-" }));
        }
    }
}

/// Random bytes from a seeded generator (tests are reproducible).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// Bytes of `share`'s content `n` served to other devices so far.
pub async fn served_bytes(n: &TestNode, share: &str) -> u64 {
    n.node.status().await.unwrap().shares.iter().find(|s| s.id == share).map_or(0, |s| s.served_bytes)
}

pub async fn in_sync(n: &TestNode, share: &str) -> bool {
    n.node.status().await.unwrap().shares.iter().any(|s| s.id == share && s.in_sync)
}

/// Waits (bounded, see [`wait_for`]) until the folders `da` of `a` and `db` of `b` hold the
/// same tree and both nodes call `share` in sync.
pub async fn wait_synced(a: &TestNode, b: &TestNode, da: &Path, db: &Path, share: &str, what: &str) {
    wait_for(&[a, b], what, || async { tree(da) == tree(db) && in_sync(a, share).await && in_sync(b, share).await })
        .await;
}

/// `delete` runs while `b` is away, so the whole burst reaches `b` in one index exchange when it
/// comes back (on the same home). Returns the restarted `b` and what keeps its home alive, once
/// `a` has indexed `deletes` local deletions.
pub async fn delete_while_away(
    a: &TestNode,
    b: TestNode,
    deletes: u64,
    delete: impl FnOnce(),
) -> (TestNode, Option<TempDir>) {
    let (name, tweak) = (b.name.clone(), b.tweak);
    let (home_b, guard_b) = b.stop().await;
    delete();
    a.node.rescan_all();
    wait_for(&[a], "a indexed the deletes", || async {
        a.node.status().await.unwrap().shares[0].summary.since_start.local_deletes == deletes
    })
    .await;
    (TestNode::start_at_with(&name, &home_b, tweak).await, guard_b)
}

/// The mass-delete prompt `n` shows, if any.
pub async fn mass_delete_prompt(n: &TestNode) -> Option<PendingDto> {
    n.node.pending().await.unwrap().into_iter().find(|p| p.kind == "mass-delete")
}

/// Now, in milliseconds since the Unix epoch (the clock the history uses).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `ms` as RFC 3339, as `ferry rewind --to` and `restore --at` take it.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

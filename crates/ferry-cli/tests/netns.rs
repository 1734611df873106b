//! Real `ferry daemon` processes on a multi-host network of Linux namespaces (see
//! `ferry_e2e::netns`): discovery with real mDNS, pairing by name, sync among three hosts, a
//! cut link during a large transfer, packet loss, a crashed host, and interop with an
//! independent mDNS implementation (python-zeroconf).
//!
//! Needs root (CI runs as root); elsewhere every test prints "skipped: needs root" and passes.
//! All traffic stays inside the namespaces each test creates; clients talk to the daemons over
//! their control sockets (files), never over a network.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_e2e::netns::{Net, NsDaemon, PORT, poll};
use ferry_e2e::{random_bytes, tree};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
const POLL: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(90);
/// Bound for the phases that move hundreds of MiB.
const SLOW: Duration = Duration::from_secs(420);
const MIB: usize = 1 << 20;

fn net(n: usize) -> Option<Net> {
    match Net::new(n) {
        Ok(net) => Some(net),
        Err(e) => {
            eprintln!("skipped: {}", e.0);
            None
        }
    }
}

fn bin() -> &'static Path {
    Path::new(FERRY)
}

/// `a` asks `b` (named by its device name only) to pair; `b` accepts the prompt.
fn pair_by_name(a: &NsDaemon, b: &NsDaemon) {
    let mut pair = a
        .cmd(&["pair", &b.name, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferry pair");
    let a_id = a.id();
    let prompt = poll(&format!("{}'s pairing prompt on {}", a.name, b.name), WAIT, POLL, || {
        if let Some(status) = pair.try_wait().unwrap() {
            let out = pair.stderr.take().map(|mut e| {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                s
            });
            panic!("ferry pair {} ended early ({status}): {out:?}", b.name);
        }
        b.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "pair" && p["device"] == a_id.as_str()).cloned()
    });
    b.cli(&["accept", &prompt["id"].to_string()]);
    let deadline = Instant::now() + WAIT;
    while pair.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ferry pair did not finish");
        std::thread::sleep(POLL);
    }
    let out = pair.wait_with_output().unwrap();
    assert!(out.status.success(), "ferry pair {}: {}", b.name, String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "accepted");
    assert_eq!(v["code"], prompt["code"], "both screens show the same code");
}

/// Shares `dir` on `a` with `b`, which accepts it into `b_dir`. Returns the share id.
fn share_with(a: &NsDaemon, share: &str, b: &NsDaemon, b_dir: &Path) -> String {
    a.cli(&["share", "invite", share, &b.id()]);
    let prompt = poll("the share offer", WAIT, POLL, || {
        b.json(&["pending"]).as_array()?.iter().find(|p| p["kind"] == "share" && p["share_id"] == share).cloned()
    });
    b.cli(&["accept", &prompt["id"].to_string(), "--path", b_dir.to_str().unwrap()]);
    share.to_string()
}

fn add_share(a: &NsDaemon, dir: &Path) -> String {
    a.json(&["share", "add", dir.to_str().unwrap()])["id"].as_str().unwrap().to_string()
}

fn write_random(path: &Path, seed: u64, len: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut left = len;
    let mut s = seed;
    while left > 0 {
        let n = left.min(16 * MIB);
        f.write_all(&random_bytes(s, n)).unwrap();
        s += 1;
        left -= n;
    }
    f.sync_all().unwrap();
}

fn fetched(d: &NsDaemon, share: &str) -> u64 {
    d.share_status(share).and_then(|s| s["fetched_bytes"].as_u64()).unwrap_or(0)
}

fn in_sync(d: &NsDaemon, share: &str) -> bool {
    d.share_status(share).is_some_and(|s| s["in_sync"] == true && s["need"] == 0)
}

/// Two hosts paired by name with one shared folder (host 1's `a`, host 2's `b`).
/// Fields drop in order: the daemons stop before their network goes away.
struct Pair {
    _h1: NsDaemon,
    h2: NsDaemon,
    share: String,
    a: PathBuf,
    b: PathBuf,
    _dirs: tempfile::TempDir,
    net: Net,
}

fn two_hosts() -> Option<Pair> {
    let net = net(2)?;
    let h1 = NsDaemon::start(&net, 0, bin(), "h1", &[]);
    let h2 = NsDaemon::start(&net, 1, bin(), "h2", &[]);
    let id2 = h2.id();
    poll("h1 sees h2 nearby", WAIT, POLL, || h1.sees_nearby(&id2).then_some(()));
    pair_by_name(&h1, &h2);
    let dirs = tempfile::tempdir().unwrap();
    let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let share = add_share(&h1, &a);
    share_with(&h1, &share, &h2, &b);
    Some(Pair { _h1: h1, h2, share, a, b, _dirs: dirs, net })
}

#[test]
fn three_hosts_find_each_other_pair_by_name_sync_and_notice_a_crash() {
    let Some(net) = net(3) else { return };
    let started = Instant::now();
    let hosts: Vec<NsDaemon> =
        (0..3).map(|i| NsDaemon::start(&net, i, bin(), &format!("host{}", i + 1), &[])).collect();
    let ready = Instant::now();
    let ids: Vec<String> = hosts.iter().map(|h| h.id()).collect();
    // Each sees the other two as nearby, with the address of their namespace.
    poll("all three see each other as nearby", Duration::from_secs(3), Duration::from_millis(50), || {
        (0..3).all(|i| (0..3).filter(|j| *j != i).all(|j| hosts[i].sees_nearby(&ids[j]))).then_some(())
    });
    let nearby_after = ready.elapsed();
    eprintln!(
        "[netns] nearby: {:?} after the last daemon answered ({:?} after the first started)",
        nearby_after,
        started.elapsed()
    );
    let d = hosts[0].device(&ids[1]).unwrap();
    assert_eq!(d["paired"], false);
    assert_eq!(d["name"], "host2");
    let want = format!("{}:{PORT}", net.hosts[1].ip);
    assert!(
        d["nearby_addresses"].as_array().unwrap().iter().any(|a| a == want.as_str()),
        "host2 is announced at {want}: {d}"
    );
    let doc = hosts[0].json(&["doctor"]);
    assert_eq!(doc["mdns"]["state"], "running", "{doc}");
    let eth0 = doc["mdns"]["interfaces"].as_array().unwrap().iter().find(|i| i["name"] == "eth0").cloned();
    let eth0 = eth0.unwrap_or_else(|| panic!("doctor lists eth0: {doc}"));
    assert_eq!(eth0["answered"], true, "{doc}");
    assert!(eth0["sent"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["mdns"]["nearby"].as_array().unwrap().len(), 2);

    // Pair by name only, host1 with host2 and host3.
    pair_by_name(&hosts[0], &hosts[1]);
    pair_by_name(&hosts[0], &hosts[2]);
    let dirs = tempfile::tempdir().unwrap();
    let roots: Vec<PathBuf> = (0..3).map(|i| dirs.path().join(format!("s{i}"))).collect();
    std::fs::create_dir_all(&roots[0]).unwrap();
    let share = add_share(&hosts[0], &roots[0]);
    share_with(&hosts[0], &share, &hosts[1], &roots[1]);
    share_with(&hosts[0], &share, &hosts[2], &roots[2]);
    let content = random_bytes(7, 3 * MIB + 11);
    std::fs::write(roots[0].join("from-host1.bin"), &content).unwrap();
    std::fs::create_dir_all(roots[0].join("docs")).unwrap();
    std::fs::write(roots[0].join("docs/readme.txt"), b"hello from host 1\n").unwrap();
    let t = Instant::now();
    poll("the files reach host2 and host3", WAIT, POLL, || {
        let want = tree(&roots[0]);
        (want.len() == 3 && tree(&roots[1]) == want && tree(&roots[2]) == want).then_some(())
    });
    eprintln!("[netns] 3 MiB from host1 reached host2 and host3 in {:?}", t.elapsed());
    assert_eq!(std::fs::read(roots[2].join("from-host1.bin")).unwrap(), content);

    // Host 3 crashes: host 1 marks it disconnected within 10 s.
    let mut hosts = hosts;
    assert!(hosts[0].connected_to(&ids[2]));
    let killed = Instant::now();
    hosts[2].kill();
    poll("host1 marks host3 disconnected", Duration::from_secs(10), POLL, || {
        hosts[0].device(&ids[2]).is_some_and(|d| d["connected"] == false).then_some(())
    });
    eprintln!("[netns] host3 SIGKILLed: host1 marked it disconnected after {:?}", killed.elapsed());
    assert!(hosts[0].connected_to(&ids[1]), "host2 stays connected");
}

#[test]
fn a_paired_device_that_changes_address_is_found_again_by_mdns() {
    let Some(p) = two_hosts() else { return };
    let id2 = p.h2.id();
    poll("connected", WAIT, POLL, || p._h1.connected_to(&id2).then_some(()));
    // Host 2 gets a new address (a new DHCP lease) and loses the old one.
    let ns = &p.net.hosts[1].ns;
    let run = |args: &[&str]| {
        let st = Command::new("ip").args(["-n", ns]).args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    run(&["addr", "del", &format!("{}/24", p.net.hosts[1].ip), "dev", "eth0"]);
    run(&["addr", "add", "10.77.0.42/24", "dev", "eth0"]);
    run(&["route", "replace", "224.0.0.0/4", "dev", "eth0"]);
    let moved = Instant::now();
    let want = format!("10.77.0.42:{PORT}");
    poll("host1 learns host2's new address from mDNS", WAIT, POLL, || {
        let d = p._h1.device(&id2)?;
        d["nearby_addresses"].as_array()?.iter().any(|a| *a == want.as_str()).then_some(())
    });
    let learned = moved.elapsed();
    // Connected again over the new address (the connection's address is remembered first).
    poll("host1 is connected to host2 at its new address", WAIT, POLL, || {
        let d = p._h1.device(&id2)?;
        (d["connected"] == true && d["addresses"].as_array()?.first()? == want.as_str()).then_some(())
    });
    eprintln!(
        "[netns] host2 moved to 10.77.0.42: address learned after {learned:?}, connected there after {:?}",
        moved.elapsed()
    );
    // Both sides redial at once after a move; the duplicate is settled within a moment.
    poll("host1 pings host2", WAIT, POLL, || p._h1.try_cli(&["ping", &id2]).status.success().then_some(()));
    // A file still gets through on the new address.
    std::fs::write(p.a.join("after-move.txt"), b"still here").unwrap();
    poll("the file reaches host2 after the move", WAIT, POLL, || {
        (std::fs::read(p.b.join("after-move.txt")).ok()? == b"still here").then_some(())
    });
}

#[test]
fn cut_link_during_a_300_mib_transfer_resumes_without_refetching() {
    let Some(p) = two_hosts() else { return };
    const SIZE: usize = 300 * MIB;
    // A cap on the link to host 2 keeps the transfer long enough to cut it half-way.
    p.net.rate_limit(1, 400);
    write_random(&p.a.join("big.bin"), 42, SIZE);
    let start = Instant::now();
    // Generous bounds: debug builds on a busy 2-core machine hash and move a few MB/s at worst.
    poll("a third of the file has arrived", SLOW, Duration::from_millis(50), || {
        (fetched(&p.h2, &p.share) >= (SIZE / 3) as u64).then_some(())
    });
    p.net.cut(1);
    let at_cut = fetched(&p.h2, &p.share);
    eprintln!("[netns] cut host2's link at {} MiB ({:?} into the transfer)", at_cut >> 20, start.elapsed());
    std::thread::sleep(Duration::from_secs(10)); // the fault itself lasts 10 s; not a synchronisation
    let before = fetched(&p.h2, &p.share);
    p.net.restore(1);
    let back = Instant::now();
    poll("the transfer resumes after the link returns", WAIT, Duration::from_millis(50), || {
        (fetched(&p.h2, &p.share) > before).then_some(())
    });
    let resumed = back.elapsed();
    eprintln!("[netns] transfer resumed {resumed:?} after the link came back");
    poll("the trees converge", SLOW, POLL, || (in_sync(&p.h2, &p.share) && tree(&p.b) == tree(&p.a)).then_some(()));
    let total = fetched(&p.h2, &p.share);
    eprintln!("[netns] 300 MiB delivered in {:?}; fetched {} MiB in all", start.elapsed(), total >> 20);
    // Chunks received before the cut are not fetched again: at most the blocks in flight at
    // the cut (16 parallel requests of at most 1 MiB) are lost and fetched twice.
    assert!(
        total <= (SIZE + 24 * MIB) as u64,
        "fetched {} MiB for a 300 MiB file: received chunks were fetched again",
        total >> 20
    );
    assert_eq!(tree(&p.b)["big.bin"], tree(&p.a)["big.bin"]);
    // The cut outlasted the QUIC idle timeout, so the transfer really was interrupted and
    // continued in the kept temp file (not merely carried over by QUIC retransmissions).
    let log = std::fs::read_to_string(p.h2.home.join("daemon.log")).unwrap_or_default();
    assert!(log.contains("received chunks kept for the next try"), "the transfer was never interrupted");
}

#[test]
fn five_percent_loss_100_mib_arrives_intact() {
    let Some(p) = two_hosts() else { return };
    p.net.loss(5);
    const SIZE: usize = 100 * MIB;
    write_random(&p.a.join("lossy.bin"), 9, SIZE);
    let start = Instant::now();
    poll("100 MiB arrives through 5% loss", SLOW, POLL, || {
        (in_sync(&p.h2, &p.share) && tree(&p.b) == tree(&p.a)).then_some(())
    });
    eprintln!("[netns] 100 MiB through 5% loss in {:?}", start.elapsed());
    let got = blake3::hash(&std::fs::read(p.b.join("lossy.bin")).unwrap());
    let want = blake3::hash(&std::fs::read(p.a.join("lossy.bin")).unwrap());
    assert_eq!(got, want);
}

/// python-zeroconf with the `zeroconf` package: `FERRY_ZEROCONF_PYTHON`, or the venv that
/// .ci/netns-setup makes.
fn zeroconf_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("FERRY_ZEROCONF_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ferry-netns-venv/bin/python")));
    candidates.into_iter().find(|p| {
        Command::new(p).args(["-c", "import zeroconf"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

const ZEROCONF_SCRIPT: &str = r#"
import json, socket, sys, time
from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

ip, fake_id = sys.argv[1], sys.argv[2]
zc = Zeroconf(interfaces=[ip], ip_version=IPVersion.V4Only)
TYPE = "_ferry._udp.local."
mine = ServiceInfo(TYPE, "zc-peer." + TYPE, addresses=[socket.inet_aton(ip)], port=22010,
                   properties={"id": fake_id, "name": "zc-peer", "proto": "1"}, server="zc-peer.local.")
zc.register_service(mine)
found = {}
class L:
    def add_service(self, zc, t, name):
        if name != mine.name:
            found[name] = True
    def update_service(self, zc, t, name): pass
    def remove_service(self, zc, t, name): pass
ServiceBrowser(zc, TYPE, L())
deadline = time.time() + 20
out = None
while time.time() < deadline and out is None:
    for name in list(found):
        info = zc.get_service_info(TYPE, name, timeout=2000)
        if info and info.properties:
            props = {k.decode(): (v.decode() if v is not None else None) for k, v in info.properties.items()}
            out = {"name": name, "port": info.port, "txt": props, "addresses": info.parsed_addresses()}
    time.sleep(0.1)
print(json.dumps(out), flush=True)
sys.stdin.read()  # stay registered until the test is done
zc.unregister_service(mine)
zc.close()
"#;

#[test]
fn python_zeroconf_and_ferry_see_each_other() {
    let Some(net) = net(2) else { return };
    let Some(py) = zeroconf_python() else {
        assert!(std::env::var_os("CI").is_none(), "CI must have python-zeroconf (.ci/netns-setup installs it)");
        eprintln!("skipped: python-zeroconf is not installed (run .ci/netns-setup)");
        return;
    };
    let h1 = NsDaemon::start(&net, 0, bin(), "ferry-one", &[]);
    let id1 = h1.id();
    let fake = ferry_e2e_fake_id();
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), ZEROCONF_SCRIPT).unwrap();
    let mut zc = net
        .command(1, &py)
        .arg(script.path())
        .arg(net.hosts[1].ip.to_string())
        .arg(&fake)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python-zeroconf");
    // Ferry lists the zeroconf-registered service as a nearby device.
    let d = poll("ferry lists the zeroconf service as nearby", Duration::from_secs(30), POLL, || {
        h1.device(&fake).filter(|d| d["nearby"] == true)
    });
    assert_eq!(d["name"], "zc-peer");
    assert_eq!(d["paired"], false);
    let want = format!("{}:22010", net.hosts[1].ip);
    assert!(d["nearby_addresses"].as_array().unwrap().iter().any(|a| a == want.as_str()), "{d}");
    // And zeroconf resolved Ferry's service with the right TXT records.
    let mut line = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(zc.stdout.take().unwrap());
        r.read_line(&mut line).unwrap();
    }
    drop(zc.stdin.take());
    let _ = zc.wait();
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("zeroconf said {line:?}: {e}"));
    assert!(!v.is_null(), "python-zeroconf did not resolve Ferry's service");
    assert_eq!(v["txt"]["id"], id1.as_str(), "{v}");
    assert_eq!(v["txt"]["name"], "ferry-one", "{v}");
    assert_eq!(v["txt"]["proto"], ferry_proto::PROTOCOL_VERSION.to_string().as_str(), "{v}");
    assert_eq!(v["port"], PORT, "{v}");
    assert!(v["addresses"].as_array().unwrap().iter().any(|a| *a == net.hosts[0].ip.to_string()), "{v}");
}

/// A well-formed device id nobody holds (the zeroconf peer's claim).
fn ferry_e2e_fake_id() -> String {
    let bytes: [u8; 32] = random_bytes(99, 32).try_into().unwrap();
    ferry_proto::DeviceId(bytes).to_string()
}

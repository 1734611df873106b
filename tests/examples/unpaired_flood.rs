//! Does a flood of unpaired connection attempts slow the sync between two paired devices?
//! (Issue 14, item 7.) A measurement, not a test: `bench/unpaired-flood` runs it and prints the
//! table it writes.
//!
//! Two in-process nodes on 127.0.0.1 (mDNS off), paired, one share. Each trial moves a fresh
//! folder (`FILES` files of `FILE_KIB` KiB and one file of `BIG_MIB` MiB, seeded random bytes)
//! into the sender's share with one rename and times until the receiver holds all of it (cheap
//! poll on sizes every 10 ms, then an untimed byte check). Trials alternate: quiet, flood,
//! quiet, flood, ... In a flood trial a separate process (this binary with `--flood`) makes
//! `ATTEMPTS` connection attempts from `STRANGERS` unpaired identities, half to each node,
//! `IN_FLIGHT` at a time, each holding its connection after the Hello until the node closes it,
//! started at the moment of the rename. A real flood comes from other machines; here it shares
//! the two nodes' CPUs, so it runs at `nice` `FLOOD_NICE` (default 19; 0 to compete as an
//! equal), and its own CPU time is printed.
//!
//! Printed per trial: sync time, CPU seconds of the nodes (this process) and of the flooder,
//! the machine's busy share of its CPUs (all processes, from /proc/stat) and the 1-minute load
//! average; then the flood's outcomes (Hello answered, closed as busy, refused before TLS, other).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_e2e::{TestNode, in_sync, random_bytes, share, wait_for};
use ferry_net::{Endpoint, Identity, NetError};
use ferry_proto::DeviceId;
use ferry_proto::wire::{Hello, PROTOCOL_VERSION};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--flood") {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        return rt.block_on(flood(&args[2..]));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(bench());
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from the state field as 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?").to_string()
}

/// Writes one trial's folder into `stage` (outside the share).
fn make_folder(stage: &Path, seed: u64, files: usize, kib: usize, big_mib: usize) {
    std::fs::create_dir_all(stage).unwrap();
    for i in 0..files {
        std::fs::write(stage.join(format!("f{i:04}.bin")), random_bytes(seed * 100_000 + i as u64, kib << 10)).unwrap();
    }
    std::fs::write(stage.join("big.bin"), random_bytes(seed * 100_000 + 99_999, big_mib << 20)).unwrap();
}

/// Whether `dir` holds everything `stage_sizes` lists, at those sizes.
fn arrived(dir: &Path, sizes: &[(String, u64)]) -> bool {
    sizes.iter().all(|(n, s)| std::fs::metadata(dir.join(n)).map(|m| m.len() == *s).unwrap_or(false))
}

async fn bench() {
    let trials = env("TRIALS", 5);
    let (files, kib, big) = (env("FILES", 500), env("FILE_KIB", 32), env("BIG_MIB", 32));
    let attempts = env("ATTEMPTS", 1000);
    let a = TestNode::start("alpha").await;
    let b = TestNode::start("beta").await;
    ferry_e2e::pair(&a, &b).await;
    let work = tempfile::tempdir().unwrap();
    let (da, db) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let sid = share(&a, &da, &b, &db, None).await;
    let me = std::process::id().to_string();
    let exe = std::env::current_exe().unwrap();
    println!("| trial | flood | sync s | MB | nodes CPU s | flooder CPU s | machine busy | load 1m | flood outcome |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for t in 0..2 * trials {
        let flooding = t % 2 == 1;
        let stage = work.path().join(format!("stage{t}"));
        make_folder(&stage, t as u64 + 1, files, kib, big);
        let sizes: Vec<(String, u64)> = std::fs::read_dir(&stage)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
            .collect();
        let bytes: u64 = sizes.iter().map(|s| s.1).sum();
        let name = format!("trial{t}");
        let (cpu0, m0) = (cpu_secs(&me), machine_jiffies());
        let flooder = flooding.then(|| {
            Command::new("nice")
                .args(["-n", &env("FLOOD_NICE", 19).to_string()])
                .arg(&exe)
                .args(["--flood", &a.addr(), &a.id(), &b.addr(), &b.id(), &attempts.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("flooder starts")
        });
        let t0 = Instant::now();
        std::fs::rename(&stage, da.join(&name)).unwrap();
        let target = db.join(&name);
        while !arrived(&target, &sizes) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(t0.elapsed() < Duration::from_secs(600), "trial {t} did not finish in 10 minutes");
        }
        let took = t0.elapsed();
        let (cpu1, m1) = (cpu_secs(&me), machine_jiffies());
        let busy = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64;
        let load = loadavg();
        for (n, _) in &sizes {
            assert_eq!(std::fs::read(da.join(&name).join(n)).unwrap(), std::fs::read(target.join(n)).unwrap(), "{n}");
        }
        let (flood_cpu, outcome) = match flooder {
            Some(child) => {
                let pid = child.id().to_string();
                let cpu = cpu_secs(&pid);
                let out = child.wait_with_output().unwrap();
                (format!("{cpu:.2} (at sync end)"), String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {t} | {} | {:.2} | {:.1} | {:.2} | {flood_cpu} | {:.0}% | {load} | {outcome} |",
            if flooding { "yes" } else { "no" },
            took.as_secs_f64(),
            bytes as f64 / 1e6,
            cpu1 - cpu0,
            busy * 100.0,
        );
        wait_for(&[&a, &b], "in sync before the next trial", || async {
            in_sync(&a, &sid).await && in_sync(&b, &sid).await
        })
        .await;
    }
    a.node.shutdown().await;
    b.node.shutdown().await;
}

/// The flooder: `--flood ADDR_A ID_A ADDR_B ID_B ATTEMPTS`. Prints its outcome counts.
async fn flood(args: &[String]) {
    let targets: Vec<(std::net::SocketAddr, DeviceId)> =
        args[..4].chunks(2).map(|c| (c[0].parse().unwrap(), c[1].parse().unwrap())).collect();
    let attempts: usize = args[4].parse().unwrap();
    let strangers: Vec<Endpoint> = (0..env("STRANGERS", 50))
        .map(|_| Endpoint::bind(&Identity::generate().unwrap(), "127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(env("IN_FLIGHT", 128)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..attempts {
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let ep = strangers[i % strangers.len()].clone();
        let (addr, id) = targets[i % targets.len()];
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let hello = Hello { protocol: PROTOCOL_VERSION, name: "stranger".into(), owner: "x".into() };
            let conn = match ep.connect(addr, Some(id)).await {
                Ok(c) => c,
                Err(NetError::Connection(_)) => return "refused",
                Err(_) => return "other",
            };
            let res = conn.handshake(&hello).await;
            let why = tokio::time::timeout(Duration::from_secs(20), conn.closed()).await;
            match (res, why) {
                (Ok(_), _) => "hello",
                (Err(_), Ok(e)) if e.to_string().contains("too many unpaired") => "busy",
                _ => "other",
            }
        }));
    }
    let mut counts = std::collections::BTreeMap::new();
    for t in tasks {
        *counts.entry(t.await.unwrap_or("other")).or_insert(0) += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("{} in {:.1} s", parts.join(", "), started.elapsed().as_secs_f64());
}

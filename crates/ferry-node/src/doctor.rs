//! `ferry doctor`: the facts a person needs when devices do not find or reach each other:
//! per interface whether mDNS goes out and whether anyone answers, the devices seen, the
//! listen address, the inotify watch budget for the shares, and the control socket's state.
//! [`Node::doctor`] answers from a running node; [`offline`] answers without one, from the
//! home's config and database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::*;
use crate::config::{Config, Overrides, socket_path};
use crate::context::{ApiResult, Context};

/// Above this share of `max_user_watches` the budget counts as nearly exhausted.
const NEAR_LIMIT: f64 = 0.8;
/// A generous value to suggest: what most distributions' sync tools ask for.
const SUGGESTED_WATCHES: u64 = 524_288;
/// Directories counted per share at most (a bound on the walk's cost).
const MAX_DIRS_COUNTED: u64 = 5_000_000;

pub(crate) async fn mdns_running(inner: &Arc<Context>) -> ApiResult<MdnsDoctorDto> {
    let devices = inner.db(|s| s.devices()).await?;
    let nearby = inner
        .book
        .nearby()
        .into_iter()
        .map(|s| NearbyDto {
            id: s.id.to_string(),
            name: s.name,
            addresses: s.addrs.iter().map(|a| a.to_string()).collect(),
            interfaces: s.interfaces,
            paired: devices.iter().any(|d| d.id == s.id && d.paired),
        })
        .collect();
    if !inner.cfg.mdns {
        return Ok(MdnsDoctorDto {
            enabled: false,
            state: "off".into(),
            error: None,
            service: None,
            interfaces: vec![],
            nearby,
        });
    }
    let error = inner.mdns_error.lock().unwrap().clone();
    let report = inner.book.report();
    Ok(MdnsDoctorDto {
        enabled: true,
        state: if report.is_some() { "running".into() } else { "failed".into() },
        error: error.or_else(|| report.as_ref().and_then(|r| r.errors.last().cloned())),
        service: report.as_ref().map(|r| r.service.clone()),
        interfaces: report
            .map(|r| {
                r.interfaces
                    .into_iter()
                    .map(|i| InterfaceDto {
                        answered: Some(!i.peers_seen.is_empty()),
                        sent: Some(i.announcements_sent + i.responses_sent),
                        name: i.name,
                        addresses: i.addresses,
                        peers: i.peers_seen,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        nearby,
    })
}

/// The report without a running node: what the config says, what the interfaces are, and
/// what the inotify budget would be once the shares are watched.
pub async fn offline(overrides: Overrides) -> DoctorDto {
    let home = Config::home_from(&overrides);
    let sock = socket_path(&home);
    let sock_state = if !sock.exists() {
        "missing"
    } else if tokio::net::UnixStream::connect(&sock).await.is_ok() {
        // Answers but the caller could not use it (a different version, or it just started).
        "answering"
    } else {
        "stale"
    };
    let (cfg, cfg_error) = if home.is_dir() {
        match Config::load(overrides.clone()) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    let db = home.join("ferry.redb");
    let shares: Vec<PathBuf> = if db.exists() && sock_state != "answering" {
        tokio::task::spawn_blocking(move || {
            ferry_store::Store::open(&db)
                .and_then(|s| s.shares())
                .map(|v| v.into_iter().map(|s| PathBuf::from(s.path)).collect())
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default()
    } else {
        vec![]
    };
    let inotify = tokio::task::spawn_blocking(move || inotify_report(&shares, false)).await.unwrap_or(InotifyDto {
        max_user_watches: None,
        watches_in_use: None,
        watches_needed: 0,
        near_limit: false,
        fix: None,
    });
    let (enabled, names) = cfg.as_ref().map(|c| (c.mdns, c.mdns_interfaces.clone())).unwrap_or((true, vec![]));
    let interfaces = if enabled {
        ferry_net::mdns_interfaces(&names)
            .into_iter()
            .map(|(name, ips)| InterfaceDto {
                name,
                addresses: ips.iter().map(|i| i.to_string()).collect(),
                sent: None,
                answered: None,
                peers: vec![],
            })
            .collect()
    } else {
        vec![]
    };
    let mut d = DoctorDto {
        daemon_running: false,
        control_socket: sock.display().to_string(),
        control_socket_state: sock_state.into(),
        device_id: None,
        name: cfg.as_ref().map(|c| c.name.clone()),
        listen: cfg
            .as_ref()
            .map(|c| c.listen.to_string())
            .unwrap_or_else(|| format!("0.0.0.0:{}", crate::config::DEFAULT_PORT)),
        mdns: MdnsDoctorDto {
            enabled,
            state: if enabled { "daemon not running".into() } else { "off".into() },
            error: None,
            service: None,
            interfaces,
            nearby: vec![],
        },
        kdeconnect: kde_offline(cfg.as_ref().map(|c| (c.kdeconnect, c.kdeconnect_bind))),
        localsend: ls_offline(cfg.as_ref()),
        inotify,
        problems: vec![],
    };
    d.problems = problems(&d);
    if !home.is_dir() {
        d.problems.insert(0, format!("{} does not exist yet: `ferry daemon` creates it", home.display()));
    }
    if let Some(e) = cfg_error {
        d.problems.insert(0, format!("the configuration is not valid: {e}"));
    }
    d
}

/// KDE Connect in a running node.
pub(crate) fn kde_running(inner: &Context) -> KdeDoctorDto {
    let reason = inner.kde.off_reason.lock().unwrap().clone();
    let state = match (inner.cfg.kdeconnect, inner.kde.running()) {
        (false, _) => "off",
        (true, true) => "running",
        (true, false) => "failed",
    };
    KdeDoctorDto {
        enabled: inner.cfg.kdeconnect,
        state: state.into(),
        reason,
        port: *inner.kde.port.lock().unwrap(),
        nearby: inner.kde.nearby.lock().unwrap().len() as u32,
        connected: inner.kde.links.lock().unwrap().len() as u32,
    }
}

/// KDE Connect without a running node: would it start? Only a bind is tried (nothing is sent).
fn kde_offline(cfg: Option<(bool, std::net::IpAddr)>) -> KdeDoctorDto {
    let (enabled, bind) = cfg.unwrap_or((true, std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
    let mut d = KdeDoctorDto { enabled, state: "daemon not running".into(), ..Default::default() };
    if !enabled {
        d.state = "off".into();
        d.reason = Some("turned off (--no-kdeconnect, FERRY_KDECONNECT=0 or kdeconnect = false)".into());
    } else if std::net::UdpSocket::bind((bind, ferry_kdeconnect::UDP_PORT)).is_err() {
        d.state = "failed".into();
        d.reason = Some(format!(
            "another program (kdeconnectd or GSConnect) holds UDP port {} on this computer; Ferry will leave KDE \
             Connect to it",
            ferry_kdeconnect::UDP_PORT
        ));
    }
    d
}

/// LocalSend in a running node.
pub(crate) fn ls_running(inner: &Context) -> LsDoctorDto {
    let state = match (inner.cfg.localsend, inner.ls.running()) {
        (false, _) => "off",
        (true, true) => "running",
        (true, false) => "failed",
    };
    LsDoctorDto {
        enabled: inner.cfg.localsend,
        state: state.into(),
        reason: inner.ls.off_reason.lock().unwrap().clone(),
        port: *inner.ls.port.lock().unwrap(),
        fingerprint: inner.ls.local.get().map(|l| l.fingerprint.clone()),
        nearby: inner.ls.nearby.lock().unwrap().len() as u32,
        pin: inner.cfg.localsend_pin.is_some(),
    }
}

/// LocalSend without a running node: would it start? Only a bind is tried (nothing is sent).
fn ls_offline(cfg: Option<&crate::config::Config>) -> LsDoctorDto {
    let any = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
    let (enabled, bind, port, pin) = cfg
        .map(|c| (c.localsend, c.localsend_bind, c.localsend_port, c.localsend_pin.is_some()))
        .unwrap_or((true, any, crate::config::LOCALSEND_PORT, false));
    let mut d = LsDoctorDto { enabled, state: "daemon not running".into(), pin, ..Default::default() };
    if !enabled {
        d.state = "off".into();
        d.reason = Some("turned off (--no-localsend, FERRY_LOCALSEND=0 or localsend = false)".into());
    } else if std::net::TcpListener::bind((bind, port)).is_err() {
        d.state = "failed".into();
        d.reason = Some(format!(
            "another program (another LocalSend) holds TCP port {port} on this computer; Ferry will leave LocalSend              to it"
        ));
    }
    d
}

pub(crate) fn problems(d: &DoctorDto) -> Vec<String> {
    let mut p = Vec::new();
    match d.control_socket_state.as_str() {
        "missing" => p.push("no Ferry node is running for this home: start one with `ferry daemon`".to_string()),
        "stale" => p.push(format!(
            "{} is left from a node that is gone (it is replaced when `ferry daemon` starts)",
            d.control_socket
        )),
        _ => {}
    }
    if d.mdns.enabled {
        if let Some(e) = &d.mdns.error {
            p.push(format!("mDNS reported an error: {e}"));
        }
        if d.mdns.interfaces.is_empty() {
            p.push(
                "no interface can carry mDNS (none is up, non-loopback and multicast-capable, or --mdns-interface \
                 names none that exists): other devices will not see this one; pair with `ferry pair HOST:PORT`"
                    .into(),
            );
        }
        for i in &d.mdns.interfaces {
            if i.sent == Some(0) {
                p.push(format!("nothing was announced on {} yet (multicast blocked or the interface is new)", i.name));
            }
        }
        if d.daemon_running && !d.mdns.interfaces.is_empty() && d.mdns.nearby.is_empty() {
            p.push(
                "no other Ferry device answered mDNS: check that they run, are on the same network, and that the \
                 firewall allows UDP 5353 (mDNS) and the QUIC port"
                    .into(),
            );
        }
    } else {
        p.push("mDNS is off (--no-mdns, FERRY_MDNS=0 or mdns = false): devices must be paired by address".into());
    }
    if d.kdeconnect.state == "failed"
        && let Some(r) = &d.kdeconnect.reason
    {
        p.push(format!("KDE Connect is not running: {r}"));
    }
    if d.localsend.state == "failed"
        && let Some(r) = &d.localsend.reason
    {
        p.push(format!("LocalSend is not running: {r}"));
    }
    if let Some(fix) = &d.inotify.fix {
        p.push(format!("the inotify watch limit is nearly exhausted; raise it: {fix}"));
    }
    p
}

/// `fs.inotify.max_user_watches`, the watches this user holds, and the share directories.
pub(crate) fn inotify_report(shares: &[PathBuf], running: bool) -> InotifyDto {
    let max = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches").ok().and_then(|s| s.trim().parse().ok());
    let in_use = watches_in_use();
    let needed: u64 = shares.iter().map(|p| count_dirs(p)).sum();
    // A running node's watches are already in `in_use`.
    let projected = in_use.unwrap_or(0) + if running { 0 } else { needed };
    let near = match max {
        Some(m) => projected as f64 >= m as f64 * NEAR_LIMIT || needed >= m,
        None => false,
    };
    let fix = near.then(|| {
        let want = SUGGESTED_WATCHES.max((projected.max(needed)) * 2);
        format!(
            "sudo sysctl -w fs.inotify.max_user_watches={want} && echo fs.inotify.max_user_watches={want} | sudo tee \
             /etc/sysctl.d/90-ferry.conf"
        )
    });
    InotifyDto { max_user_watches: max, watches_in_use: in_use, watches_needed: needed, near_limit: near, fix }
}

/// Inotify watches held by this user's processes (from /proc/*/fdinfo); `None` where /proc
/// cannot tell.
fn watches_in_use() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok()?.uid();
    let mut total = 0u64;
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        if !p.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if p.metadata().map(|m| m.uid()).ok() != Some(me) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            let is_inotify = std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:inotify");
            if !is_inotify {
                continue;
            }
            let info = p.path().join("fdinfo").join(fd.file_name());
            if let Ok(text) = std::fs::read_to_string(info) {
                total += text.lines().filter(|l| l.starts_with("inotify wd:")).count() as u64;
            }
        }
    }
    Some(total)
}

/// Directories under `root` (itself included), not following symlinks; Ferry's own folder
/// is not watched and not counted.
fn count_dirs(root: &Path) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        n += 1;
        if n >= MAX_DIRS_COUNTED {
            break;
        }
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name() != ".ferry" {
                stack.push(e.path());
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_directories_without_ferrys_own() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::create_dir_all(d.path().join(".ferry/versions")).unwrap();
        std::fs::write(d.path().join("a/f"), b"x").unwrap();
        assert_eq!(count_dirs(d.path()), 3);
        let r = inotify_report(&[d.path().to_path_buf()], false);
        assert_eq!(r.watches_needed, 3);
        assert!(r.max_user_watches.is_some(), "Linux exposes the limit");
    }

    #[tokio::test]
    async fn offline_report_says_no_node_runs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ferry.toml"), "mdns = false\nlisten = \"127.0.0.1:4100\"\n").unwrap();
        let r = offline(Overrides { home: Some(d.path().into()), ..Default::default() }).await;
        assert!(!r.daemon_running);
        assert_eq!(r.control_socket_state, "missing");
        assert_eq!(r.listen, "127.0.0.1:4100");
        assert!(!r.mdns.enabled);
        assert!(r.problems.iter().any(|p| p.contains("ferry daemon")), "{:?}", r.problems);
    }
}

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn identity_body() -> serde_json::Value {
    json!({"deviceId": "0123456789abcdef0123456789abcdef", "deviceName": "Phone (work)", "deviceType": "smartphone",
           "protocolVersion": 7, "incomingCapabilities": ["kdeconnect.ping"], "outgoingCapabilities": [],
           "tcpPort": 1716})
}

fn identity_with(key: &str, value: serde_json::Value) -> Result<Identity, KdeError> {
    let mut body = identity_body();
    body[key] = value;
    Identity::from_packet(&Packet::new("kdeconnect.identity", body))
}

#[test]
fn packet_round_trip_and_kde_shapes() {
    let mut p = Packet::new("kdeconnect.share.request", json!({"filename": "a.txt"}));
    p.payload_size = Some(12);
    p.payload_port = Some(1739);
    let line = p.to_line();
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(Packet::parse(&line).unwrap(), p);
    // KDE 22.12's ping as sent by kdeconnectd; and an id as a string (older versions).
    let ping = Packet::parse(br#"{"body":{"message":"hi"},"id":1733390000000,"type":"kdeconnect.ping"}"#).unwrap();
    assert_eq!(
        (ping.id, ping.kind.as_str(), ping.body["message"].as_str()),
        (1733390000000, "kdeconnect.ping", Some("hi"))
    );
    assert_eq!(Packet::parse(br#"{"id":"42","type":"x","body":{}}"#).unwrap().id, 42);
}

#[test]
fn packet_parse_refuses_malformed_and_wrong_types() {
    let bad: [&[u8]; 11] = [
        b"",
        b"not json",
        b"[1,2]",
        br#"{"id":1,"body":{}}"#,
        br#"{"id":1,"type":5,"body":{}}"#,
        br#"{"id":1,"type":"x","body":[]}"#,
        br#"{"id":1,"type":"x"}"#,
        br#"{"id":true,"type":"x","body":{}}"#,
        br#"{"id":1,"type":"x","body":{},"payloadSize":"12"}"#,
        br#"{"id":1,"type":"x","body":{},"payloadTransferInfo":{"port":70000}}"#,
        br#"{"id":1,"type":"x","body":{},"payloadTransferInfo":7}"#,
    ];
    for line in bad {
        assert!(Packet::parse(line).is_err(), "accepted {}", String::from_utf8_lossy(line));
    }
}

#[test]
fn packet_parse_refuses_oversized_before_parsing() {
    let mut line = br#"{"id":1,"type":"kdeconnect.ping","body":{"message":""#.to_vec();
    line.resize(MAX_PACKET + 1, b'a');
    assert!(matches!(Packet::parse(&line), Err(KdeError::TooLarge { .. })));
}

#[test]
fn identity_checks_id_name_and_capabilities() {
    let id = Identity::from_packet(&Packet::new("kdeconnect.identity", identity_body())).unwrap();
    assert_eq!(id.device_name, "Phone work", "KDE's filter removes ( and )");
    assert_eq!((id.device_type, id.protocol_version, id.tcp_port), (DeviceType::Phone, 7, Some(1716)));
    assert_eq!(Identity::from_packet(&id.packet()).unwrap(), id);
    // 22.12's ids: a UUID with underscores.
    assert!(identity_with("deviceId", json!("a1b2c3d4_e5f6_4789_abcd_0123456789ab")).is_ok());
    for bad_id in [json!("short"), json!("../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaa"), json!(12), json!("a".repeat(39))]
    {
        assert!(identity_with("deviceId", bad_id.clone()).is_err(), "accepted id {bad_id}");
    }
    assert_eq!(identity_with("deviceName", json!("x".repeat(100))).unwrap().device_name.len(), 32);
    assert!(identity_with("deviceName", json!("()<>..\u{7}")).is_err(), "empty once filtered");
    assert_eq!(identity_with("deviceType", json!("fridge")).unwrap().device_type, DeviceType::Desktop);
    assert!(identity_with("protocolVersion", json!("7")).is_err());
    assert!(identity_with("tcpPort", json!(0)).is_err());
    assert!(identity_with("incomingCapabilities", json!(["ok", 5])).is_err());
    assert!(identity_with("incomingCapabilities", json!(["bad name!"])).is_err());
    assert!(identity_with("outgoingCapabilities", json!(vec!["kdeconnect.ping"; 257])).is_err());
    assert!(Identity::from_packet(&Packet::new("kdeconnect.ping", identity_body())).is_err());
}

#[test]
fn local_identity_persists_with_a_private_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let a = LocalIdentity::load_or_create(dir.path()).unwrap();
    let b = LocalIdentity::load_or_create(dir.path()).unwrap();
    assert_eq!((a.device_id.len(), &a.device_id, &a.cert_der), (32, &b.device_id, &b.cert_der));
    assert_eq!(cert_common_name(&a.cert_der).unwrap(), a.device_id);
    let mode = std::fs::metadata(dir.path().join("kdeconnect-key.der")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let ours = a.identity("My laptop: office", DeviceType::Laptop, Some(1716));
    assert_eq!((ours.device_name.as_str(), ours.protocol_version), ("My laptop office", 8));
}

/// The key computed the way KDE does it, with openssl doing the DER work: SHA-256 over the
/// two SubjectPublicKeyInfo DERs, the (bytewise) larger first, then v8's timestamp.
#[test]
fn verification_key_matches_openssl() {
    if std::process::Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: needs openssl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = LocalIdentity::load_or_create(&dir.path().join("a")).unwrap();
    let b = LocalIdentity::load_or_create(&dir.path().join("b")).unwrap();
    let spki = |who: &str| {
        let cert = dir.path().join(who).join("kdeconnect-cert.der");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl x509 -inform DER -in {} -pubkey -noout | openssl pkey -pubin -outform DER",
                cert.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let (mut x, mut y) = (spki("a"), spki("b"));
    assert_eq!(x, cert_public_key(&a.cert_der).unwrap());
    if x < y {
        std::mem::swap(&mut x, &mut y);
    }
    let hex = |d: &[u8]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let v7 = hex(&Sha256::new().chain_update(&x).chain_update(&y).finalize());
    let v8 = hex(&Sha256::new().chain_update(&x).chain_update(&y).chain_update(b"1733390000").finalize());
    assert_eq!(verification_key(&a.cert_der, &b.cert_der, 7, None).unwrap(), v7[..8]);
    assert_eq!(verification_key(&b.cert_der, &a.cert_der, 7, None).unwrap(), v7[..8], "symmetric");
    assert_eq!(verification_key(&a.cert_der, &b.cert_der, 8, Some(1733390000)).unwrap(), v8[..8].to_uppercase());
    assert!(verification_key(&a.cert_der, &b.cert_der, 8, None).is_err());
    assert!(verification_key(b"junk", &b.cert_der, 7, None).is_err());
}

struct Side {
    local: LocalIdentity,
    ours: Identity,
    _dir: tempfile::TempDir,
}

fn side(name: &str, version: u32) -> Side {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalIdentity::load_or_create(dir.path()).unwrap();
    let mut ours = local.identity(name, DeviceType::Desktop, None);
    ours.protocol_version = version;
    Side { local, ours, _dir: dir }
}

/// `a` connects to `b`'s listener; returns (a's link, b's link) or the first error.
async fn pair_up(
    a: &Side,
    b: &Side,
    a_pin: Option<Pin>,
    b_pin: Option<Pin>,
) -> (Result<Link, KdeError>, Result<Link, KdeError>) {
    let listener = Listener::bind(LOOPBACK, TCP_PORTS).await.unwrap();
    let addr = SocketAddr::new(LOOPBACK, listener.port());
    let trusted = move |_: &str| b_pin.clone();
    tokio::join!(
        connect_pinned(addr, &b.ours, &a.local, &a.ours, a_pin.as_ref()),
        listener.accept_pinned(&b.local, &b.ours, &trusted)
    )
}

async fn exchange_both_ways(la: Link, lb: Link) {
    let (mut ra, mut wa) = la.split();
    let (mut rb, mut wb) = lb.split();
    let ping = Packet::new("kdeconnect.ping", json!({"message": "hello"}));
    wa.send(&ping).await.unwrap();
    assert_eq!(rb.recv().await.unwrap().unwrap(), ping);
    wb.send(&ping).await.unwrap();
    assert_eq!(ra.recv().await.unwrap().unwrap(), ping);
    wa.close().await.unwrap();
    assert_eq!(rb.recv().await.unwrap(), None, "clean end of stream");
}

#[tokio::test]
async fn loopback_links_v7_and_v8() {
    for (va, vb, expect) in [(7, 7, 7), (8, 8, 8), (8, 7, 7), (7, 8, 7)] {
        let (a, b) = (side("A", va), side("B", vb));
        let (la, lb) = pair_up(&a, &b, None, None).await;
        let (la, lb) = (la.unwrap(), lb.unwrap());
        assert_eq!((la.version, lb.version), (expect, expect));
        assert_eq!(
            (la.identity.device_id.as_str(), la.peer_cert_der.as_slice()),
            (b.local.device_id.as_str(), &b.local.cert_der[..])
        );
        assert_eq!(
            (lb.identity.device_id.as_str(), lb.peer_cert_der.as_slice()),
            (a.local.device_id.as_str(), &a.local.cert_der[..])
        );
        exchange_both_ways(la, lb).await;
    }
}

#[tokio::test]
async fn pinned_certificate_and_downgrade_refused() {
    let (a, b) = (side("A", 8), side("B", 8));
    let stranger = side("X", 8);
    // b pinned some other certificate for a's id: refused on b's side.
    let pin = Pin { cert_der: stranger.local.cert_der.clone(), min_version: 0 };
    let (_, lb) = pair_up(&a, &b, None, Some(pin.clone())).await;
    assert!(matches!(lb, Err(KdeError::CertMismatch)), "{:?}", lb.err());
    // a pinned another certificate for b: refused on a's side.
    let (la, _) = pair_up(&a, &b, Some(pin), None).await;
    assert!(matches!(la, Err(KdeError::CertMismatch)), "{:?}", la.err());
    // The right pins work.
    let (la, lb) = pair_up(
        &a,
        &b,
        Some(Pin { cert_der: b.local.cert_der.clone(), min_version: 8 }),
        Some(Pin { cert_der: a.local.cert_der.clone(), min_version: 8 }),
    )
    .await;
    assert!(la.is_ok() && lb.is_ok());
    // a was paired on 8 and comes back announcing 7: b refuses.
    let old_a = side("A", 7);
    let (_, lb) = pair_up(&old_a, &b, None, Some(Pin { cert_der: old_a.local.cert_der.clone(), min_version: 8 })).await;
    assert!(matches!(lb, Err(KdeError::Downgrade { pinned: 8, announced: 7 })), "{:?}", lb.err());
}

#[tokio::test]
async fn silent_or_oversized_peer_is_dropped() {
    let b = side("B", 8);
    let listener = Listener::bind(LOOPBACK, TCP_PORTS).await.unwrap();
    let addr = SocketAddr::new(LOOPBACK, listener.port());
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let r = listener.accept(&b.local, &b.ours, &|_| None).await;
    assert!(matches!(r, Err(KdeError::Timeout(_))), "{:?}", r.err());
    assert!(started.elapsed() < Duration::from_secs(15));
    let mut flood = tokio::net::TcpStream::connect(addr).await.unwrap();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..(MAX_IDENTITY / chunk.len() + 4) {
            if flood.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let r = listener.accept(&b.local, &b.ours, &|_| None).await;
    assert!(matches!(r, Err(KdeError::TooLarge { .. })), "{:?}", r.err());
    writer.abort();
}

fn sha(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[tokio::test]
async fn payload_of_a_few_mib_arrives_whole_to_the_right_device_only() {
    let (a, b) = (side("A", 8), side("B", 8));
    let data: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let size = data.len() as u64;
    let (port, serve) = serve_payload(
        LOOPBACK,
        &a.local,
        b.local.cert_der.clone(),
        std::io::Cursor::new(data.clone()),
        size,
        Duration::from_secs(10),
        |_| {},
    )
    .await
    .unwrap();
    assert!(PAYLOAD_PORTS.contains(&port));
    let serving = tokio::spawn(serve);
    let addr = SocketAddr::new(LOOPBACK, port);
    // A stranger is refused (wrong certificate for the server's pin), and the serve goes on.
    let stranger = side("X", 8);
    let r = fetch_payload(addr, &stranger.local, &a.local.cert_der, size, Vec::new(), |_| {}).await;
    assert!(r.is_err(), "a stranger fetched the payload");
    // The fetcher refuses a server with another certificate than expected.
    let mut out = Vec::new();
    let mut last = 0;
    fetch_payload(addr, &b.local, &a.local.cert_der, size, &mut out, |n| last = n).await.unwrap();
    serving.await.unwrap().unwrap();
    assert_eq!((sha(&out), last), (sha(&data), size));
}

#[tokio::test]
async fn payload_size_lies_are_errors() {
    let (a, b) = (side("A", 8), side("B", 8));
    let data = vec![7u8; 100_000];
    let wait = Duration::from_secs(10);
    // The sender has more than the receiver was told: the receiver refuses the extra.
    let (port, serve) = serve_payload(
        LOOPBACK,
        &a.local,
        b.local.cert_der.clone(),
        std::io::Cursor::new(data.clone()),
        100_000,
        wait,
        |_| {},
    )
    .await
    .unwrap();
    let serving = tokio::spawn(serve);
    let r =
        fetch_payload(SocketAddr::new(LOOPBACK, port), &b.local, &a.local.cert_der, 50_000, Vec::new(), |_| {}).await;
    assert!(matches!(r, Err(KdeError::TooLarge { .. })), "{r:?}");
    let _ = serving.await;
    // The sender's file is shorter than announced: both sides fail.
    let (port, serve) =
        serve_payload(LOOPBACK, &a.local, b.local.cert_der.clone(), std::io::Cursor::new(data), 200_000, wait, |_| {})
            .await
            .unwrap();
    let serving = tokio::spawn(serve);
    let r =
        fetch_payload(SocketAddr::new(LOOPBACK, port), &b.local, &a.local.cert_der, 200_000, Vec::new(), |_| {}).await;
    assert!(r.is_err());
    assert!(serving.await.unwrap().is_err());
    // Wrong server certificate: refused.
    let (port, serve) = serve_payload(
        LOOPBACK,
        &a.local,
        b.local.cert_der.clone(),
        std::io::Cursor::new(vec![1u8; 10]),
        10,
        wait,
        |_| {},
    )
    .await
    .unwrap();
    let serving = tokio::spawn(serve);
    let r = fetch_payload(SocketAddr::new(LOOPBACK, port), &b.local, &b.local.cert_der, 10, Vec::new(), |_| {}).await;
    assert!(matches!(r, Err(KdeError::CertMismatch)), "{r:?}");
    serving.abort();
}

#[tokio::test]
async fn discovery_sees_others_skips_own_and_junk_and_reports_a_taken_port() {
    let (a, b) = (side("A", 8), side("B", 7));
    let da = Discovery::bind(LOOPBACK, 0).await.unwrap();
    let db = Discovery::bind(LOOPBACK, 0).await.unwrap();
    let (to_a, to_b) = (da.local_addr().unwrap(), db.local_addr().unwrap());
    assert!(matches!(Discovery::bind(LOOPBACK, to_a.port()).await, Err(KdeError::PortTaken(p)) if p == to_a.port()));
    // Junk, an oversized datagram and a's own identity (looped back) come first: all skipped.
    let junk = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    junk.send_to(b"{\"type\":\"kdeconnect.identity\",\"body\":{}}\n", to_a).await.unwrap();
    junk.send_to(&vec![b'{'; 65_000], to_a).await.unwrap();
    da.announce(&a.ours, to_a).await.unwrap();
    db.announce(&b.ours, to_a).await.unwrap();
    let (seen, from) = tokio::time::timeout(Duration::from_secs(5), da.recv()).await.unwrap().unwrap();
    assert_eq!((seen, from), (b.ours.clone(), to_b));
}

/// Android's KDE Connect tops out at TLS 1.2: a 1.2-only peer must get an ECDHE-ECDSA suite
/// with our P-256 certificate (rustls has no CBC suites, the only ones KDE 22.12 lists for RSA).
#[tokio::test]
async fn a_tls12_only_peer_gets_an_ecdhe_ecdsa_suite() {
    let (a, b) = (side("A", 8), side("B", 8));
    let listener = tokio::net::TcpListener::bind((LOOPBACK, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = crate::tls::acceptor(&a.local).unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        crate::tls::as_server(&acceptor, tcp).await.map(|(_, cert)| cert)
    });
    let connector = crate::tls::connector_with(&b.local, &[&rustls::version::TLS12]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (stream, cert) = crate::tls::as_client(&connector, tcp, LOOPBACK).await.unwrap();
    assert_eq!(cert, a.local.cert_der);
    assert_eq!(server.await.unwrap().unwrap(), b.local.cert_der, "the server got the client's certificate");
    let conn = stream.get_ref().1;
    assert_eq!(conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
    assert!(suite.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{suite}");
}

//! Loopback tests: every socket is bound on 127.0.0.1 with port 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferry_proto::DeviceId;
use ferry_proto::wire::{Hello, MAX_FRAME, Message, PROTOCOL_VERSION};

use crate::*;

const LIMIT: Duration = Duration::from_secs(20);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn endpoint() -> Endpoint {
    Endpoint::bind(&Identity::generate().unwrap(), loopback()).unwrap()
}

/// Dials `b` from `a` and returns (a's side, b's side).
async fn pair(a: &Endpoint, b: &Endpoint) -> (PeerConn, PeerConn) {
    let addr = b.local_addr().unwrap();
    let (out, inc) = tokio::join!(a.connect(addr, Some(b.device_id())), b.accept());
    (out.unwrap(), inc.unwrap().unwrap())
}

fn hello(name: &str) -> Hello {
    Hello { protocol: PROTOCOL_VERSION, name: name.into(), owner: "me".into() }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("test timed out")
}

#[tokio::test]
async fn endpoints_connect_and_see_each_other() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        assert!(a.local_addr().unwrap().ip().is_loopback());
        let (ab, ba) = pair(&a, &b).await;
        assert_eq!(ab.peer(), b.device_id());
        assert_eq!(ba.peer(), a.device_id());
        assert!(ab.outgoing());
        assert!(!ba.outgoing());
        assert_eq!(ab.remote_addr(), b.local_addr().unwrap());

        let code_a = ab.pairing_code().unwrap();
        let code_b = ba.pairing_code().unwrap();
        assert_eq!(code_a, code_b);
        assert_eq!(code_a.len(), 6);
        assert!(code_a.chars().all(|c| c.is_ascii_digit()));

        a.close();
        b.close();
        a.wait_idle().await;
        b.wait_idle().await;
        assert!(b.accept().await.is_none(), "a closed endpoint accepts nothing");
    })
    .await;
}

#[tokio::test]
async fn connecting_without_pin_works() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let addr = b.local_addr().unwrap();
        let (out, inc) = tokio::join!(a.connect(addr, None), b.accept());
        assert_eq!(out.unwrap().peer(), b.device_id());
        assert_eq!(inc.unwrap().unwrap().peer(), a.device_id());
    })
    .await;
}

#[tokio::test]
async fn wrong_expected_device_is_refused() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let other = Identity::generate().unwrap().device_id();
        let addr = b.local_addr().unwrap();
        let (out, inc) = tokio::join!(a.connect(addr, Some(other)), b.accept());
        let err = out.expect_err("pinned to another device");
        let text = err.to_string();
        assert!(text.contains(&b.device_id().short()) && text.contains(&other.short()), "{text}");
        assert!(inc.unwrap().is_err(), "server side sees the failed handshake");
    })
    .await;
}

#[tokio::test]
async fn client_with_other_alpn_is_refused() {
    bounded(async {
        let server = endpoint();
        let addr = server.local_addr().unwrap();
        let id = Identity::generate().unwrap();
        let mut tls = crate::tls::client_config(&id, None).unwrap();
        tls.alpn_protocols = vec![b"other/1".to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let client = quinn::Endpoint::client(loopback()).unwrap();
        let conn = client.connect_with(quinn::ClientConfig::new(std::sync::Arc::new(quic)), addr, "ferry").unwrap();
        let (out, inc) = tokio::join!(conn, server.accept());
        assert!(out.is_err());
        assert!(inc.unwrap().is_err());
    })
    .await;
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    bounded(async {
        let server = endpoint();
        let addr = server.local_addr().unwrap();
        let tls =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(crate::tls::PinnedServerVerifier::any()))
                .with_no_client_auth();
        let mut tls = tls;
        tls.alpn_protocols = vec![ferry_proto::wire::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let client = quinn::Endpoint::client(loopback()).unwrap();
        let conn = client.connect_with(quinn::ClientConfig::new(std::sync::Arc::new(quic)), addr, "ferry").unwrap();
        let (out, inc) = tokio::join!(
            async {
                // In TLS 1.3 the client may consider the handshake done before the server
                // rejects its (missing) certificate; then the connection dies right after.
                let res: Result<(), quinn::ConnectionError> = match conn.await {
                    Err(e) => Err(e),
                    Ok(c) => Err(c.closed().await),
                };
                res
            },
            server.accept()
        );
        assert!(out.is_err());
        assert!(inc.unwrap().is_err());
    })
    .await;
}

#[tokio::test]
async fn handshake_exchanges_hellos() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let (alpha, beta) = (hello("alpha"), hello("beta"));
        let (ha, hb) = tokio::join!(ab.handshake(&alpha), ba.handshake(&beta));
        assert_eq!(ha.unwrap().name, "beta");
        assert_eq!(hb.unwrap().name, "alpha");
    })
    .await;
}

#[tokio::test]
async fn handshake_refuses_other_protocol_version() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let old = Hello { protocol: PROTOCOL_VERSION + 1, ..hello("future") };
        let beta = hello("beta");
        let (ha, hb) = tokio::join!(ab.handshake(&old), ba.handshake(&beta));
        assert!(ha.is_ok());
        match hb {
            Err(NetError::Protocol(m)) => {
                assert_eq!(
                    m,
                    format!("peer speaks protocol v{}, this device v{PROTOCOL_VERSION}", PROTOCOL_VERSION + 1)
                )
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn handshake_refuses_long_names() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let long = hello(&"x".repeat(ferry_proto::wire::MAX_NAME + 1));
        let beta = hello("beta");
        let (_, hb) = tokio::join!(ab.handshake(&long), ba.handshake(&beta));
        assert!(matches!(hb, Err(NetError::Protocol(_))), "{hb:?}");
    })
    .await;
}

#[tokio::test]
async fn request_response_roundtrip() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let server = tokio::spawn(async move {
            let (mut send, mut recv) = ba.accept_bi().await.unwrap();
            let Message::Ping { nonce } = read_frame(&mut recv).await.unwrap() else { panic!("expected Ping") };
            // The requester finished its side: nothing more arrives.
            assert!(matches!(read_frame(&mut recv).await, Err(NetError::Closed)));
            write_frame(&mut send, &Message::Pong { nonce }).await.unwrap();
            send.finish().unwrap();
            ba
        });
        let reply = ab.request(&Message::Ping { nonce: 42 }, Duration::from_secs(5)).await.unwrap();
        assert_eq!(reply, Message::Pong { nonce: 42 });
        let _ba = server.await.unwrap();
        assert!(ab.rtt() < Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn blocks_cross_a_stream_intact() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let data: Vec<u8> = (0..(1usize << 20) + 3).map(|i| (i * 7 + i / 251) as u8).collect();
        let sent = data.clone();
        let server = tokio::spawn(async move {
            // Three frames on one stream: a block by reference, a block by value, a non-block.
            let (mut send, _recv) = ba.connection().open_bi().await.unwrap();
            write_frame(&mut send, &Message::Block { data: sent.clone() }).await.unwrap();
            write_frame_owned(&mut send, Message::Block { data: Vec::new() }).await.unwrap();
            write_frame_owned(&mut send, Message::Block { data: sent[..1000].to_vec() }).await.unwrap();
            write_frame_owned(&mut send, Message::Pong { nonce: 9 }).await.unwrap();
            send.finish().unwrap();
            let _ = send.stopped().await;
            ba
        });
        let (_send, mut recv) = ab.accept_bi().await.unwrap();
        assert_eq!(read_frame(&mut recv).await.unwrap(), Message::Block { data: data.clone() });
        assert_eq!(read_frame(&mut recv).await.unwrap(), Message::Block { data: Vec::new() });
        assert_eq!(read_frame(&mut recv).await.unwrap(), Message::Block { data: data[..1000].to_vec() });
        assert_eq!(read_frame(&mut recv).await.unwrap(), Message::Pong { nonce: 9 });
        assert!(matches!(read_frame(&mut recv).await, Err(NetError::Closed)));
        drop(recv);
        let _ba = server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_block_cut_short_is_a_protocol_error() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let frame = ferry_proto::wire::encode(&Message::Block { data: vec![5; 100_000] }).unwrap();
        let (mut send, _recv) = ab.connection().open_bi().await.unwrap();
        send.write_all(&frame[..50_000]).await.unwrap();
        send.finish().unwrap();
        let (_send, mut recv) = ba.accept_bi().await.unwrap();
        match read_frame(&mut recv).await {
            Err(NetError::Protocol(m)) => assert!(m.contains("inside a frame"), "{m}"),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn request_times_out_without_reply() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let _keep = tokio::spawn(async move {
            let streams = ba.accept_bi().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            drop(streams);
        });
        let res = ab.request(&Message::Ping { nonce: 1 }, Duration::from_millis(200)).await;
        assert!(matches!(res, Err(NetError::Timeout)), "{res:?}");
    })
    .await;
}

#[tokio::test]
async fn oversized_frame_header_is_refused() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        let (mut send, _recv) = ab.connection().open_bi().await.unwrap();
        send.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes()).await.unwrap();
        send.write_all(&[0u8; 16]).await.unwrap();
        let (_send, mut recv) = ba.accept_bi().await.unwrap();
        match read_frame(&mut recv).await {
            Err(NetError::Frame(ferry_proto::wire::FrameError::TooLarge(n))) => assert_eq!(n, MAX_FRAME + 1),
            other => panic!("expected a Frame error, got {other:?}"),
        }
        // Nothing past the header was consumed.
        let mut rest = [0u8; 16];
        recv.read_exact(&mut rest).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn closing_is_seen_by_the_peer() {
    bounded(async {
        let a = endpoint();
        let b = endpoint();
        let (ab, ba) = pair(&a, &b).await;
        ab.close("bye");
        match ba.closed().await {
            quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(&c.reason[..], b"bye"),
            other => panic!("unexpected close: {other:?}"),
        }
        assert!(matches!(ba.accept_bi().await, Err(NetError::Connection(_))));
    })
    .await;
}

#[tokio::test]
async fn man_in_the_middle_sessions_have_different_codes() {
    bounded(async {
        let alice = endpoint();
        let mallory = endpoint();
        let bob = endpoint();
        // Alice believes she dials Bob but reaches Mallory, who dials Bob in turn.
        let (am, ma) = pair(&alice, &mallory).await;
        let (mb, bm) = pair(&mallory, &bob).await;
        let code_alice = am.pairing_code().unwrap();
        let code_bob = bm.pairing_code().unwrap();
        assert_eq!(code_alice, ma.pairing_code().unwrap());
        assert_eq!(code_bob, mb.pairing_code().unwrap());
        assert_ne!(code_alice, code_bob);
    })
    .await;
}

#[test]
fn device_id_is_sha256_of_cert() {
    use sha2::Digest;
    let id = Identity::generate().unwrap();
    let expect: [u8; 32] = sha2::Sha256::digest(id.cert_der()).into();
    assert_eq!(id.device_id(), DeviceId(expect));
    assert_eq!(device_id_of(id.cert_der()), id.device_id());
    assert_ne!(Identity::generate().unwrap().device_id(), id.device_id());
}

#[test]
fn identity_persists() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("identity");
    let first = Identity::load_or_create(&sub).unwrap();
    let second = Identity::load_or_create(&sub).unwrap();
    assert_eq!(first.device_id(), second.device_id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sub.join("key.der")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let names: Vec<_> = std::fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temp files left: {names:?}");
}

#[test]
fn corrupt_identity_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    Identity::load_or_create(dir.path()).unwrap();
    let key = dir.path().join("key.der");
    std::fs::write(&key, b"garbage").unwrap();
    let err = Identity::load_or_create(dir.path()).unwrap_err();
    assert!(matches!(err, NetError::Tls(_)), "{err}");
    assert!(err.to_string().contains("key.der"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), b"garbage", "the file is left untouched");

    // A valid key that belongs to another certificate.
    let other = tempfile::tempdir().unwrap();
    Identity::load_or_create(other.path()).unwrap();
    std::fs::copy(other.path().join("key.der"), &key).unwrap();
    let err = Identity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");

    // A corrupt certificate.
    std::fs::copy(other.path().join("key.der"), &key).unwrap();
    std::fs::write(dir.path().join("cert.der"), b"not a cert").unwrap();
    let err = Identity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("cert.der"), "{err}");

    // Half an identity.
    std::fs::remove_file(dir.path().join("cert.der")).unwrap();
    let err = Identity::load_or_create(dir.path()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// Dials `b` from `a` and exchanges Hellos; the error if either step fails.
async fn dial_and_hello(a: &Endpoint, b: &Endpoint) -> Result<PeerConn, NetError> {
    let conn = a.connect(b.local_addr().unwrap(), Some(b.device_id())).await?;
    conn.handshake(&hello("a")).await?;
    Ok(conn)
}

#[tokio::test]
async fn a_refused_device_is_told_who_removed_it_and_never_accepted() {
    bounded(async {
        let (a, b, c) = (endpoint(), endpoint(), endpoint());
        b.set_refusal_notice("desk");
        b.refuse(a.device_id());
        assert!(b.is_refused(&a.device_id()));
        // b's side runs its accept loop: accept whatever it hands over and say hello back.
        let b2 = b.clone();
        let accepted = tokio::spawn(async move {
            let conn = b2.accept().await.unwrap().unwrap();
            conn.handshake(&hello("b")).await.unwrap();
            conn
        });
        match dial_and_hello(&a, &b).await {
            Err(NetError::Removed { by }) => assert_eq!(by, "desk"),
            other => panic!("expected Removed, got {other:?}"),
        }
        // The next connection b hands over is c's: a's never reached it.
        let c_conn = dial_and_hello(&c, &b).await.unwrap();
        assert_eq!(accepted.await.unwrap().peer(), c.device_id());
        c_conn.close("done");

        // Allowed again (a deliberate re-pair): a gets through.
        b.allow(&a.device_id());
        let b2 = b.clone();
        let accepted = tokio::spawn(async move { b2.accept().await.unwrap().unwrap() });
        let conn = a.connect(b.local_addr().unwrap(), Some(b.device_id())).await.unwrap();
        assert_eq!(accepted.await.unwrap().peer(), a.device_id());
        assert_eq!(conn.removed(), None);
    })
    .await
}

#[tokio::test]
async fn close_removed_is_seen_as_a_removal_by_the_peer() {
    bounded(async {
        let (a, b) = (endpoint(), endpoint());
        let (ab, ba) = pair(&a, &b).await;
        ba.close_removed("laptop");
        let err = ab.closed().await;
        assert_eq!(removed_by(&err), Some("laptop".into()));
        assert_eq!(ab.removed(), Some("laptop".into()));
        // An ordinary close is not a removal.
        let (ab, ba) = pair(&a, &b).await;
        ba.close("bye");
        assert_eq!(removed_by(&ab.closed().await), None);
    })
    .await
}

#[tokio::test]
async fn unknown_addresses_share_a_budget_and_known_ones_always_pass() {
    bounded(async {
        let b = endpoint();
        let b2 = b.clone();
        // b's application takes whatever gets through.
        tokio::spawn(async move { while b2.accept().await.is_some() {} });
        let known = endpoint();
        b.set_known_addresses([known.local_addr().unwrap()].into());
        // Fresh sockets (unknown addresses) until one is refused before any handshake.
        let mut refused = false;
        for _ in 0..200 {
            let stranger = endpoint();
            match stranger.connect(b.local_addr().unwrap(), Some(b.device_id())).await {
                Ok(c) => c.close("next"),
                Err(NetError::Connection(quinn::ConnectionError::ConnectionClosed(_))) => {
                    refused = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(refused, "a burst of unknown addresses is cut off");
        // The known address still gets its handshake at once.
        let conn = known.connect(b.local_addr().unwrap(), Some(b.device_id())).await.expect("known address");
        assert_eq!(conn.peer(), b.device_id());
    })
    .await
}

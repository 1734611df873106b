//! UDP multicast discovery: device info sent to 224.0.0.167:53317 and received there. The
//! socket is bound with SO_REUSEADDR and SO_REUSEPORT, as the app binds it, so Ferry and a
//! LocalSend app on the same computer both hear announcements (unlike the TCP port, which
//! only one of them can hold).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use crate::{DeviceInfo, LsError, MAX_DATAGRAM, MULTICAST, PORT, fingerprint_eq, parse_info};

/// Hops a multicast datagram may take: 1, the local network only (as the app sends).
const MULTICAST_TTL: u32 = 1;

pub struct Discovery {
    socket: UdpSocket,
    /// Our fingerprint once we have sent: our own datagrams come back (loopback is on so a
    /// LocalSend app on this computer hears us) and are skipped.
    own: Mutex<Option<String>>,
    skipped: AtomicU64,
}

impl Discovery {
    /// Binds 0.0.0.0:53317 and joins the group on the interface with address `iface`;
    /// datagrams go out through that interface.
    pub fn bind(iface: Ipv4Addr) -> Result<Discovery, LsError> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).into())?;
        socket.join_multicast_v4(&MULTICAST, &iface)?;
        socket.set_multicast_if_v4(&iface)?;
        socket.set_multicast_ttl_v4(MULTICAST_TTL)?;
        socket.set_multicast_loop_v4(true)?;
        let socket = UdpSocket::from_std(socket.into())?;
        Ok(Discovery { socket, own: Mutex::new(None), skipped: AtomicU64::new(0) })
    }

    /// Announces us (`announce: true`): devices that hear it answer with `/register` or a
    /// multicast reply.
    pub async fn announce(&self, me: &DeviceInfo) -> Result<(), LsError> {
        self.send(me, true).await
    }

    /// The multicast reply to someone's announcement (`announce: false`).
    pub async fn answer(&self, me: &DeviceInfo) -> Result<(), LsError> {
        self.send(me, false).await
    }

    async fn send(&self, me: &DeviceInfo, announce: bool) -> Result<(), LsError> {
        *self.own.lock().unwrap_or_else(|e| e.into_inner()) = Some(me.fingerprint.clone());
        let datagram = serde_json::to_vec(&DeviceInfo { announce: Some(announce), ..me.clone() })
            .expect("our own info serialises");
        self.socket.send_to(&datagram, SocketAddrV4::new(MULTICAST, PORT)).await?;
        Ok(())
    }

    /// The next valid info from another device, with the address it came from. Oversized and
    /// malformed datagrams are skipped (and counted, see [`Discovery::skipped`]); so are ours.
    pub async fn recv(&self) -> Result<(DeviceInfo, SocketAddr), LsError> {
        // One byte more than the cap tells us a datagram was cut.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let (n, from) = self.socket.recv_from(&mut buf).await?;
            let parsed = if n > MAX_DATAGRAM {
                Err(LsError::TooLarge { what: "a discovery datagram", cap: MAX_DATAGRAM as u64 })
            } else {
                parse_info(&buf[..n])
            };
            match parsed {
                Ok(info) if self.is_own(&info) => {}
                Ok(info) => return Ok((info, from)),
                Err(e) => {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("localsend: skipped a datagram from {from}: {e}");
                }
            }
        }
    }

    fn is_own(&self, info: &DeviceInfo) -> bool {
        self.own
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|f| fingerprint_eq(f, &info.fingerprint))
    }

    /// Datagrams skipped as oversized or malformed since the socket was bound.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    pub fn local_addr(&self) -> Result<SocketAddr, LsError> {
        Ok(self.socket.local_addr()?)
    }
}

//! The static source: addresses given by the user or the config, per device.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use ferry_proto::DeviceId;

use super::{Discovery, Notifier, Sighting};

/// Addresses given by the user or the config, per device. They are never "nearby".
pub struct StaticAddresses {
    map: Mutex<HashMap<DeviceId, Vec<SocketAddr>>>,
    notify: Notifier,
}

impl StaticAddresses {
    pub fn new(map: HashMap<DeviceId, Vec<SocketAddr>>, notify: Notifier) -> Self {
        StaticAddresses { map: Mutex::new(map), notify }
    }

    /// Replaces the addresses of `id`.
    pub fn set(&self, id: DeviceId, addrs: Vec<SocketAddr>) {
        self.map.lock().unwrap().insert(id, addrs);
        self.notify.notify();
    }
}

impl Discovery for StaticAddresses {
    fn sightings(&self) -> Vec<Sighting> {
        self.map
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(id, addrs)| Sighting {
                id: *id,
                name: String::new(),
                protocol: None,
                addrs: addrs.clone(),
                source: "static",
                interfaces: vec![],
                seen_ms: 0,
            })
            .collect()
    }
}

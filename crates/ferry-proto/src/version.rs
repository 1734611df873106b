//! Version vectors: one counter per device that changed a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::DeviceId;

/// How two versions relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    Equal,
    /// `self` has seen everything `other` has, and more.
    Greater,
    Lesser,
    /// Each has changes the other has not seen: a conflict unless contents agree.
    Concurrent,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector(pub BTreeMap<DeviceId, u64>);

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The vector after `device` made one more change.
    pub fn bumped(&self, device: DeviceId) -> Self {
        let mut v = self.clone();
        *v.0.entry(device).or_insert(0) += 1;
        v
    }

    /// Component-wise maximum: a version that has seen both.
    pub fn merged(&self, other: &Self) -> Self {
        let mut v = self.clone();
        for (d, c) in &other.0 {
            let e = v.0.entry(*d).or_insert(0);
            *e = (*e).max(*c);
        }
        v
    }

    pub fn compare(&self, other: &Self) -> Ordering {
        let mut greater = false;
        let mut lesser = false;
        for d in self.0.keys().chain(other.0.keys()) {
            let a = self.0.get(d).copied().unwrap_or(0);
            let b = other.0.get(d).copied().unwrap_or(0);
            greater |= a > b;
            lesser |= a < b;
        }
        match (greater, lesser) {
            (false, false) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Lesser,
            (true, true) => Ordering::Concurrent,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(|c| *c == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_covers_all_cases() {
        let a = DeviceId([1; 32]);
        let b = DeviceId([2; 32]);
        let base = VersionVector::new().bumped(a);
        let va = base.bumped(a);
        let vb = base.bumped(b);
        assert_eq!(base.compare(&base), Ordering::Equal);
        assert_eq!(va.compare(&base), Ordering::Greater);
        assert_eq!(base.compare(&va), Ordering::Lesser);
        assert_eq!(va.compare(&vb), Ordering::Concurrent);
        let m = va.merged(&vb);
        assert_eq!(m.compare(&va), Ordering::Greater);
        assert_eq!(m.compare(&vb), Ordering::Greater);
    }
}

//! Per-share policies the user picks: how a conflict is settled and how long old versions are
//! kept. They live here, beside [`crate::ShareMode`], because the engine decides with them and
//! the store keeps them; they never cross the wire.

use serde::{Deserialize, Serialize};

/// How a conflict (two concurrent edits with different content) is settled on this device.
/// Whatever the policy, the losing content is kept: as a conflict copy or as a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConflictPolicy {
    /// The newer edit takes the name, the other is kept beside it as
    /// `NAME.sync-conflict-...` (pysyncml's "error": leave it to the user).
    #[default]
    KeepBoth,
    /// The newer edit wins (ties: greater device id); the loser goes to the version history only.
    NewestWins,
    /// This device's edit always wins; the other device's content goes to its history. Meant for
    /// one "master" device of a share (pysyncml's client-wins / server-wins): if every device of
    /// a share insisted on winning, none would ever give way.
    ThisDeviceWins,
}

impl ConflictPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            ConflictPolicy::KeepBoth => "keep-both",
            ConflictPolicy::NewestWins => "newest-wins",
            ConflictPolicy::ThisDeviceWins => "this-device-wins",
        }
    }
}

impl std::str::FromStr for ConflictPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep-both" => Ok(ConflictPolicy::KeepBoth),
            "newest-wins" => Ok(ConflictPolicy::NewestWins),
            "this-device-wins" => Ok(ConflictPolicy::ThisDeviceWins),
            _ => Err(format!("unknown conflict policy {s:?} (expected keep-both, newest-wins or this-device-wins)")),
        }
    }
}

/// How long archived versions of a share are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    /// Keep every version for `keep_all_days`; after that one per hour for a day, one per day
    /// for a month, then one per week; the oldest go first when the share's versions exceed
    /// `max_bytes` (0 = no cap).
    Staggered { keep_all_days: u32, max_bytes: u64 },
    /// Keep every version for `days`, then drop it.
    TrashCan { days: u32 },
    /// Keep no history: versions are dropped at the next prune.
    Off,
}

impl Default for Retention {
    /// Thirty days of everything, then staggered, capped at 10 GiB: generous enough that a
    /// mistake noticed weeks later is still recoverable, bounded so the disk never fills.
    fn default() -> Self {
        Retention::Staggered { keep_all_days: 30, max_bytes: 10 << 30 }
    }
}

impl Retention {
    /// `staggered[:DAYS[:MAXBYTES]]`, `trash-can[:DAYS]` or `off`.
    pub fn parse(s: &str) -> Result<Retention, String> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let num = |p: Option<&str>, what: &str| -> Result<Option<u64>, String> {
            p.map(|v| v.trim().parse::<u64>().map_err(|_| format!("{what} in {s:?} is not a number"))).transpose()
        };
        let r = match kind {
            "off" => Retention::Off,
            "trash-can" => {
                let days = num(parts.next(), "days")?.unwrap_or(30);
                Retention::TrashCan { days: u32::try_from(days).map_err(|_| format!("{days} days is too many"))? }
            }
            "staggered" => {
                let Retention::Staggered { keep_all_days, max_bytes } = Retention::default() else { unreachable!() };
                let days = num(parts.next(), "days")?.unwrap_or(keep_all_days as u64);
                let max = num(parts.next(), "size cap")?.unwrap_or(max_bytes);
                Retention::Staggered {
                    keep_all_days: u32::try_from(days).map_err(|_| format!("{days} days is too many"))?,
                    max_bytes: max,
                }
            }
            _ => {
                return Err(format!(
                    "unknown retention {s:?} (expected staggered[:DAYS[:MAXBYTES]], trash-can[:DAYS] or off)"
                ));
            }
        };
        if parts.next().is_some() {
            return Err(format!("too many fields in retention {s:?}"));
        }
        Ok(r)
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Staggered { keep_all_days, max_bytes } => write!(f, "staggered:{keep_all_days}:{max_bytes}"),
            Retention::TrashCan { days } => write!(f, "trash-can:{days}"),
            Retention::Off => write!(f, "off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for p in ["keep-both", "newest-wins", "this-device-wins"] {
            assert_eq!(p.parse::<ConflictPolicy>().unwrap().as_str(), p);
        }
        assert!("whatever".parse::<ConflictPolicy>().is_err());
        assert_eq!(Retention::parse("off").unwrap(), Retention::Off);
        assert_eq!(Retention::parse("trash-can:7").unwrap(), Retention::TrashCan { days: 7 });
        assert_eq!(
            Retention::parse("staggered:3:1000").unwrap(),
            Retention::Staggered { keep_all_days: 3, max_bytes: 1000 }
        );
        assert_eq!(Retention::parse("staggered").unwrap(), Retention::default());
        for bad in ["", "trash-can:x", "off:1", "staggered:1:2:3", "keep"] {
            assert!(Retention::parse(bad).is_err(), "{bad}");
        }
        let r = Retention::parse("staggered:3:1000").unwrap();
        assert_eq!(Retention::parse(&r.to_string()).unwrap(), r);
    }
}

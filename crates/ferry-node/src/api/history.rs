//! The control API's data for history and sync policy: the sync summary, versions restored
//! and rewinds, conflicts and their resolution, share policies and mode actions.

use serde::{Deserialize, Serialize};

use super::ApiError;

/// Counts of one sync session (or of all sessions since start).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq, ts_rs::TS)]
pub struct SummaryCountsDto {
    pub local_adds: u64,
    pub local_changes: u64,
    pub local_deletes: u64,
    pub remote_adds: u64,
    pub remote_changes: u64,
    pub remote_deletes: u64,
    pub errors: u64,
    pub conflicts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct SummaryDto {
    pub last_session: Option<SummaryCountsDto>,
    pub last_session_started_ms: Option<i64>,
    pub last_session_ended_ms: Option<i64>,
    pub since_start: SummaryCountsDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RestoreDto {
    /// A file inside a share (absolute), live or deleted.
    pub path: String,
    /// A version id from `ferry versions`: a number, or its decimal text (`id_text`, for
    /// clients whose numbers cannot hold it exactly).
    #[serde(default, deserialize_with = "number_or_text")]
    #[ts(type = "number | string | null")]
    pub version: Option<u64>,
    /// RFC 3339, or an age like `10m`, `2h`, `3d`.
    pub at: Option<String>,
}

/// An optional u64 given as a JSON number or as decimal text.
fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Text(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Text(t)) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("version {t:?} is not a version id"))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RestoredDto {
    pub share: String,
    pub path: String,
    /// The version whose content is back.
    pub version: u64,
    /// Where the content it replaced was archived (none if the file did not exist).
    pub current_archived_as: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindReqDto {
    /// `SHARE`, `SHARE/SUBDIR` or an absolute folder inside a share.
    pub target: String,
    /// RFC 3339, or an age like `10m`, `2h`, `3d`.
    pub to: String,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindStepDto {
    /// `restore` (changed since), `undelete` (deleted since), `remove` (created since: moved
    /// to the history) or `keep` (its content then cannot be produced: left as it is, see
    /// `note`).
    pub action: String,
    pub path: String,
    pub version: Option<u64>,
    /// The device the old content comes from, when this device has no copy of it.
    #[serde(default)]
    pub from: Option<String>,
    /// Why a `keep` step is left as it is.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct RewindDto {
    pub share: String,
    pub to_ms: i64,
    pub dry_run: bool,
    pub steps: Vec<RewindStepDto>,
    /// Steps that failed (path: reason); the others were done.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct PruneDto {
    pub share: String,
    pub removed: u64,
    pub freed_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ModeActionDto {
    pub share: String,
    pub mode: String,
    /// Paths republished (override) or reset (revert).
    pub changed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ConflictDto {
    pub share: String,
    pub share_label: String,
    /// The conflicted file.
    pub path: String,
    /// The conflict copy (the losing content), relative to the share.
    pub copy: String,
    /// Device that wrote the copy's content (full id when known, else the short id) and its name.
    pub copy_device: String,
    pub copy_device_name: String,
    pub copy_time_ms: i64,
    pub copy_size: u64,
    /// Device that wrote the current content of `path` (none if it is gone).
    pub current_device: Option<String>,
    pub current_device_name: Option<String>,
    pub current_time_ms: Option<i64>,
    pub current_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct ConflictsQuery {
    pub share: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ResolveDto {
    /// The conflicted file or one of its copies (absolute).
    pub path: String,
    /// `local`, `remote`, `both`, or a copy's name or path.
    pub keep: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ResolvedDto {
    pub share: String,
    pub path: String,
    /// `both`, the file itself, or the copy whose content now has its name.
    pub kept: String,
    /// Losing contents archived as versions of `path`.
    pub archived: u64,
    /// Keep both: the copies' new names.
    pub renamed: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct SharePolicyDto {
    pub share: String,
    pub conflict_policy: Option<String>,
    pub retention: Option<String>,
    pub mass_delete_percent: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ts_rs::TS)]
pub struct ShareSettingsDto {
    pub share: String,
    pub label: String,
    pub conflict_policy: String,
    pub retention: String,
    pub mass_delete_percent: u8,
    pub attention: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, ts_rs::TS)]
pub struct RescanDto {
    /// Only this share (default: all).
    #[serde(default)]
    pub share: Option<String>,
    /// Re-hash every file instead of trusting size, mtime and inode.
    #[serde(default)]
    pub full: bool,
}

/// Checks share policy arguments before anything is created (the node checks them again).
pub fn check_share_policy(
    conflict_policy: Option<&str>,
    retention: Option<&str>,
    mass_delete_percent: Option<u8>,
) -> Result<(), ApiError> {
    if let Some(p) = conflict_policy {
        p.parse::<ferry_proto::ConflictPolicy>().map_err(ApiError::bad)?;
    }
    if let Some(r) = retention {
        ferry_proto::Retention::parse(r).map_err(ApiError::bad)?;
    }
    if mass_delete_percent.is_some_and(|p| !(1..=100).contains(&p)) {
        return Err(ApiError::bad("the mass-delete threshold is a percent, 1 to 100"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_takes_the_version_as_number_or_text() {
        let big = 1_795_465_472_354_762_123u64;
        let r: RestoreDto = serde_json::from_str(&format!(r#"{{"path":"/a","version":{big},"at":null}}"#)).unwrap();
        assert_eq!(r.version, Some(big));
        let r: RestoreDto = serde_json::from_str(&format!(r#"{{"path":"/a","version":"{big}","at":null}}"#)).unwrap();
        assert_eq!(r.version, Some(big), "text keeps every digit");
        let r: RestoreDto = serde_json::from_str(r#"{"path":"/a","at":"10m"}"#).unwrap();
        assert_eq!(r.version, None);
        let r: RestoreDto = serde_json::from_str(r#"{"path":"/a","version":null,"at":null}"#).unwrap();
        assert_eq!(r.version, None);
        let e = serde_json::from_str::<RestoreDto>(r#"{"path":"/a","version":"12x","at":null}"#).unwrap_err();
        assert!(e.to_string().contains("not a version id"), "{e}");
    }
}

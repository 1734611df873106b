//! Wall-clock readings and their display, in one place so the engine's pure functions get their
//! `now` from here and tests can see where time enters.

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A millisecond timestamp as `YYYY-MM-DD HH:MM:SSZ` (UTC), for messages and tables.
pub(crate) fn fmt_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")).unwrap_or_default()
}

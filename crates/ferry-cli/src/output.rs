//! How answers are printed: pretty JSON for `--json`, and the human forms of sizes and times
//! every text listing shares.

use serde::Serialize;

/// Pretty-printed JSON on stdout; a value that cannot be serialised still prints a JSON object
/// (with the error), so `--json` output always parses.
pub(crate) fn print_json<T: Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
}

/// A size in binary units with one decimal (`1.5 KiB`); under 1 KiB, exact bytes (`512 B`).
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Milliseconds since the Unix epoch as a UTC date and time, `2026-01-01 00:00:00Z`; computed
/// here so the CLI needs no date crate.
pub(crate) fn fmt_ms(ms: i64) -> String {
    let secs = ms / 1000;
    let (d, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm), UTC.
    let z = d + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes_format() {
        assert_eq!(fmt_ms(0), "1970-01-01 00:00:00Z");
        assert_eq!(fmt_ms(1_767_225_600_000), "2026-01-01 00:00:00Z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}

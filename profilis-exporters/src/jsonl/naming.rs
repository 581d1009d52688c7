//! Names of rotated files (`profilis-YYYYmmdd-HHMMSS[-N].jsonl`, UTC), their order, and the
//! first free name of a second.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const ROTATED_PREFIX: &str = "profilis-";
const ROTATED_SUFFIX: &str = ".jsonl";

/// The order of rotated files: UTC date, time, then the `-N` suffix (0 without one).
pub(super) type RotatedKey = (u32, u32, u64);

/// The key of a rotated file name (`profilis-YYYYmmdd-HHMMSS[-N].jsonl`), `None` for any
/// other name.
pub(super) fn parse_rotated(name: &str) -> Option<RotatedKey> {
    let stem = name
        .strip_prefix(ROTATED_PREFIX)?
        .strip_suffix(ROTATED_SUFFIX)?;
    let digits = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let mut parts = stem.split('-');
    let date = digits(parts.next()?, 8)?;
    let time = digits(parts.next()?, 6)?;
    let n = match parts.next() {
        None => 0,
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok()?,
        Some(_) => return None,
    };
    parts.next().is_none().then_some((date, time, n))
}

/// Rotated files of `dir`: key, path and length.
pub(super) fn rotated_files(dir: &Path) -> io::Result<Vec<(RotatedKey, PathBuf, u64)>> {
    let mut rotated = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(key) = entry.file_name().to_str().and_then(parse_rotated) else {
            continue;
        };
        let len = match entry.metadata() {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        rotated.push((key, entry.path(), len));
    }
    Ok(rotated)
}

/// The name of the `n`th file the sink writes to instead of the active file when something
/// other than a regular file is at the active path (a link, a FIFO): `<active name>.<n>`, never
/// of the rotated form (it does not end in `.jsonl`).
pub(super) fn beside_name(active_name: &str, n: u32) -> String {
    format!("{active_name}.{n}")
}

/// The files a sink wrote to and left behind in `dir` (a crash): the active file, then the
/// ones beside it ([`beside_name`]) by number; regular files only.
pub(super) fn left_active_files(dir: &Path, active_name: &str) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let n = if name == active_name {
            0
        } else {
            match name
                .strip_prefix(active_name)
                .and_then(|rest| rest.strip_prefix('.'))
            {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    match n.parse::<u32>() {
                        Ok(n) if n > 0 => n,
                        _ => continue,
                    }
                }
                _ => continue,
            }
        };
        // The entry itself, not a link's target.
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push((n, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// `profilis-YYYYmmdd-HHMMSS.jsonl` for `now` (UTC), or with `-1`, `-2`, ... if taken or if
/// `newest` was made in the same second, so names only grow. They grow even when the wall
/// clock has stepped back behind `newest` (NTP, a restored VM): the name then takes
/// `newest`'s second and a greater number, so retention, which deletes the lowest names first,
/// still deletes the oldest files and never the one just rotated.
pub(super) fn free_rotated_path(
    dir: &Path,
    now: SystemTime,
    newest: Option<RotatedKey>,
) -> io::Result<(RotatedKey, PathBuf)> {
    // A newest name whose number cannot grow (only a file made by hand can have one) is
    // not followed: the clock's second then names the file.
    let newest = newest.filter(|&(_, _, n)| n < u64::MAX);
    let (date, time) = match (utc_date_time(now), newest) {
        (now, Some((d, t, _))) if (d, t) > now => (d, t),
        (now, _) => now,
    };
    let first = match newest {
        Some((d, t, n)) if (d, t) == (date, time) => n + 1,
        _ => 0,
    };
    for n in first.. {
        let name = if n == 0 {
            format!("{ROTATED_PREFIX}{date:08}-{time:06}{ROTATED_SUFFIX}")
        } else {
            format!("{ROTATED_PREFIX}{date:08}-{time:06}-{n}{ROTATED_SUFFIX}")
        };
        let path = dir.join(name);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(((date, time, n), path)),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(io::Error::other("no free rotated file name"))
}

/// `YYYYmmdd` and `HHMMSS` in UTC, as numbers.
pub(super) fn utc_date_time(time: SystemTime) -> (u32, u32) {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let date = (year * 10_000 + month * 100 + day) as u32;
    let time = (rem / 3600 * 10_000 + rem % 3600 / 60 * 100 + rem % 60) as u32;
    (date, time)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn utc_stamp(secs: u64) -> String {
        let (date, time) = utc_date_time(UNIX_EPOCH + Duration::from_secs(secs));
        format!("{date:08}-{time:06}")
    }

    #[test]
    fn stamps_are_utc() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(4_102_444_799), "20991231-235959");
    }

    #[test]
    fn rotated_names_sort_by_time_then_number() {
        let mut names = [
            "profilis-20240101-120000-10.jsonl",
            "profilis-20240101-120000-2.jsonl",
            "profilis-20240101-120001.jsonl",
            "profilis-20240101-120000.jsonl",
            "profilis-20231231-235959-1.jsonl",
        ];
        names.sort_by_key(|n| parse_rotated(n).unwrap());
        assert_eq!(
            names,
            [
                "profilis-20231231-235959-1.jsonl",
                "profilis-20240101-120000.jsonl",
                "profilis-20240101-120000-2.jsonl",
                "profilis-20240101-120000-10.jsonl",
                "profilis-20240101-120001.jsonl",
            ]
        );
        for other in [
            "profilis-active.jsonl.tmp",
            "profilis-2024010-120000.jsonl",
            "profilis-20240101-120000-.jsonl",
            "profilis-20240101-120000-1-2.jsonl",
            "profilis-20240101-120000.jsonl.tmp",
            "other-20240101-120000.jsonl",
        ] {
            assert_eq!(parse_rotated(other), None, "{other}");
        }
    }

    #[test]
    fn names_keep_growing_when_the_clock_steps_back() {
        let dir = std::env::temp_dir().join(format!("profilis-naming-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 20231114-221320
                                                                   // The newest rotated file was named an hour ahead of the clock now.
        let newest = (20231114, 231320, 0);
        let (key, path) = free_rotated_path(&dir, now, Some(newest)).unwrap();
        assert_eq!(key, (20231114, 231320, 1));
        assert!(
            path.ends_with("profilis-20231114-231320-1.jsonl"),
            "{path:?}"
        );
        assert!(key > newest);
        // Behind the clock, or in the same second: as before.
        let earlier = (20231114, 211320, 4);
        assert_eq!(
            free_rotated_path(&dir, now, Some(earlier)).unwrap().0,
            (20231114, 221320, 0)
        );
        assert_eq!(
            free_rotated_path(&dir, now, Some((20231114, 221320, 2)))
                .unwrap()
                .0,
            (20231114, 221320, 3)
        );
        // A number that cannot grow: the clock names the file, nothing overflows.
        let stuck = (20231114, 231320, u64::MAX);
        assert_eq!(
            free_rotated_path(&dir, now, Some(stuck)).unwrap().0,
            (20231114, 221320, 0)
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Size-based rotation as lumberjack (the Collector's) does it: the full file is renamed to
//! `<stem>-<UTC time>.<ext>` beside it (`spans-2026-12-06T12-30-05.123.json`) and a new one started; the oldest
//! backups beyond `max_backups`, and those older than `max_days`, are deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::Rotation;

/// `2026-12-06T12-30-05.123` for `t` (UTC).
fn stamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// (stem, extension with its dot) of `path`'s file name.
fn parts(path: &Path) -> (String, String) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (stem, ext)
}

/// Where the current file goes when rotated at `now`.
pub fn backup_path(path: &Path, now: SystemTime) -> PathBuf {
    let (stem, ext) = parts(path);
    path.with_file_name(format!("{stem}-{}{ext}", stamp(now)))
}

/// Deletes backups of `path` beyond `r.max_backups` (oldest first) and older than `r.max_days`.
pub fn prune(path: &Path, r: &Rotation) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (stem, ext) = parts(path);
    let prefix = format!("{stem}-");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut backups: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(&prefix)
                    && n.ends_with(&ext)
                    && n.len() == prefix.len() + 23 + ext.len()
            })
        })
        .collect();
    // The names sort by time.
    backups.sort();
    let max_age = Duration::from_secs(r.max_days.saturating_mul(86_400));
    let now = SystemTime::now();
    let excess = if r.max_backups > 0 {
        backups.len().saturating_sub(r.max_backups as usize)
    } else {
        0
    };
    for (i, b) in backups.iter().enumerate() {
        let too_old = r.max_days > 0
            && std::fs::metadata(b)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > max_age);
        if (i < excess || too_old)
            && let Err(e) = std::fs::remove_file(b)
        {
            tracing::warn!(file = %b.display(), error = %e, "cannot delete an old rotated file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_names_like_lumberjack() {
        let t = UNIX_EPOCH + Duration::from_millis(1_765_024_205_123);
        assert_eq!(stamp(t), "2025-12-06T12-30-05.123");
        assert_eq!(
            backup_path(Path::new("/x/spans.json"), t),
            PathBuf::from("/x/spans-2025-12-06T12-30-05.123.json")
        );
        assert_eq!(stamp(UNIX_EPOCH), "1970-01-01T00-00-00.000");
    }
}

//! Counting log records in an encoded `ExportLogsServiceRequest`.

use super::{WireError, for_each_message};

/// Validates the request's structure down to the log records and returns how many there are.
pub fn count_log_records(buf: &[u8]) -> Result<usize, WireError> {
    let mut records = 0usize;
    for_each_message(buf, 1, "resource_logs", |rl| {
        for_each_message(rl, 2, "scope_logs", |sl| {
            for_each_message(sl, 2, "log_record", |_| {
                records += 1;
                Ok(())
            })
        })
    })?;
    Ok(records)
}

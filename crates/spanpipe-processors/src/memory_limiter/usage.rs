//! How much memory the process uses and how much it may use, from `/proc` and the cgroup (v2, or v1).

use std::path::Path;

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`): what the kernel's OOM killer and
/// a container's memory limit count.
pub fn rss_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    kib_field(&status, "VmRSS:").ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

/// A `Name:   1234 kB` line of `/proc/*/status` or `/proc/meminfo`, in bytes.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory this process may use: its cgroup's limit when there is one, else the machine's total.
pub fn total_memory() -> Result<u64, String> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| format!("cannot read /proc/meminfo: {e}"))?;
    let machine = kib_field(&meminfo, "MemTotal:")
        .ok_or_else(|| "no MemTotal in /proc/meminfo".to_string())?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_limit(&c, Path::new("/sys/fs/cgroup")));
    Ok(cgroup.map_or(machine, |c| c.min(machine)))
}

/// The memory limit of the cgroup named in `proc_cgroup` (the text of `/proc/self/cgroup`) under `root`:
/// cgroup v2 `memory.max` (walking up to the root), else v1 `memory.limit_in_bytes`. `None`: no limit.
pub fn cgroup_limit(proc_cgroup: &str, root: &Path) -> Option<u64> {
    let parse = |text: String| -> Option<u64> {
        let v = text.trim();
        // v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages).
        v.parse::<u64>().ok().filter(|n| *n < (1 << 60))
    };
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // v2: the nearest limit on the way up.
            let mut dir = root.join(rel);
            loop {
                if let Some(n) = std::fs::read_to_string(dir.join("memory.max"))
                    .ok()
                    .and_then(parse)
                {
                    return Some(n);
                }
                if dir == root || !dir.pop() {
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            let file = root.join("memory").join(rel).join("memory.limit_in_bytes");
            let top = root.join("memory").join("memory.limit_in_bytes");
            return std::fs::read_to_string(file)
                .ok()
                .and_then(parse)
                .or_else(|| std::fs::read_to_string(top).ok().and_then(parse));
        }
    }
    None
}

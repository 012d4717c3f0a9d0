//! The process itself, as Prometheus' standard process metrics name it (what its client
//! libraries export): CPU time, memory, file descriptors, threads and start time, read from
//! `/proc/self` when `/metrics` is scraped. On a system without `/proc` they stay at zero.

use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux Usher runs on.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub threads: u64,
    pub start_time_seconds: f64,
}

pub fn sample() -> Sample {
    let mut sample = Sample::default();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return sample;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| {
        fields
            .get(n)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // proc(5): utime is field 14, stime 15, num_threads 20, starttime 22, vsize 23, rss
    // 24; `fields[0]` is field 3 (state).
    sample.cpu_seconds = (field(11) + field(12)) as f64 / TICKS_PER_SECOND;
    sample.threads = field(17);
    sample.virtual_bytes = field(20);
    sample.resident_bytes = field(21) * page_size();
    sample.start_time_seconds = boot_time() + field(19) as f64 / TICKS_PER_SECOND;
    sample.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
    sample.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(0);
    sample
}

fn page_size() -> u64 {
    // Every Linux architecture Usher is built for uses 4 KiB pages.
    4096
}

/// When the machine booted, in seconds since the epoch (`btime` of /proc/stat).
fn boot_time() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().find(|l| l.starts_with("btime "))?;
            line[6..].trim().parse::<f64>().ok()
        })
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_process_is_seen() {
        let sample = sample();
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        assert!(sample.resident_bytes > 1 << 20, "{sample:?}");
        assert!(sample.threads >= 1 && sample.open_fds >= 3, "{sample:?}");
        assert!(sample.max_fds >= sample.open_fds, "{sample:?}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            sample.start_time_seconds <= now + 1.0
                && sample.start_time_seconds > now - 86400.0 * 365.0,
            "{sample:?}"
        );
    }
}

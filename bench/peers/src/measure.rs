//! CPU time read from /proc (Linux): of the PostgreSQL server's processes and of this
//! process. Times are in clock ticks of 10 ms (USER_HZ = 100), so a span of a few
//! seconds is measured to within a few ticks per process.

/// CPU time used so far, in ms.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// Every process whose title starts with `postgres:` (backends of every database,
    /// and the WAL writer, checkpointer, background writer...). A backend that exits
    /// in between takes its time with it; the pools stay open over a measurement.
    pub server_ms: f64,
    /// The backends connected to the database measured (their titles read
    /// `postgres: 15/main: ROLE DATABASE ADDRESS STATE`).
    pub database_ms: f64,
    /// This process.
    pub client_ms: f64,
}

impl Cpu {
    pub fn now(database: &str) -> Self {
        let mut cpu = Cpu {
            server_ms: 0.0,
            database_ms: 0.0,
            client_ms: cpu_ms("self").unwrap_or(0.0),
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return cpu;
        };
        for entry in dir.filter_map(Result::ok) {
            let Some(pid) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let title = String::from_utf8_lossy(&cmdline);
            if !title.starts_with("postgres:") {
                continue;
            }
            let Some(ms) = cpu_ms(&pid) else { continue };
            cpu.server_ms += ms;
            if title
                .split(|c: char| c.is_whitespace() || c == '\0')
                .any(|word| word == database)
            {
                cpu.database_ms += ms;
            }
        }
        cpu
    }
}

/// utime + stime of /proc/<pid>/stat, in ms.
fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

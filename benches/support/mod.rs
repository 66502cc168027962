//! What the benchmarks share.

/// `doc` with the section under `heading` (up to the next `## `) replaced by `section`, or
/// with `section` appended when there is none.
pub fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let lines: Vec<&str> = doc.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == heading) else {
        return format!("{}\n\n{section}", doc.trim_end());
    };
    let end = lines[start + 1..].iter().position(|l| l.starts_with("## ")).map(|i| start + 1 + i).unwrap_or(lines.len());
    let mut out = lines[..start].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(section);
    if end < lines.len() {
        out.push('\n');
        out.push_str(&lines[end..].join("\n"));
        out.push('\n');
    }
    out
}

/// The 1-minute load average, or "unknown".
#[allow(dead_code)] // not every benchmark reports it
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string())
}

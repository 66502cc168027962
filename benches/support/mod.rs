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

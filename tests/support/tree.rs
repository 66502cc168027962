//! Copying a folder for a test, without build and install output (a connector someone built
//! locally carries `node_modules/`, `dist/` or `__pycache__/` that no test wants).

use std::path::Path;

const SKIPPED: &[&str] = &["__pycache__", "node_modules", "dist", "dist-test"];

pub fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        if rel.components().any(|c| SKIPPED.iter().any(|skip| c.as_os_str() == *skip)) {
            continue;
        }
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

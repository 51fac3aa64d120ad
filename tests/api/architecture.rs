//! The shape of the source tree, checked: what docs/refresh-safety.md's code map says an
//! auditor reads is what the tree holds.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file's lines, and those that are neither blank nor comments (`grep -cvE '^\s*(//|$)'`).
fn counts(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let code = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count();
    (text.lines().count(), code)
}

/// Every row "| `src/….rs` | lines | [code |]" of the code map, and its one-line total of
/// `src/broker/rotation/`, match `wc -l` of the tree. Fails (saying what the tree holds) when
/// a file the map lists grows, shrinks, moves or is gone.
#[test]
fn the_refresh_safety_code_map_matches_the_tree() {
    let doc = std::fs::read_to_string(root().join("docs/refresh-safety.md")).unwrap();
    let mut wrong = Vec::new();
    for row in doc.lines().filter(|l| l.starts_with("| `src/")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let file = cells[1].trim_matches('`');
        let (lines, code) = counts(&root().join(file));
        let stated_code = cells[3].parse::<usize>().ok();
        if cells[2].parse::<usize>() != Ok(lines) || stated_code.is_some_and(|c| c != code) {
            wrong.push(format!("{file}: {lines} lines, {code} code"));
        }
    }
    let rotation: Vec<PathBuf> = std::fs::read_dir(root().join("src/broker/rotation"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let (lines, code) = rotation.iter().map(|p| counts(p)).fold((0, 0), |(l, c), (fl, fc)| (l + fl, c + fc));
    let total = format!("`src/broker/rotation/`: {lines} lines,\n{code} of them code");
    if !doc.contains(&total) {
        wrong.push(total);
    }
    assert!(wrong.is_empty(), "docs/refresh-safety.md's code map differs from the tree: {wrong:#?}");
}

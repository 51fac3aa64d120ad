//! The shape of the source tree, checked: the modules of `src/` import only downwards
//! (docs/architecture.md), and what docs/refresh-safety.md's code map says an auditor reads is
//! what the tree holds.
//!
//! The layer check reads the library as the compiler would build it outside tests: from
//! `src/lib.rs`, through every `mod` declaration that is not `#[cfg(test)]`, with test-only
//! items left out. Every `crate::…`, `super::…` and `self::…` path (use-trees expanded, comments
//! and string literals ignored) is resolved to the module it names — through a parent's
//! `pub use child::Item` to that child. At every level of the tree, the children of one module
//! must form a DAG: the top-level modules of `src/`, and the files and folders inside each.
//! A reference between a module and its own ancestor (a child using its parent's items, a
//! `mod.rs` re-exporting its child's) is the module's own business and is not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;
/// Per module, which of its children import which of their siblings (and from where).
type Levels = BTreeMap<ModPath, BTreeMap<(String, String), BTreeSet<String>>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_modules_import_only_downwards() {
    let levels = levels(&load(&root().join("src")));
    let top = &levels[&ModPath::new()];
    println!("src/ (each module imports only from the ones below it):\n{}", layered(top));
    let cycles = all_cycles(&levels);
    assert!(
        cycles.is_empty(),
        "import cycles (docs/architecture.md says what may import what):\n{}",
        cycles.join("\n")
    );
}

/// Work a request starts, in a task of its own so that its caller cannot cut it in half:
/// counted (`broker::renewals`) or bounded, never a background loop. Everything else that runs
/// on its own is startup's (`startup/tasks.rs`): one tracker, stopped by the drain.
const PER_REQUEST_SPAWNS: [(&str, usize, &str); 8] = [
    ("broker/renew", 1, "a leased renewal, detached from its caller, counted by `renewals`"),
    ("broker/lease", 1, "the lease's watchdog, aborted when the lease is released"),
    ("broker/scheduler", 1, "a due credential's wake-up, which renews through a counted renewal"),
    ("broker/rewrap", 1, "one record's re-seal: a caller going away stops a run between records"),
    ("proxy", 2, "a proxied call's renewal after a 401 (counted), and PASS's sliding expiry"),
    ("proxy/stream", 1, "a streamed call's body pump, ended by the call's deadline"),
    ("security/peer", 1, "a new connection's set-up (TLS handshake, first byte), under its timeout"),
    ("telemetry", 2, "the exporters' blocking shutdown, awaited at once"),
];

/// No constructor spawns: outside `startup/`, a task is started only for a request's own work
/// (the list above); a background task is handed to startup's `Tasks` as a future.
#[test]
fn only_startup_starts_background_tasks() {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for (path, source) in load(&root().join("src")) {
        let tokens = without_tests(tokens(&source));
        let spawns = (1..tokens.len().saturating_sub(1))
            .filter(|&i| tokens[i].starts_with("spawn") && tokens[i + 1] == "(")
            .filter(|&i| tokens[i - 1] == "::" || tokens[i - 1] == ".")
            .count();
        if spawns > 0 && path.first().is_none_or(|top| top != "startup") {
            found.insert(path.join("/"), spawns);
        }
    }
    let allowed: BTreeMap<String, usize> = PER_REQUEST_SPAWNS.iter().map(|(m, n, _)| (m.to_string(), *n)).collect();
    assert_eq!(
        found, allowed,
        "tasks started outside startup/: a background task is handed to startup's Tasks as a future; per-request work is listed in PER_REQUEST_SPAWNS with why"
    );
}

/// The check can fail: a top-level circle, a circle of files inside a module, and nothing from
/// tests or from a module's use of its own parent.
#[test]
fn the_layer_check_finds_circles_and_only_circles() {
    let module = |path: &str, source: &str| (path.split('/').map(String::from).collect(), source.to_owned());
    let library = vec![
        module("a", "mod x; mod y; use crate::b::Item; pub use x::Shared;"),
        module("a/x", "use super::{y::Other, Shared};"),
        module("a/y", "pub struct Other; fn f() { super::Shared::new(); }"),
        module("b", "pub struct Item; #[cfg(test)] mod tests { use crate::c; }"),
        module("c", "fn f() { crate::a::go(); } /* crate::b */ const S: &str = \"crate::b\";"),
    ];
    let found = levels(&library);
    assert_eq!(all_cycles(&found), vec!["a: x -> y -> x (a/x: x->y; a/y: y->x)".to_owned()]);
    let top: Vec<_> = found[&ModPath::new()].keys().cloned().collect();
    assert_eq!(top, [("a".to_owned(), "b".to_owned()), ("c".to_owned(), "a".to_owned())]);
    let mut with_circle = library;
    with_circle.push(module("b", "fn f() { crate::c::g(); }"));
    let expected = ["src: a -> b -> c -> a (a: a->b; b: b->c; c: c->a)", "a: x -> y -> x (a/x: x->y; a/y: y->x)"];
    assert_eq!(all_cycles(&levels(&with_circle)), expected);
}

/// Every non-test module of the library, by path, with its source; following `mod`
/// declarations from `lib.rs` as the compiler does.
fn load(src: &Path) -> Vec<(ModPath, String)> {
    let mut modules = Vec::new();
    let mut pending = vec![(ModPath::new(), src.join("lib.rs"), src.to_path_buf())];
    while let Some((path, file, dir)) = pending.pop() {
        let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for child in declared_children(&without_tests(tokens(&source))) {
            let (flat, nested) = (dir.join(format!("{child}.rs")), dir.join(&child).join("mod.rs"));
            let file = if flat.exists() { flat } else { nested };
            let mut child_path = path.clone();
            child_path.push(child.clone());
            pending.push((child_path, file, dir.join(&child)));
        }
        modules.push((path, source));
    }
    modules
}

/// `mod name;` declarations (their files), not inline modules.
fn declared_children(tokens: &[String]) -> Vec<String> {
    let at = |i: usize| tokens.get(i).map(String::as_str);
    (0..tokens.len())
        .filter(|&i| at(i) == Some("mod") && at(i + 2) == Some(";"))
        .map(|i| tokens[i + 1].clone())
        .collect()
}

/// For every module with children: which child imports which sibling, and in which files.
fn levels(library: &[(ModPath, String)]) -> Levels {
    let parsed: Vec<(ModPath, Vec<String>)> =
        library.iter().map(|(path, source)| (path.clone(), without_tests(tokens(source)))).collect();
    let mut modules: BTreeSet<ModPath> = BTreeSet::new();
    for (path, _) in &parsed {
        modules.extend((0..=path.len()).map(|n| path[..n].to_vec()));
    }
    let reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>> =
        parsed.iter().map(|(path, tokens)| (path.clone(), reexports(path, tokens, &modules))).collect();
    let mut levels = Levels::new();
    for (path, tokens) in &parsed {
        for used in paths(tokens) {
            let target = resolve(&modules, &reexports, path, &used);
            let shared = path.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if shared < path.len() && shared < target.len() {
                let edge = (path[shared].clone(), target[shared].clone());
                levels.entry(path[..shared].to_vec()).or_default().entry(edge).or_default().insert(path.join("/"));
            }
        }
    }
    levels
}

/// The items a module re-exports from its own children (`pub use child::{A, B}`): a sibling
/// naming `super::A` depends on that child.
fn reexports(path: &ModPath, tokens: &[String], modules: &BTreeSet<ModPath>) -> BTreeMap<String, ModPath> {
    let mut found = BTreeMap::new();
    for i in (0..tokens.len().saturating_sub(2)).filter(|&i| tokens[i] == "pub" && tokens[i + 1] == "use") {
        let mut trees = Vec::new();
        use_tree(tokens, i + 2, Vec::new(), &mut trees);
        for mut tree in trees.into_iter().filter(|t| t.len() >= 2) {
            tree.retain(|segment| segment != "self");
            let item = tree.pop().expect("two segments");
            let from: ModPath = path.iter().cloned().chain(tree).collect();
            if from.len() > path.len() && modules.contains(&from[..=path.len()].to_vec()) {
                found.insert(item, from);
            }
        }
    }
    found
}

/// The module `used` (a path starting with `crate`, `super` or `self`) names, from `current`.
fn resolve(
    modules: &BTreeSet<ModPath>,
    reexports: &BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    current: &ModPath,
    used: &[String],
) -> ModPath {
    let mut module = if used[0] == "crate" { ModPath::new() } else { current.clone() };
    let mut rest = &used[usize::from(used[0] == "crate")..];
    while let Some(step) = rest.first().filter(|s| *s == "super" || *s == "self") {
        if step == "super" {
            module.pop();
        }
        rest = &rest[1..];
    }
    for segment in rest {
        let mut child = module.clone();
        child.push(segment.clone());
        match reexports.get(&module).and_then(|names| names.get(segment)) {
            _ if modules.contains(&child) => module = child,
            Some(defining) => module = defining.clone(),
            None => break,
        }
    }
    module
}

/// Every path that starts with `crate::`, `super::` or `self::`, use-trees expanded.
fn paths(tokens: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for i in 0..tokens.len() {
        let starts = matches!(tokens[i].as_str(), "crate" | "super" | "self");
        let inside = i > 0 && tokens[i - 1] == "::";
        if starts && !inside && tokens.get(i + 1).is_some_and(|t| t == "::") {
            use_tree(tokens, i, Vec::new(), &mut found);
        }
    }
    found
}

/// Reads `a::b::{c, d::e}` (or `a::*`) from `i`, each leaf's whole path into `found`; returns
/// where the tree ends.
fn use_tree(tokens: &[String], mut i: usize, mut path: Vec<String>, found: &mut Vec<Vec<String>>) -> usize {
    while let Some(segment) = tokens.get(i).filter(|t| is_identifier(t)) {
        path.push(segment.clone());
        i += 1;
        if tokens.get(i).is_none_or(|t| t != "::") {
            break;
        }
        i += 1;
        if tokens.get(i).is_some_and(|t| t == "{") {
            i += 1;
            while tokens.get(i).is_some_and(|t| t != "}") {
                i = if tokens[i] == "," { i + 1 } else { use_tree(tokens, i, path.clone(), found) };
            }
            found.push(path);
            return i + 1;
        }
    }
    found.push(path);
    i
}

fn is_identifier(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// `tokens` without the items marked `#[cfg(test)]` (test modules, test-only helpers).
fn without_tests(tokens: Vec<String>) -> Vec<String> {
    let marker = ["#", "[", "cfg", "(", "test", ")", "]"];
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i..].starts_with(&marker.map(String::from)) {
            i = item_end(&tokens, i + marker.len());
        } else {
            kept.push(tokens[i].clone());
            i += 1;
        }
    }
    kept
}

/// Where the item starting at `i` ends: after its `;` or its closing brace, at depth 0.
fn item_end(tokens: &[String], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" if depth == 1 => return i + 1,
            "}" | ")" | "]" => depth -= 1,
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Identifiers, `::` and single punctuation; comments, string and character literals dropped.
fn tokens(source: &str) -> Vec<String> {
    let c: Vec<char> = source.chars().collect();
    let (mut tokens, mut i) = (Vec::new(), 0);
    while i < c.len() {
        let next = c.get(i + 1).copied();
        i = match c[i] {
            '/' if next == Some('/') => c[i..].iter().position(|&x| x == '\n').map_or(c.len(), |n| i + n),
            '/' if next == Some('*') => find(&c, i + 2, &['*', '/']) + 2,
            '"' => string_end(&c, i + 1),
            '\'' if next == Some('\\') => find(&c, i + 2, &['\'']) + 1,
            '\'' if c.get(i + 2) == Some(&'\'') => i + 3,
            ':' if next == Some(':') => {
                tokens.push("::".to_owned());
                i + 2
            }
            x if x.is_alphanumeric() || x == '_' => word(&c, i, &mut tokens),
            x if x.is_whitespace() || x == '\'' => i + 1,
            x => {
                tokens.push(x.to_string());
                i + 1
            }
        };
    }
    tokens
}

/// An identifier (or number) from `i`; a raw or byte string literal when it is `r"`, `r#"`,
/// `br"` or `b"`.
fn word(c: &[char], i: usize, tokens: &mut Vec<String>) -> usize {
    let end = c[i..].iter().position(|x| !(x.is_alphanumeric() || *x == '_')).map_or(c.len(), |n| i + n);
    let word: String = c[i..end].iter().collect();
    match (word.as_str(), c.get(end)) {
        ("r" | "br", Some('"' | '#')) if c[end..].iter().find(|x| **x != '#') == Some(&'"') => {
            let hashes = c[end..].iter().take_while(|x| **x == '#').count();
            let closing: Vec<char> = std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            find(c, end + hashes + 1, &closing) + closing.len()
        }
        ("b", Some('"')) => string_end(c, end + 1),
        _ => {
            tokens.push(word);
            end
        }
    }
}

/// Just past the closing quote of a string whose body starts at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() && c[i] != '"' {
        i += if c[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn find(c: &[char], from: usize, needle: &[char]) -> usize {
    (from..c.len()).find(|&i| c[i..].starts_with(needle)).unwrap_or(c.len())
}

/// Every circle at every level, with the files whose imports close it.
fn all_cycles(levels: &Levels) -> Vec<String> {
    let mut found = Vec::new();
    for (level, edges) in levels {
        let name = if level.is_empty() { "src".to_owned() } else { level.join("/") };
        for cycle in cycles(edges) {
            let closing: Vec<String> = cycle
                .windows(2)
                .map(|pair| {
                    format!(
                        "{}: {}->{}",
                        edges[&(pair[0].clone(), pair[1].clone())].iter().next().unwrap(),
                        pair[0],
                        pair[1]
                    )
                })
                .collect();
            found.push(format!("{name}: {} ({})", cycle.join(" -> "), closing.join("; ")));
        }
    }
    found
}

/// The circles of a graph, one per strongly connected part: its smallest member, a way round
/// back to it (each found by a search from that member).
fn cycles(edges: &BTreeMap<(String, String), BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut seen_in_cycle: BTreeSet<String> = BTreeSet::new();
    let mut found = Vec::new();
    for &start in next.keys() {
        if seen_in_cycle.contains(start) {
            continue;
        }
        if let Some(round) = path_back(&next, start) {
            seen_in_cycle.extend(round.iter().cloned());
            found.push(round);
        }
    }
    found
}

/// A shortest way from `start` back to itself, if any (breadth first).
fn path_back(next: &BTreeMap<&str, Vec<&str>>, start: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &to in next.get(node).into_iter().flatten() {
            if to == start {
                let mut round = vec![start.to_owned(), node.to_owned()];
                while let Some(&before) = came_from.get(round.last().unwrap().as_str()) {
                    round.push(before.to_owned());
                }
                round.truncate(round.len() - usize::from(round.len() > 2 && round[round.len() - 1] == start));
                round[1..].reverse();
                round.push(start.to_owned());
                return Some(round);
            }
            if to != start && !came_from.contains_key(to) {
                came_from.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    None
}

/// The top-level graph, bottom layer first: each module with what it imports.
fn layered(edges: &BTreeMap<(String, String), BTreeSet<String>>) -> String {
    let mut imports: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        imports.entry(from).or_default().insert(to);
        imports.entry(to).or_default();
    }
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    while depth.len() < imports.len() {
        let before = depth.len();
        for (&module, below) in &imports {
            if !depth.contains_key(module) && below.iter().all(|b| depth.contains_key(b)) {
                depth.insert(module, below.iter().map(|b| depth[b] + 1).max().unwrap_or(0));
            }
        }
        if depth.len() == before {
            return format!("(not layered: a circle) {imports:?}");
        }
    }
    let mut lines: Vec<(usize, String)> = imports
        .iter()
        .map(|(m, below)| {
            let below = if below.is_empty() {
                "(nothing in src/)".to_owned()
            } else {
                below.iter().copied().collect::<Vec<_>>().join(", ")
            };
            (depth[m], format!("  {m} -> {below}"))
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, line)| line).collect::<Vec<_>>().join("\n")
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

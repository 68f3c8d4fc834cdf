//! The shape of `src/`, checked by reading its `use` lines (and inline `crate::` paths):
//! the top-level modules import only modules of a lower layer, and no file imports
//! itself back through other files (no import loops).
//!
//! A path is resolved to the file that defines what it names: `crate::dispatch::CallScope`
//! is `src/dispatch/scope.rs`, because `dispatch/mod.rs` re-exports it from there.
//! Test code (everything from a file's first `#[cfg(test)]` on, and the test-only files
//! `proptests.rs` and `sim/tests.rs`) is left out: tests may reach across layers.
//!
//! ```text
//! cargo test --test layers
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;

/// The layers, lowest first: a module may import only modules of a lower layer. The
/// ARCHITECTURE.md file at the top of the repository explains them.
const LAYERS: &[&[&str]] = &[
    &["error_class", "redact"],
    &["config", "cluster_token"],
    &["provider", "file_tables"],
    &["functions", "observe"],
    &["dispatch"],
    &["execution", "sim", "streaming"],
    &["planning"],
    &["estimate"],
    &["cluster"],
    &["session"],
    &["cli"],
];

/// Files that hold only tests.
const TEST_FILES: &[&str] = &["proptests.rs", "src/sim/tests.rs"];

type Module = Vec<String>;

/// One source file: its module path and its code without comments, strings or tests.
struct File {
    module: Module,
    is_mod_rs: bool,
    code: String,
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// `text` with comments, string and char literals blanked, cut at the first
/// `#[cfg(test)]`.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if let Some(comment) = rest.strip_prefix("/*") {
            let end = comment.find("*/").map_or(rest.len(), |e| e + 4);
            i += end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let start = 2 + hashes;
            let end = rest[start..]
                .find(&close)
                .map_or(rest.len(), |e| start + e + close.len());
            out.push_str("\"\"");
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if rest.starts_with('\'') && rest.len() > 3 && {
            let b = rest.as_bytes();
            (b[1] != b'\\' && b[2] == b'\'')
                || (b[1] == b'\\' && rest[2..].find('\'').is_some_and(|e| e <= 8))
        } {
            // A char literal ('x', '\n', '\u{..}'); a lifetime has no closing quote.
            let end = if rest.as_bytes()[1] == b'\\' {
                2 + rest[2..].find('\'').unwrap_or(0) + 1
            } else {
                3
            };
            out.push_str("' '");
            i += end;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn read_files(dir: &Path, files: &mut Vec<File>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "bin") {
                continue;
            }
            read_files(&path, files);
            continue;
        }
        let shown = path.to_string_lossy().replace('\\', "/");
        if path.extension().is_none_or(|e| e != "rs")
            || TEST_FILES.iter().any(|t| shown.ends_with(t))
        {
            continue;
        }
        let relative = path.strip_prefix("src").expect("under src/");
        let mut module: Module = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        let last = module.pop().unwrap_or_default();
        let is_mod_rs = last == "mod.rs";
        if !is_mod_rs && last != "lib.rs" {
            module.push(last.trim_end_matches(".rs").to_string());
        }
        let text = fs::read_to_string(&path).expect("a readable source file");
        files.push(File {
            module,
            is_mod_rs,
            code: code_of(&text),
        });
    }
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths, each with its alias.
fn expand(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    fn split_top(list: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in list.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&list[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&list[start..]);
        parts
            .into_iter()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let prefix: Vec<String> = tree[..open]
            .trim_end_matches("::")
            .split("::")
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut out = Vec::new();
        for part in split_top(inner) {
            for (path, alias) in expand(part) {
                let mut full = prefix.clone();
                if path != ["self"] {
                    full.extend(path);
                }
                out.push((full, alias));
            }
        }
        return out;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((path, alias)) => (path, Some(alias.trim().to_string())),
        None => (tree, None),
    };
    let path = path.split("::").map(|s| s.trim().to_string()).collect();
    vec![(path, alias)]
}

/// The use statements of `code`: (is a re-export, path, alias).
fn uses(code: &str) -> Vec<(bool, Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let before = rest[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let after = &rest[at + 3..];
        let Some(end) = after.find(';') else { break };
        for (path, alias) in expand(&after[..end]) {
            out.push((public, path, alias));
        }
        rest = &after[end..];
    }
    out
}

fn find_word(haystack: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = haystack[from..].find(word) {
        let at = from + at;
        let before = haystack[..at].chars().next_back();
        let after = haystack[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if boundary(before) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Inline `crate::a::b` paths outside use statements.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let at = from + at;
        let path: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(
            path.split("::")
                .map(str::to_string)
                .filter(|s| !s.is_empty())
                .collect(),
        );
        from = at + path.len().max(1);
    }
    out
}

struct Graph {
    modules: BTreeSet<Module>,
    /// For each module, the names it re-exports and the paths they come from.
    reexports: HashMap<Module, HashMap<String, Module>>,
}

impl Graph {
    /// The absolute path of `path` as written in `from`, or `None` for another crate.
    fn absolute(&self, from: &File, path: &[String]) -> Option<Module> {
        let first = path.first()?;
        let mut base: Module = from.module.clone();
        let mut rest = path;
        match first.as_str() {
            "crate" => {
                base.clear();
                rest = &path[1..];
            }
            "self" => rest = &path[1..],
            "super" => {
                let mut rest_at = 0;
                while path.get(rest_at).is_some_and(|s| s == "super") {
                    base.pop();
                    rest_at += 1;
                }
                rest = &path[rest_at..];
            }
            name => {
                // A child module of this file, or another crate.
                let mut child = base.clone();
                child.push(name.to_string());
                if !self.modules.contains(&child) {
                    return None;
                }
            }
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file module defining what `path` names, following re-exports.
    fn defining(&self, path: &Module, depth: usize) -> Option<Module> {
        let mut prefix = path.clone();
        while !prefix.is_empty() && !self.modules.contains(&prefix) {
            prefix.pop();
        }
        if depth < 8
            && let Some(name) = path.get(prefix.len())
            && let Some(target) = self.reexports.get(&prefix).and_then(|r| r.get(name))
        {
            let mut target = target.clone();
            target.extend(path[prefix.len() + 1..].iter().cloned());
            return self.defining(&target, depth + 1);
        }
        Some(prefix)
    }
}

fn graph() -> (Graph, BTreeMap<Module, BTreeSet<Module>>) {
    let mut files = Vec::new();
    read_files(Path::new("src"), &mut files);
    let mut graph = Graph {
        modules: files.iter().map(|f| f.module.clone()).collect(),
        reexports: HashMap::new(),
    };
    let mut reexports = HashMap::new();
    for file in &files {
        let mut names = HashMap::new();
        for (public, path, alias) in uses(&file.code) {
            if !public || path.last().is_some_and(|l| l == "*") {
                continue;
            }
            if let Some(absolute) = graph.absolute(file, &path) {
                let name = alias.unwrap_or_else(|| absolute.last().cloned().unwrap_or_default());
                names.insert(name, absolute);
            }
        }
        reexports.insert(file.module.clone(), names);
    }
    graph.reexports = reexports;
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for file in &files {
        let mut targets = BTreeSet::new();
        let used = uses(&file.code)
            .into_iter()
            // A folder's mod.rs re-exporting its own files does not depend on them.
            .filter(|(public, _, _)| !(*public && file.is_mod_rs))
            .map(|(_, path, _)| path)
            .chain(inline_paths(&file.code));
        for path in used {
            if let Some(target) = graph
                .absolute(file, &path)
                .and_then(|p| graph.defining(&p, 0))
                && target != file.module
                && !target.is_empty()
            {
                targets.insert(target);
            }
        }
        edges.insert(file.module.clone(), targets);
    }
    (graph, edges)
}

fn shown(module: &Module) -> String {
    format!("crate::{}", module.join("::"))
}

#[test]
fn top_level_modules_import_only_lower_layers() {
    let (graph, edges) = graph();
    let mut wrong = Vec::new();
    for top in graph.modules.iter().filter_map(|m| m.first()) {
        assert!(
            layer_of(top).is_some(),
            "module {top} is in no layer of tests/layers.rs (and ARCHITECTURE.md)"
        );
    }
    for (from, targets) in &edges {
        let Some(from_top) = from.first() else {
            continue;
        };
        for to in targets {
            let to_top = &to[0];
            if from_top == to_top {
                continue;
            }
            let (a, b) = (layer_of(from_top), layer_of(to_top));
            if a <= b {
                wrong.push(format!("{} imports {}", shown(from), shown(to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_file_imports_itself_back() {
    let (_, edges) = graph();
    // Depth-first search for a cycle, reporting the first one found.
    fn visit(
        node: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut HashMap<Module, u8>,
        stack: &mut Vec<Module>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                0 => visit(next, edges, state, stack, cycles),
                1 => {
                    let at = stack.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[at..].iter().map(shown).collect();
                    cycle.push(shown(next));
                    cycles.push(cycle.join(" -> "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let mut state = HashMap::new();
    let mut cycles = Vec::new();
    for node in edges.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import loops:\n{}", cycles.join("\n"));
}

#[test]
fn the_reader_resolves_what_it_reads() {
    // The checks above are only as good as the resolution: spot-check it on files
    // whose imports are known.
    let (_, edges) = graph();
    let of = |m: &str| -> BTreeSet<String> {
        let module: Module = m.split("::").map(str::to_string).collect();
        edges
            .get(&module)
            .expect("a module")
            .iter()
            .map(shown)
            .collect()
    };
    let scope = of("dispatch::scope");
    assert!(scope.contains("crate::dispatch::error"), "{scope:?}");
    assert!(scope.contains("crate::config"), "{scope:?}");
    let ai_exec = of("execution::ai_exec");
    assert!(
        ai_exec.contains("crate::execution::services"),
        "{ai_exec:?}"
    );
    let ai_call = of("execution::ai_call");
    assert!(ai_call.contains("crate::dispatch::scope"), "{ai_call:?}");
    assert!(ai_call.contains("crate::observe::events"), "{ai_call:?}");
}

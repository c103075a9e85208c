//! The crate's structure, checked from its own `crate::` paths: every file of src/ is read, each
//! `crate::a::b::...` path it names (in `use` lines and inline) is resolved to the file that
//! defines it, and two rules are checked:
//!
//! 1. no import cycle between files (a file may name items of a file that names it back only
//!    through `super::`, i.e. inside one module folder's `mod.rs` face; see below);
//! 2. no upward edge: a file may only name files of its own top-level module or of a lower layer,
//!    in the order docs/architecture.md draws.
//!
//! A module folder's face (`mod.rs`, or `lib.rs` for the crate) re-exports names of its children
//! with `pub use`; a path through a face is followed to the child that defines the name, so the
//! face itself adds no edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the top layer down. A module may use modules of a LOWER rank (a
/// larger number) and itself; modules of one rank do not use each other.
const LAYERS: &[(&str, u32)] = &[
    ("main", 0),
    ("cli", 1),
    ("bench", 2),
    ("parity", 2),
    ("tracker", 3),
    ("sam2", 4),
    ("nn", 5),
    ("exec", 6),
    ("profile", 7),
    ("weights", 7),
    ("eval", 7),
    ("data", 8),
    ("image", 9),
    ("cuda", 9),
    ("host", 10),
    ("config", 11),
    ("compare", 11),
    ("error", 12),
    ("lib", 13),
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rel(p: &Path) -> String {
    p.strip_prefix(src()).unwrap().display().to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's text without comments and string literals (so doc examples and messages that
/// mention `crate::` are not read as paths).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            // a string literal (raw strings in this crate hold no `crate::`)
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // a char literal like '"'
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Every path named after `crate::`, as its segments, with `use` groups expanded
/// (`crate::a::{b, c::d}` gives `a::b` and `a::c::d`).
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `vosbench_crate::`
        }
        expand("", rest, &mut out);
    }
    out
}

fn ident_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Expand the path starting at `s` (after `prefix::`) into `out`.
fn expand(prefix: &str, s: &str, out: &mut Vec<Vec<String>>) {
    let s = s.trim_start();
    if let Some(inner) = s.strip_prefix('{') {
        // a group: split at top-level commas up to the matching brace
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let n = ident_len(s);
    if n == 0 {
        if !prefix.is_empty() {
            out.push(prefix.split("::").map(str::to_string).collect());
        }
        return;
    }
    let path = if prefix.is_empty() {
        s[..n].to_string()
    } else {
        format!("{prefix}::{}", &s[..n])
    };
    let tail = &s[n..];
    if let Some(next) = tail.strip_prefix("::") {
        expand(&path, next, out);
    } else {
        out.push(path.split("::").map(str::to_string).collect());
    }
}

struct Crate {
    files: BTreeSet<PathBuf>,
    /// per face file (lib.rs, mod.rs, or a `x.rs` with an `x/` folder): name -> child module
    /// it re-exports from (`pub use child::{Name}` or `pub use child::Name`).
    reexports: BTreeMap<PathBuf, BTreeMap<String, String>>,
}

impl Crate {
    fn load() -> Self {
        let mut files = Vec::new();
        rust_files(&src(), &mut files);
        let mut reexports = BTreeMap::new();
        for f in &files {
            let code = code_only(&std::fs::read_to_string(f).unwrap());
            let mut names = BTreeMap::new();
            for stmt in code.split(';') {
                let stmt = stmt.trim();
                let Some(rest) = stmt
                    .strip_prefix("pub use ")
                    .or_else(|| stmt.strip_prefix("pub(crate) use "))
                else {
                    continue;
                };
                let rest = rest.trim_start_matches("self::");
                let mut paths = Vec::new();
                expand("", rest, &mut paths);
                for p in paths {
                    if p.len() >= 2 && p[0] != "crate" && p[0] != "super" {
                        names.insert(p.last().unwrap().clone(), p[0].clone());
                    }
                }
            }
            reexports.insert(f.clone(), names);
        }
        Self {
            files: files.into_iter().collect(),
            reexports,
        }
    }

    /// The file a module path denotes: `dir/x.rs` or `dir/x/mod.rs`.
    fn module_file(&self, dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
        let flat = dir.join(format!("{name}.rs"));
        let nested = dir.join(name).join("mod.rs");
        let sub = dir.join(name);
        if self.files.contains(&flat) {
            Some((flat, sub))
        } else if self.files.contains(&nested) {
            Some((nested, sub))
        } else {
            None
        }
    }

    /// The file that defines what `path` (after `crate::`) names.
    fn resolve(&self, path: &[String]) -> Option<PathBuf> {
        let mut file = src().join("lib.rs");
        let mut dir = src();
        for seg in path {
            if let Some((f, sub)) = self.module_file(&dir, seg) {
                file = f;
                dir = sub;
                continue;
            }
            // not a module: an item of `file`, or a name `file` re-exports from a child
            if let Some(child) = self.reexports.get(&file).and_then(|m| m.get(seg)) {
                if let Some((f, _)) = self.module_file(&dir, child) {
                    // follow re-exports one level further if the child is a face too
                    return Some(f);
                }
            }
            return Some(file);
        }
        Some(file)
    }
}

fn top_module(file: &Path) -> String {
    let r = rel(file);
    let first = r.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

fn rank(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/layering.rs: add it"))
}

fn edges() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let c = Crate::load();
    let mut g: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &c.files {
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let set = g.entry(f.clone()).or_default();
        for p in crate_paths(&code) {
            if let Some(to) = c.resolve(&p) {
                if &to != f && !to.ends_with("lib.rs") {
                    set.insert(to);
                }
            }
        }
    }
    g
}

#[test]
fn no_upward_imports() {
    let mut bad = Vec::new();
    for (from, tos) in edges() {
        let (mf, rf) = (top_module(&from), rank(&top_module(&from)));
        for to in tos {
            let mt = top_module(&to);
            let rt = rank(&mt);
            if mf != mt && rt <= rf {
                bad.push(format!(
                    "{} -> {} ({mf} is not above {mt})",
                    rel(&from),
                    rel(&to)
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layer order:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_import_cycles_between_files() {
    let g = edges();
    // Tarjan's strongly connected components
    struct St<'a> {
        g: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a Path, usize>,
        low: BTreeMap<&'a Path, usize>,
        stack: Vec<&'a Path>,
        on: BTreeSet<&'a Path>,
        next: usize,
        sccs: Vec<Vec<&'a Path>>,
    }
    fn visit<'a>(s: &mut St<'a>, v: &'a Path) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        if let Some(ws) = s.g.get(v) {
            for w in ws {
                let w: &'a Path = w.as_path();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.sccs.push(comp);
            }
        }
    }
    let mut s = St {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        sccs: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_path()) {
            visit(&mut s, v);
        }
    }
    let cycles: Vec<String> = s
        .sccs
        .iter()
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|p| rel(p)).collect();
            names.sort();
            names.join(" <-> ")
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_paths_and_groups() {
    let code = code_only(
        "use crate::a::{b, c::{d, e}};\n// crate::zz::comment\nlet s = \"crate::yy\"; crate::f::g(x);",
    );
    let got: Vec<String> = crate_paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(got, ["a::b", "a::c::d", "a::c::e", "f::g"]);
    // every layer of the table exists in src/ and every src/ module is in the table
    let c = Crate::load();
    let mods: BTreeSet<String> = c.files.iter().map(|f| top_module(f)).collect();
    for m in &mods {
        rank(m);
    }
    // the edge finder is not blind: cli uses bench, bench uses config
    let g = edges();
    let uses = |from: &str, to: &str| {
        g.iter()
            .any(|(f, ts)| top_module(f) == from && ts.iter().any(|t| top_module(t) == to))
    };
    assert!(uses("cli", "bench") && uses("bench", "config") && uses("sam2", "nn"));
}

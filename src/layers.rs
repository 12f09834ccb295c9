//! Tests that the layers hold as `lib.rs` draws them: the adapters reach the database only
//! through the application, and the domain depends on nothing else in the crate.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (or `dir` itself when it is a file).
fn sources(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a source folder reads") {
        let path = entry.expect("a folder entry reads").path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

fn src(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(path)
}

/// The code of a line: without its comment and its string literals (a header's "no-store").
fn code(line: &str) -> String {
    let line = line.split("//").next().unwrap_or("");
    line.split('"').step_by(2).collect::<Vec<_>>().join("\"\"")
}

/// Whether `code` names the store: its module, its types, or the application's `store` field.
/// An atomic's `.store(` is not the store.
fn names_the_store(code: &str) -> bool {
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.' || c == '('))
        .collect();
    words.iter().any(|word| {
        word.contains("store::")
            || word
                .split([':', '.', '('])
                .any(|w| w == "Store" || w == "StoreError")
            || (word.contains(".store") && !word.contains(".store("))
    })
}

#[test]
fn no_adapter_names_the_store() {
    let mut named = Vec::new();
    for file in [src("http"), src("cli"), src("cli.rs"), src("demo.rs")]
        .iter()
        .filter(|p| p.exists())
        .flat_map(|p| sources(p))
    {
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        for (n, line) in text.lines().enumerate() {
            if names_the_store(&code(line)) {
                named.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        named.is_empty(),
        "adapters go through src/app, never the store:\n{}",
        named.join("\n")
    );
}

#[test]
fn the_store_check_sees_what_it_should() {
    assert!(names_the_store(&code("use crate::store::Campaign;")));
    assert!(names_the_store(&code("    state.app.store.campaign(id)")));
    assert!(names_the_store(&code("fn f(s: Store) {}")));
    assert!(!names_the_store(&code(
        "self.stopped.store(true, Ordering::Relaxed);"
    )));
    assert!(!names_the_store(&code(
        r#"    layer(header::CACHE_CONTROL, "no-store")"#
    )));
    assert!(!names_the_store(&code("    // the store keeps it")));
}

#[test]
fn the_domain_depends_on_nothing_else_in_the_crate() {
    let mut reaching = Vec::new();
    for file in sources(&src("domain")) {
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        for (n, line) in text.lines().enumerate() {
            let code = code(line);
            if code.contains("crate::") && !code.contains("crate::domain") {
                reaching.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        reaching.is_empty(),
        "the domain reaches out:\n{}",
        reaching.join("\n")
    );
}

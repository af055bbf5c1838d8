//! Architecture invariant (issue 15): adding a domain touches no adapter. Every domain
//! after the reference one (orders, which the provider seams of fulfilment are about) is
//! reached by the adapters only through the registry's generic types, so no adapter
//! crate's code names it: this test fails if a line of code (comments aside) in an
//! adapter or in the composition root names a registered domain other than `order`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_core::DomainId;
use std::path::{Path, PathBuf};

/// The crates around the core: the adapters and the composition root.
const ADAPTERS: &[&str] = &[
    "axum", "memory", "sqlite", "postgres", "temporal", "embedded", "relay", "hearth",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A line's code, without its `//` comment (a `//` inside a string literal cuts the line
/// short, which can only hide a name, never invent one: good enough for a guard that a
/// reviewer backs).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

#[test]
fn no_adapter_names_a_domain_beyond_the_reference_one() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let domains: Vec<&str> = DomainId::ALL
        .iter()
        .map(|d| d.name())
        .filter(|d| *d != "order")
        .collect();
    assert!(!domains.is_empty(), "the registry has a second domain");
    let mut files = Vec::new();
    for name in ADAPTERS {
        rust_files(&crates.join(name).join("src"), &mut files);
    }
    // `hearth demo` tells a story with both domains' commands: content, like a test,
    // not a seam a new domain has to touch.
    files.retain(|f| !f.ends_with("hearth/src/demo.rs"));
    assert!(
        files.len() > 20,
        "found the adapters' sources: {}",
        files.len()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = code(line).to_lowercase();
            for domain in &domains {
                if code.contains(domain) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "adapters name a domain (reach it through the registry instead):\n{}",
        found.join("\n")
    );
}

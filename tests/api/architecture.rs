//! The layering of `docs/architecture.md`, checked on the sources: a module may name (by a
//! `crate::` or `super::` path) only modules of its own layer or below, and the features only the
//! features before them in their order. A violation names the file, the line and the path.

use std::path::{Path, PathBuf};

/// Lowest first.
const LAYERS: &[&str] = &[
    "domain", "infra", "services", "http", "features", "app", "cli",
];
/// Lowest first: a feature may use the ones before it.
const FEATURES: &[&str] = &[
    "admin",
    "companies",
    "events",
    "api_tokens",
    "tenancy",
    "units",
    "otp_login",
    "tenant_access",
];

fn rank(list: &[&str], name: &str) -> Option<usize> {
    list.iter().position(|n| *n == name)
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code of a line, without a trailing `//` comment (doc comments may name any module).
fn code(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    line.split(" //").next().unwrap_or(line)
}

/// The leading identifier of `text`.
fn identifier(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The names right after each `prefix` in `line` (`prefix{a, b}` gives both).
fn names_after(line: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in line.split(prefix).skip(1) {
        match piece.trim_start().strip_prefix('{') {
            Some(group) => {
                let group = group.split('}').next().unwrap_or_default();
                names.extend(group.split(',').map(identifier));
            }
            None => names.push(identifier(piece)),
        }
    }
    names
}

/// The first segments after each `crate::` in `line`.
fn crate_targets(line: &str) -> Vec<String> {
    names_after(line, "crate::")
}

/// The features named in `crate::features::` paths.
fn feature_targets(line: &str) -> Vec<String> {
    names_after(line, "crate::features::")
}

#[test]
fn no_module_names_a_higher_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 30, "found only {} source files", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        let Some(layer) = rank(LAYERS, &parts[0]) else {
            continue; // lib.rs and main.rs sit above everything
        };
        let feature = (parts[0] == "features" && parts.len() > 1)
            .then(|| rank(FEATURES, &parts[1]))
            .flatten();
        // `super::x` from features/NAME.rs or features/NAME/mod.rs names a sibling feature.
        let super_is_features =
            parts[0] == "features" && (parts.len() == 2 || (parts.len() == 3 && parts[2] == "mod"));
        let text = std::fs::read_to_string(file).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            let line = code(line);
            let mut problems = Vec::new();
            for target in crate_targets(line) {
                match rank(LAYERS, &target) {
                    Some(target_layer) if target_layer > layer => {
                        problems.push(format!("crate::{target}"))
                    }
                    _ => {}
                }
            }
            let mut siblings = feature_targets(line);
            if super_is_features {
                siblings.extend(crate_targets(&line.replace("super::", "crate::")));
            }
            if let Some(own) = feature {
                for target in siblings {
                    if let Some(other) = rank(FEATURES, &target)
                        && other > own
                    {
                        problems.push(format!("features::{target}"));
                    }
                }
            }
            for problem in problems {
                violations.push(format!(
                    "{}:{}: {} names {problem}, a higher layer",
                    relative.display(),
                    number + 1,
                    parts.join("::"),
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_check_finds_a_higher_layer_in_a_use_line() {
    assert_eq!(crate_targets("use crate::http::AppState;"), ["http"]);
    assert_eq!(
        crate_targets("use crate::{admin, api_tokens};"),
        ["admin", "api_tokens"]
    );
    assert_eq!(
        feature_targets("use crate::features::{tenancy, units};"),
        ["tenancy", "units"]
    );
    assert_eq!(code("    // see crate::app"), "");
}

/// Transactions begin only through `infra::db::begin`, which cannot leave a connection inside a
/// transaction when its caller is dropped mid-`BEGIN` (see the hardening test).
#[test]
fn transactions_begin_only_through_the_cancellation_safe_helper() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| !file.ends_with("infra/db.rs"))
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.lines()
                .enumerate()
                .filter(|(_, line)| code(line).contains(".begin()"))
                .map(|(n, _)| format!("{}:{}", file.display(), n + 1))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "use infra::db::begin: {offenders:?}");
}

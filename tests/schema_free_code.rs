//! The worker, the backfill and the trainer know no lender's fields: no field or column name of
//! the shipped German Credit schema appears in their code outside its unit tests. The schema
//! file and the data are the only places that name them.

use credit_core::schema::Schema;
use credit_testkit::paths::repo_root;
use std::path::{Path, PathBuf};

/// The Rust files under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Whether `name` occurs in `text` as a whole word (not inside a longer identifier).
fn names_word(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

#[test]
fn no_german_credit_field_or_column_name_is_in_the_worker_backfill_or_trainer_code() {
    let root = repo_root().to_path_buf();
    let schema = Schema::load(&root.join("schemas/german-credit.toml")).expect("the schema");
    let mut names: Vec<&str> = schema
        .fields()
        .iter()
        .flat_map(|field| [field.name.as_str(), field.column.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut files = Vec::new();
    for dir in [
        "crates/worker/src",
        "crates/backfill/src",
        "crates/training/src",
    ] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a source file");
        // Unit tests may use the shipped schema's data; the code above them may not.
        let code = text.split("\n#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            for name in names.iter().filter(|name| names_word(line, name)) {
                found.push(format!(
                    "{}:{}: `{name}`: {}",
                    file.strip_prefix(&root).unwrap_or(file).display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "German Credit names in code:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_a_name_where_there_is_one() {
    assert!(names_word("let age = row.age_years;", "age_years"));
    assert!(!names_word("let average_age_years_total = 1;", "age_years"));
}

//! `capstan convert`: v1 YAML on stdout; notes on stderr; unknown input fields are errors (the
//! output is still printed, but the exit code says something was dropped).

use std::path::PathBuf;

use super::CliResult;
use crate::convert::{check_v1, convert_document};
use crate::manifest::{self, Document, ManifestErrors, parse_path};

pub fn run(files: &[PathBuf]) -> CliResult {
    let docs = manifest::read_paths(files)?;
    let mut errors = Vec::new();
    let mut out = String::new();
    for doc in &docs {
        let converted = match convert_document(&doc.value) {
            Ok(c) => c,
            Err(e) => {
                errors.push(doc.error(&parse_path(e.path()), e.to_string()));
                continue;
            }
        };
        for note in &converted.notes {
            eprintln!("{}", located(doc, note));
        }
        for field in &converted.unknown_fields {
            let path = parse_path(field);
            let name = field.rsplit('.').next().unwrap_or(field);
            errors.push(doc.error(
                &path,
                format!("unknown field \"{name}\" (dropped from the output)"),
            ));
        }
        for object in &converted.objects {
            // The output must itself decode as v1: a conversion bug is caught here, not at apply.
            if let Err(e) = check_v1(object) {
                errors.push(doc.error(
                    &[],
                    format!("converted object does not decode as v1 (a capstan bug): {e}"),
                ));
                continue;
            }
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(object)?);
        }
    }
    print!("{out}");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Box::new(ManifestErrors(errors)))
    }
}

/// `file:line: document N: note`, the line found from the field path the note starts with.
fn located(doc: &Document, note: &str) -> String {
    let line = note
        .split_once(": ")
        .and_then(|(path, _)| doc.line_of(&parse_path(path)));
    match line {
        Some(l) => format!("{}:{l}: document {}: {note}", doc.file.display(), doc.index),
        None => format!("{}: document {}: {note}", doc.file.display(), doc.index),
    }
}

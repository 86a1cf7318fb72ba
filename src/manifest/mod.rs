//! Reading manifests the way a person writes them: YAML or JSON files (or directories of them),
//! several documents per file, decoded strictly. Every problem is reported with the file, the
//! document index, the field path and the line, never a panic.

mod located;
mod objects;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use located::{Located, PathSeg, parse_path, path_string};
pub use objects::{Object, decode_object};

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    pub file: PathBuf,
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: Value,
    tree: Located,
}

/// What went wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub document: Option<usize>,
    /// Field path like `spec.template.spec.requirements[0].key`; empty for the whole document.
    pub path: String,
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line.filter(|l| *l > 0) {
            write!(f, ":{line}")?;
        }
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}

/// Several errors at once, so a person fixes a file in one pass.
#[derive(Debug)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// Expands directories (their `*.yaml`, `*.yml` and `*.json` files, sorted, not recursive into
/// hidden folders) and reads every document of every file.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Document>, ManifestErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect_files(p, &mut files, &mut errors);
    }
    let mut docs = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse_documents(&f, &text) {
                Ok(mut d) => docs.append(&mut d),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(file_error(&f, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(docs)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn file_error(file: &Path, message: String) -> ManifestError {
    ManifestError {
        file: file.to_path_buf(),
        document: None,
        path: String::new(),
        line: None,
        message,
    }
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<ManifestError>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) => {
                errors.push(file_error(p, format!("cannot read directory: {e}")));
                return;
            }
        };
        entries.sort();
        for e in entries {
            let hidden = e
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            let manifest = e
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"));
            if e.is_dir() && !hidden {
                collect_files(&e, out, errors);
            } else if manifest && !hidden {
                out.push(e);
            }
        }
    } else if p.exists() {
        out.push(p.to_path_buf());
    } else {
        errors.push(file_error(p, "no such file or directory".into()));
    }
}

/// Splits a file's text into documents. Empty documents (`---` alone, comments only) are skipped
/// but still counted, so indices match what an editor shows.
pub fn parse_documents(file: &Path, text: &str) -> Result<Vec<Document>, ManifestError> {
    if text.contains('\t') {
        // YAML forbids tabs in indentation; say where, which the parser's message does not always.
        if let Some((n, _)) = text
            .lines()
            .enumerate()
            .find(|(_, l)| l.trim_start_matches(' ').starts_with('\t'))
        {
            return Err(ManifestError {
                file: file.to_path_buf(),
                document: None,
                path: String::new(),
                line: Some(n as u64 + 1),
                message: "tab character used for indentation; YAML allows only spaces".into(),
            });
        }
    }
    let trees = located::parse_multi(text).map_err(|(line, message)| ManifestError {
        file: file.to_path_buf(),
        document: None,
        path: String::new(),
        line,
        message,
    })?;
    Ok(trees
        .into_iter()
        .enumerate()
        .filter(|(_, t)| !t.is_null())
        .map(|(i, tree)| Document {
            file: file.to_path_buf(),
            index: i + 1,
            value: tree.to_json(),
            tree,
        })
        .collect())
}

impl Document {
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Line of the node at `path`, or of its nearest ancestor that exists.
    pub fn line_of(&self, path: &[PathSeg]) -> Option<u64> {
        self.tree.line_of(path)
    }

    pub fn error(&self, path: &[PathSeg], message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.clone(),
            document: Some(self.index),
            path: located::path_string(path),
            line: self.line_of(path),
            message: message.into(),
        }
    }

    /// Decodes into `T`, rejecting unknown fields and wrong types with their path and line.
    pub fn decode_strict<T: DeserializeOwned>(&self) -> Result<T, ManifestErrors> {
        decode_strict(self, &self.value)
    }
}

/// Decodes `value` (which belongs to `doc`) into `T`. Unknown fields are errors: a misspelled field
/// silently ignored is a setting silently lost.
pub fn decode_strict<T: DeserializeOwned>(
    doc: &Document,
    value: &Value,
) -> Result<T, ManifestErrors> {
    let mut unknown: Vec<Vec<PathSeg>> = Vec::new();
    let result: Result<T, _> = {
        let mut record = |p: serde_ignored::Path<'_>| unknown.push(located::from_ignored(&p));
        let de = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize(de)
    };
    let mut errors = Vec::new();
    let decoded = match result {
        Ok(v) => Some(v),
        Err(e) => {
            let path = located::from_path_to_error(e.path());
            errors.push(doc.error(&path, e.into_inner().to_string()));
            None
        }
    };
    // Typed roots read apiVersion / kind through their type, not as fields; the caller
    // dispatched on them already.
    let type_meta =
        |p: &[PathSeg]| matches!(p, [PathSeg::Key(k)] if k == "apiVersion" || k == "kind");
    for path in unknown.into_iter().filter(|p| !type_meta(p)) {
        let (field, parent) = match path.split_last() {
            Some((PathSeg::Key(k), parent)) => (k.clone(), parent.to_vec()),
            _ => (String::new(), path.clone()),
        };
        let mut e = doc.error(&path, format!("unknown field \"{field}\""));
        if e.line.is_none() {
            e.line = doc.line_of(&parent);
        }
        errors.push(e);
    }
    match decoded {
        Some(v) if errors.is_empty() => Ok(v),
        _ => Err(ManifestErrors(errors)),
    }
}

#[cfg(test)]
mod tests;

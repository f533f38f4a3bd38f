//! Rule files: reading `rules/site.toml` and `rules/vendors/*.toml`, and turning
//! every mistake into a [`RuleError`] that names file, line, column and key.
//!
//! Loading is all-or-nothing: [`load_dir`] returns either a fully validated
//! [`crate::policy::Policy`] or every error found, so a reload can keep the last
//! good rules on any mistake.

mod compile;
pub mod schema;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::policy::Policy;
pub use compile::{compile, valid_hash_source, valid_host_source};
use schema::{SiteFile, VendorFile};

/// One mistake in a rule file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    /// 1-based; 0 when the mistake is about the file as a whole.
    pub line: usize,
    /// 1-based; 0 when the mistake is about the file as a whole.
    pub column: usize,
    /// Starts with the key path (`route[1].allow[0]`) where there is one.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// Every mistake found in one load; never empty.
#[derive(Debug, Clone)]
pub struct RuleErrors(pub Vec<RuleError>);

impl fmt::Display for RuleErrors {
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

impl std::error::Error for RuleErrors {}

/// A rule file's text, kept so that byte spans can be turned into line and column.
#[derive(Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// An error at `span` (a byte range from a [`toml::Spanned`] value).
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> RuleError {
        let (line, column) = line_col(&self.text, span.start);
        RuleError { file: self.path.clone(), line, column, message: message.into() }
    }

    /// An error about the file as a whole.
    pub fn error(&self, message: impl Into<String>) -> RuleError {
        RuleError { file: self.path.clone(), line: 0, column: 0, message: message.into() }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, RuleError> {
        toml::from_str(&self.text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            // toml's message repeats the location and a source excerpt; keep the first line.
            let message = e.message().lines().next().unwrap_or("invalid TOML").to_string();
            let message = match key_path_at(&self.text, span.start) {
                Some(path) => format!("{path}: {message}"),
                None => message,
            };
            let mut err = self.error_at(span.clone(), message);
            if span == (0..0) {
                err.line = 1;
                err.column = 1;
            }
            err
        })
    }
}

/// The dotted key path (`route[1].allow`, `site.name`) of the key on the line
/// holding byte `offset`, from the table headers above it. toml's own errors give
/// a position but not the path, so it is read back from the text.
pub fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        let trimmed = line.trim();
        let header = trimmed
            .strip_prefix("[[")
            .and_then(|r| r.split("]]").next())
            .map(|n| (n.trim(), true))
            .or_else(|| trimmed.strip_prefix('[').and_then(|r| r.split(']').next()).map(|n| (n.trim(), false)));
        let is_header = header.is_some();
        if let Some((name, array)) = header {
            // `[route.csp]` under the latest `[[route]]` is `route[k].csp`.
            let mut path = String::new();
            let parts: Vec<&str> = name.split('.').map(str::trim).collect();
            for (i, part) in parts.iter().enumerate() {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(part);
                let key = parts[..=i].join(".");
                let last = i + 1 == parts.len();
                if array && last {
                    let n = counts.entry(key).or_insert(0);
                    *n += 1;
                    path.push_str(&format!("[{}]", *n - 1));
                } else if let Some(n) = counts.get(&key) {
                    path.push_str(&format!("[{}]", n.saturating_sub(1)));
                }
            }
            table = path;
        }
        if offset < end || end == text.len() {
            if is_header {
                return (!table.is_empty()).then_some(table);
            }
            let key = trimmed.split('=').next().map(str::trim).filter(|k| !k.is_empty() && !k.starts_with('#'))?;
            let key = key.trim_matches('"');
            return Some(if table.is_empty() { key.to_string() } else { format!("{table}.{key}") });
        }
        pos = end;
    }
    None
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The parsed (not yet validated) rule files of one directory.
#[derive(Debug)]
pub struct RuleSources {
    pub site_source: SourceFile,
    pub site: SiteFile,
    pub vendors: Vec<(SourceFile, VendorFile)>,
    /// Hash over every file's path and contents: changes whenever any rule changes.
    pub version: String,
}

/// Reads and validates `dir/site.toml` and `dir/vendors/*.toml` into a [`Policy`].
pub fn load_dir(dir: &Path) -> Result<Policy, RuleErrors> {
    let sources = read_dir(dir)?;
    compile(&sources)
}

/// Reads and parses the files (syntax and unknown keys); semantic checks happen in
/// [`compile`].
pub fn read_dir(dir: &Path) -> Result<RuleSources, RuleErrors> {
    let mut errors = Vec::new();
    let site_path = dir.join("site.toml");
    let mut hasher = Sha256::new();

    let site_source = match read_source(&site_path) {
        Ok(s) => s,
        Err(e) => return Err(RuleErrors(vec![e])),
    };
    hash_file(&mut hasher, "site.toml", &site_source.text);
    let site = site_source.parse::<SiteFile>().map_err(|e| errors.push(e)).ok();

    let vendor_dir = dir.join("vendors");
    let vendor_paths: Vec<PathBuf> = match vendor_paths(&vendor_dir) {
        Ok(paths) => paths,
        Err(e) => {
            errors.push(RuleError {
                file: vendor_dir.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read vendor directory: {e}"),
            });
            Vec::new()
        }
    };

    let mut vendors = Vec::new();
    for path in vendor_paths {
        let source = match read_source(&path) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        hash_file(&mut hasher, &vendor_key(&path), &source.text);
        match source.parse::<VendorFile>() {
            Ok(v) => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if *v.id.get_ref() != stem {
                    errors.push(
                        source.error_at(
                            v.id.span(),
                            format!("id: `{}` must equal the file name `{stem}`", v.id.get_ref()),
                        ),
                    );
                }
                vendors.push((source, v));
            }
            Err(e) => errors.push(e),
        }
    }

    match site {
        Some(site) if errors.is_empty() => Ok(RuleSources { site_source, site, vendors, version: short_hex(hasher) }),
        _ => Err(RuleErrors(errors)),
    }
}

/// A hash of the rule tree as it is on disk: every `site.toml` and
/// `vendors/*.toml` path with its content, an unreadable file by its path alone.
/// Equal to [`RuleSources::version`] whenever the tree reads, and defined when it
/// does not, so a watcher tells any edit (a fix, another mistake) from no edit.
pub fn fingerprint(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    match std::fs::read_to_string(dir.join("site.toml")) {
        Ok(text) => hash_file(&mut hasher, "site.toml", &text),
        Err(_) => hasher.update(b"site.toml\0unreadable\0"),
    }
    match vendor_paths(&dir.join("vendors")) {
        Ok(paths) => {
            for path in paths {
                match std::fs::read_to_string(&path) {
                    Ok(text) => hash_file(&mut hasher, &vendor_key(&path), &text),
                    Err(_) => hasher.update(format!("{}\0unreadable\0", vendor_key(&path))),
                }
            }
        }
        Err(_) => hasher.update(b"vendors\0unreadable\0"),
    }
    short_hex(hasher)
}

/// `vendors/*.toml`, sorted (the version hash depends on the order).
fn vendor_paths(vendor_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vendor_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

fn vendor_key(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!("vendors/{name}")
}

fn short_hex(hasher: Sha256) -> String {
    hasher.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect()
}

fn hash_file(hasher: &mut Sha256, name: &str, text: &str) {
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update((text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

fn read_source(path: &Path) -> Result<SourceFile, RuleError> {
    std::fs::read_to_string(path).map(|text| SourceFile { path: path.to_path_buf(), text }).map_err(|e| RuleError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::{fingerprint, key_path_at, read_dir};

    #[test]
    fn the_fingerprint_of_a_readable_tree_is_its_version() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        assert_eq!(fingerprint(&dir), read_dir(&dir).unwrap().version);
    }

    #[test]
    fn key_paths_follow_tables_and_arrays_of_tables() {
        let t = "[site]\nnmae = 1\n\n[[route]]\npath = \"/\"\n[[route]]\nalow = []\n[route.csp]\nimg_src = 1\n";
        let at = |needle: &str| key_path_at(t, t.find(needle).unwrap());
        assert_eq!(at("nmae").as_deref(), Some("site.nmae"));
        assert_eq!(at("path").as_deref(), Some("route[0].path"));
        assert_eq!(at("alow").as_deref(), Some("route[1].alow"));
        assert_eq!(at("img_src").as_deref(), Some("route[1].csp.img_src"));
        assert_eq!(key_path_at("id = 1\nhosts = 2\n", 8).as_deref(), Some("hosts"));
    }
}

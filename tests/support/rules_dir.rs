//! A rules directory in a tempdir that tests write mistakes into (the rule-error
//! and BAA-guard suites).

use std::path::{Path, PathBuf};

use tagwarden::rules::{RuleError, RuleErrors, load_dir};

pub struct RulesDir {
    dir: tempfile::TempDir,
}

impl RulesDir {
    /// A directory holding `files` (`site.toml`, `vendors/<id>.toml`, …).
    pub fn with(files: &[(&str, &str)]) -> RulesDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("vendors")).unwrap();
        let rules = RulesDir { dir };
        for (rel, text) in files {
            rules.write(rel, text);
        }
        rules
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.file(rel), text).unwrap();
    }

    /// Replaces the one occurrence of `from` in `rel` with `to`.
    pub fn edit(&self, rel: &str, from: &str, to: &str) -> String {
        let text = std::fs::read_to_string(self.file(rel)).unwrap();
        assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once in {rel}");
        let text = text.replace(from, to);
        self.write(rel, &text);
        text
    }

    /// Every error of this load (which must fail).
    pub fn errors(&self) -> Vec<RuleError> {
        match load_dir(self.path()) {
            Ok(_) => panic!("rules in {} loaded, expected errors", self.path().display()),
            Err(RuleErrors(errors)) => {
                assert!(!errors.is_empty(), "RuleErrors is never empty");
                errors
            }
        }
    }

    /// The single error of this load.
    pub fn only_error(&self) -> RuleError {
        let errors = self.errors();
        assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{}", RuleErrors(errors.clone()));
        errors.into_iter().next().unwrap()
    }
}

//! Errors and warnings found while reading the configuration, each naming the file, line and key path:
//! `config.yaml:14: staticClients[0].redirectURIs: expected a list`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 0 when the problem has no place in the file (a missing file, an environment variable).
    pub line: u32,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.path.is_empty()) {
            (0, true) => write!(f, "{}: {}", self.file, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.path, self.message),
            (line, true) => write!(f, "{}:{line}: {}", self.file, self.message),
            (line, false) => write!(f, "{}:{line}: {}: {}", self.file, self.path, self.message),
        }
    }
}

/// Collects every problem instead of stopping at the first, so one run shows them all.
#[derive(Debug, Default)]
pub struct Diagnostics {
    file: String,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>) -> Self {
        Self { file: file.into(), ..Self::default() }
    }

    fn make(&self, line: u32, path: &str, message: impl fmt::Display) -> Diagnostic {
        Diagnostic { file: self.file.clone(), line, path: path.to_owned(), message: message.to_string() }
    }

    pub fn error(&mut self, line: u32, path: &str, message: impl fmt::Display) {
        let diagnostic = self.make(line, path, message);
        self.errors.push(diagnostic);
    }

    pub fn warn(&mut self, line: u32, path: &str, message: impl fmt::Display) {
        let diagnostic = self.make(line, path, message);
        self.warnings.push(diagnostic);
    }
}

//! The environment as configuration sees it: a snapshot, so tests can supply their own, and Go's
//! `os.ExpandEnv` rules for `$VAR` and `${VAR}`.

use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A Dex feature flag (`DEX_<NAME>`), parsed as Go's `strconv.ParseBool`. `Err` carries the bad value.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(other) => Err(other.to_owned()),
        }
    }

    /// Go's `os.ExpandEnv`: `$NAME` and `${NAME}` become the variable's value, or nothing when unset.
    pub fn expand(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) => {
                        out.push_str(self.get(&braced[..end]).unwrap_or(""));
                        rest = &braced[end + 1..];
                    }
                    // Go drops an unterminated `${…` entirely.
                    None => rest = "",
                }
                continue;
            }
            let name_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if name_len == 0 {
                // `$` not followed by a name stays as it is.
                out.push('$');
            } else {
                out.push_str(self.get(&after[..name_len]).unwrap_or(""));
            }
            rest = &after[name_len..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_go() {
        let env = Env::from_pairs([("DB_PASS", "s3cret"), ("HOST", "db")]);
        assert_eq!(env.expand("$DB_PASS"), "s3cret");
        assert_eq!(env.expand("${DB_PASS}!"), "s3cret!");
        assert_eq!(env.expand("postgres://$HOST:5432/${HOST}x"), "postgres://db:5432/dbx");
        assert_eq!(env.expand("$UNSET-x"), "-x");
        assert_eq!(env.expand("cost $ 5"), "cost $ 5");
        assert_eq!(env.expand("${BROKEN"), "");
        assert_eq!(env.expand("no vars"), "no vars");
    }

    #[test]
    fn flags_parse_like_go_booleans() {
        let env = Env::from_pairs([("A", "true"), ("B", "0"), ("C", "maybe")]);
        assert_eq!(env.flag("A", false), Ok(true));
        assert_eq!(env.flag("B", true), Ok(false));
        assert_eq!(env.flag("MISSING", true), Ok(true));
        assert_eq!(env.flag("C", true), Err("maybe".into()));
    }
}

//! Typed reading of YAML mappings with Dex's rules: keys match case-insensitively, null means
//! absent, and each wrong type, missing key or unknown key becomes a diagnostic with path and line.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::duration::parse_go_duration;
use super::yaml::{Key, Node, Value};

/// Joins a key path the way messages print it: `web.http`, `staticClients[0].id`.
pub fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// One mapping being read; remembers which keys were asked for, to report the others.
pub struct Map<'a> {
    pub path: String,
    pub line: u32,
    entries: &'a [(Key, Node)],
    known: Vec<&'static str>,
    used: Vec<bool>,
}

impl<'a> Map<'a> {
    /// `None` (with an error) unless the node is a mapping; null reads as an empty mapping.
    pub fn new(node: &'a Node, path: &str, d: &mut Diagnostics) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Self {
                path: path.to_owned(),
                line: node.line,
                entries,
                known: Vec::new(),
                used: vec![false; entries.len()],
            }),
            Value::Null => {
                Some(Self { path: path.to_owned(), line: node.line, entries: &[], known: Vec::new(), used: Vec::new() })
            }
            other => {
                d.error(node.line, path, format!("expected a mapping, found {}", other.kind()));
                None
            }
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    /// The node under `key` (exact spelling first, then any case, as Go's JSON decoder does); null
    /// counts as absent.
    pub fn node(&mut self, key: &'static str) -> Option<&'a Node> {
        self.known.push(key);
        let index = self
            .entries
            .iter()
            .position(|(k, _)| k.name == key)
            .or_else(|| self.entries.iter().position(|(k, _)| k.name.eq_ignore_ascii_case(key)))?;
        self.used[index] = true;
        let node = &self.entries[index].1;
        (!matches!(node.value, Value::Null)).then_some(node)
    }

    pub fn has(&mut self, key: &'static str) -> bool {
        self.node(key).is_some()
    }

    pub fn string(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<String> {
        let node = self.node(key)?;
        scalar_string(node, &self.key_path(key), d)
    }

    /// A string that must be present and non-empty.
    pub fn required_string(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<String> {
        match self.string(d, key) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                d.error(self.line_of(key), &self.key_path(key), "must not be empty");
                None
            }
            None => {
                if self.node(key).is_none() {
                    d.error(self.line, &self.key_path(key), "is required");
                }
                None
            }
        }
    }

    pub fn bool(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<bool> {
        self.scalar(d, key, "a boolean", |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        })
    }

    pub fn integer(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<i64> {
        self.scalar(d, key, "an integer", |v| match v {
            Value::Int(i) => Some(*i),
            _ => None,
        })
    }

    /// The value under `key` if `extract` accepts it; otherwise an error saying what was expected.
    fn scalar<T>(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        expected: &str,
        extract: impl Fn(&Value) -> Option<T>,
    ) -> Option<T> {
        let node = self.node(key)?;
        let value = extract(&node.value);
        if value.is_none() {
            d.error(node.line, &self.key_path(key), format!("expected {expected}, found {}", node.value.kind()));
        }
        value
    }

    /// An integer within `range`, converted to the target type.
    pub fn integer_in<T: TryFrom<i64>>(
        &mut self,
        d: &mut Diagnostics,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<T> {
        let value = self.integer(d, key)?;
        if !range.contains(&value) {
            d.error(
                self.line_of(key),
                &self.key_path(key),
                format!("{value} is out of range ({}..={})", range.start(), range.end()),
            );
            return None;
        }
        T::try_from(value).ok()
    }

    pub fn strings(&mut self, d: &mut Diagnostics, key: &'static str) -> Vec<String> {
        let Some(node) = self.node(key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| scalar_string(item, &format!("{path}[{i}]"), d))
                .collect(),
            other => {
                d.error(node.line, &path, format!("expected a list, found {}", other.kind()));
                Vec::new()
            }
        }
    }

    /// A mapping of strings to strings (`frontend.extra`, `web.headers`).
    pub fn string_map(&mut self, d: &mut Diagnostics, key: &'static str) -> BTreeMap<String, String> {
        let Some(node) = self.node(key) else {
            return BTreeMap::new();
        };
        let path = self.key_path(key);
        let Some(map) = Map::new(node, &path, d) else {
            return BTreeMap::new();
        };
        map.entries
            .iter()
            .filter_map(|(k, v)| Some((k.name.clone(), scalar_string(v, &child_path(&path, &k.name), d)?)))
            .collect()
    }

    /// A Go duration string such as `24h`.
    pub fn duration(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<Duration> {
        let text = self.string(d, key)?;
        match parse_go_duration(&text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                d.error(self.line_of(key), &self.key_path(key), message);
                None
            }
        }
    }

    /// The mapping under `key`; its own line is the key's, so "is required" errors point there.
    pub fn map(&mut self, d: &mut Diagnostics, key: &'static str) -> Option<Map<'a>> {
        let node = self.node(key)?;
        let mut map = Map::new(node, &self.key_path(key), d)?;
        map.line = self.line_of(key);
        Some(map)
    }

    /// The items of a list, each with its path (`staticClients[2]`).
    pub fn list(&mut self, d: &mut Diagnostics, key: &'static str) -> Vec<(String, &'a Node)> {
        let Some(node) = self.node(key) else {
            return Vec::new();
        };
        let path = self.key_path(key);
        match &node.value {
            Value::Seq(items) => items.iter().enumerate().map(|(i, item)| (format!("{path}[{i}]"), item)).collect(),
            other => {
                d.error(node.line, &path, format!("expected a list, found {}", other.kind()));
                Vec::new()
            }
        }
    }

    /// A key tessera recognises but does not act on yet: a warning that names it, if it is set.
    pub fn not_yet(&mut self, d: &mut Diagnostics, key: &'static str, when: &str) {
        if self.node(key).is_some() {
            d.warn(
                self.line_of(key),
                &self.key_path(key),
                format!("recognised but not implemented yet ({when}); ignored"),
            );
        }
    }

    pub fn line_of(&self, key: &str) -> u32 {
        self.entries.iter().find(|(k, _)| k.name.eq_ignore_ascii_case(key)).map(|(k, _)| k.line).unwrap_or(self.line)
    }

    /// Reports every key that was never asked for: a warning, or an error when `strict`
    /// (`DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=true`).
    pub fn finish(self, d: &mut Diagnostics, strict: bool) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let suggestion =
                closest(&key.name, &self.known).map(|k| format!(" (did you mean {k:?}?)")).unwrap_or_default();
            let message = format!("unknown key{suggestion}");
            let path = child_path(&self.path, &key.name);
            if strict { d.error(key.line, &path, message) } else { d.warn(key.line, &path, message) }
        }
    }
}

/// A scalar read as a string. Numbers and booleans are not strings, as in Dex (`secret: 1234` fails).
fn scalar_string(node: &Node, path: &str, d: &mut Diagnostics) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.clone()),
        other => {
            d.error(node.line, path, format!("expected a string, found {} (quote it)", other.kind()));
            None
        }
    }
}

/// The known key a misspelt one most likely meant, if any is close.
fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&unknown, &k.to_ascii_lowercase()), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// The whole node as JSON (connector and storage configs are passed on as they are).
pub fn to_json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::Seq(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => {
            serde_json::Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), to_json(v))).collect())
        }
    }
}

/// Applies `f` to every string value under `node` (used for `$VAR` expansion).
pub fn map_strings(node: &mut Node, f: &impl Fn(&str) -> String) {
    match &mut node.value {
        Value::Str(s) => *s = f(s),
        Value::Seq(items) => items.iter_mut().for_each(|item| map_strings(item, f)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| map_strings(v, f)),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys() {
        assert_eq!(closest("redirectURI", &["redirectURIs", "name"]), Some("redirectURIs"));
        assert_eq!(closest("htp", &["http", "https"]), Some("http"));
        assert_eq!(closest("completely-different", &["http"]), None);
    }
}

//! The configuration file as a tree of YAML nodes that remember their line, so that every later error
//! can say where it comes from. YAML 1.1 as Dex reads it: `yes`/`no`/`on`/`off` are booleans and
//! `<<` merge keys are applied.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node and the (1-based) line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: u32,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in file order; each key keeps its own line.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: u32,
}

impl Value {
    /// How an error message names this kind of value.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses a whole document. A syntax error comes back as (line, message).
pub fn parse(text: &str) -> Result<Node, (u32, String)> {
    if text.trim().is_empty() {
        return Ok(Node { line: 1, value: Value::Map(Vec::new()) });
    }
    let options = serde_saphyr::options! { with_snippet: false };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|err| {
        let line = err.location().map(|l| l.line() as u32).unwrap_or(0);
        (line, first_line(&err.to_string()))
    })
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node { line: spanned.referenced.line() as u32, value: spanned.value })
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        let name = match spanned.value {
            Value::Str(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Null => String::new(),
            Value::Seq(_) | Value::Map(_) => {
                return Err(de::Error::custom("a mapping key must be a scalar"));
            }
        };
        Ok(Key { name, line: spanned.referenced.line() as u32 })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Int).map_err(|_| E::custom("number too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[(Key, Node)] {
        match &node.value {
            Value::Map(entries) => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn nodes_know_their_lines() {
        let doc =
            parse("issuer: http://x\nstorage:\n  type: sqlite3\n  config:\n    file: a.db\nlist:\n  - a\n  - b\n")
                .unwrap();
        let top = map(&doc);
        assert_eq!(top[0].0.name, "issuer");
        assert_eq!(top[0].0.line, 1);
        assert_eq!(top[1].0.line, 2);
        let storage = map(&top[1].1);
        assert_eq!((storage[0].0.name.as_str(), storage[0].0.line, storage[0].1.line), ("type", 3, 3));
        assert_eq!(storage[1].0.line, 4);
        let Value::Seq(items) = &top[2].1.value else { panic!() };
        assert_eq!(items.iter().map(|n| n.line).collect::<Vec<_>>(), vec![7, 8]);
    }

    #[test]
    fn yaml_1_1_booleans_and_merge_keys() {
        let doc = parse(
            "common: &common\n  startTLS: yes\n  port: 636\nldap:\n  <<: *common\n  insecure: off\n  name: 'yes'\n",
        )
        .unwrap();
        let ldap = map(&map(&doc)[1].1);
        let get = |k: &str| ldap.iter().find(|(key, _)| key.name == k).map(|(_, v)| v.value.clone());
        assert_eq!(get("startTLS"), Some(Value::Bool(true)));
        assert_eq!(get("port"), Some(Value::Int(636)));
        assert_eq!(get("insecure"), Some(Value::Bool(false)));
        assert_eq!(get("name"), Some(Value::Str("yes".into())), "quoted scalars stay strings");
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let (line, message) = parse("issuer: x\nstorage:\n  type: [unclosed\n").unwrap_err();
        assert!(line >= 3, "line {line}: {message}");
        assert!(!message.is_empty());
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        assert!(parse("a: 1\na: 2\n").is_err());
    }
}

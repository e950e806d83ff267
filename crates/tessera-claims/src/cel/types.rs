//! The types an expression is checked against: CEL's own, and the two objects Dex's CEL DEP declares
//! (`identity`, `request`) with their fields, so `identity.emial` is a start-up error and not a
//! silent `null` in production. `custom` (the enrichers' claims) is `map(string, dyn)`: its shape is
//! the operator's data.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Known only at run time (a value of `custom`, a JSON value).
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Object(Object),
    Optional(Box<Ty>),
    /// A type value (`type(x) == string`).
    Type,
}

/// The DEP's declared objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Identity,
    Request,
}

const IDENTITY_FIELDS: &[(&str, Field)] = &[
    ("user_id", Field::String),
    ("username", Field::String),
    ("preferred_username", Field::String),
    ("email", Field::String),
    ("email_verified", Field::Bool),
    ("groups", Field::Strings),
];

const REQUEST_FIELDS: &[(&str, Field)] = &[
    ("client_id", Field::String),
    ("connector_id", Field::String),
    ("scopes", Field::Strings),
    ("redirect_uri", Field::String),
    ("grant_type", Field::String),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    String,
    Bool,
    Strings,
}

impl Object {
    pub fn name(self) -> &'static str {
        match self {
            Object::Identity => "identity",
            Object::Request => "request",
        }
    }

    fn fields(self) -> &'static [(&'static str, Field)] {
        match self {
            Object::Identity => IDENTITY_FIELDS,
            Object::Request => REQUEST_FIELDS,
        }
    }

    pub fn field_names(self) -> Vec<&'static str> {
        self.fields().iter().map(|(name, _)| *name).collect()
    }

    pub fn field(self, name: &str) -> Option<Ty> {
        self.fields().iter().find(|(n, _)| *n == name).map(|(_, field)| match field {
            Field::String => Ty::String,
            Field::Bool => Ty::Bool,
            Field::Strings => Ty::List(Box::new(Ty::String)),
        })
    }
}

/// The variables every policy expression may use.
pub const VARIABLES: [&str; 3] = ["identity", "request", "custom"];

pub fn variable(name: &str) -> Option<Ty> {
    match name {
        "identity" => Some(Ty::Object(Object::Identity)),
        "request" => Some(Ty::Object(Object::Request)),
        "custom" => Some(Ty::Map(Box::new(Ty::String), Box::new(Ty::Dyn))),
        _ => None,
    }
}

impl Ty {
    pub fn list(element: Ty) -> Ty {
        Ty::List(Box::new(element))
    }

    pub fn is_dyn(&self) -> bool {
        matches!(self, Ty::Dyn)
    }

    /// Whether a value of this type can be where `want` is expected (`dyn` fits anywhere).
    pub fn fits(&self, want: &Ty) -> bool {
        join(self, want).is_some_and(|joined| &joined == want || self.is_dyn() || want.is_dyn())
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double | Ty::Dyn)
    }
}

/// The type both `a` and `b` can be: `dyn` gives way to the other, `null` to any nullable type, a
/// list or map to one with the same shape. `None` when they cannot meet (`string` and `int`).
pub fn join(a: &Ty, b: &Ty) -> Option<Ty> {
    Some(match (a, b) {
        (Ty::Dyn, other) | (other, Ty::Dyn) => other.clone(),
        (Ty::Null, other) | (other, Ty::Null) => other.clone(),
        (Ty::List(x), Ty::List(y)) => Ty::list(join(x, y)?),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => Ty::Map(Box::new(join(k1, k2)?), Box::new(join(v1, v2)?)),
        (Ty::Optional(x), Ty::Optional(y)) => Ty::Optional(Box::new(join(x, y)?)),
        (x, y) if x == y => x.clone(),
        _ => return None,
    })
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Dyn => f.write_str("dyn"),
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::List(element) => write!(f, "list({element})"),
            Ty::Map(key, value) => write!(f, "map({key}, {value})"),
            Ty::Object(object) => f.write_str(object.name()),
            Ty::Optional(inner) => write!(f, "optional({inner})"),
            Ty::Type => f.write_str("type"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dyn_and_null_give_way_and_shapes_must_match() {
        assert_eq!(join(&Ty::Dyn, &Ty::String), Some(Ty::String));
        assert_eq!(join(&Ty::list(Ty::Dyn), &Ty::list(Ty::String)), Some(Ty::list(Ty::String)));
        assert_eq!(join(&Ty::String, &Ty::Int), None);
        assert!(Ty::Dyn.fits(&Ty::Bool));
        assert!(!Ty::String.fits(&Ty::Bool));
        assert_eq!(Ty::Map(Box::new(Ty::String), Box::new(Ty::Dyn)).to_string(), "map(string, dyn)");
    }
}

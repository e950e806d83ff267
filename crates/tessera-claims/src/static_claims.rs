//! The static enricher: the same JSON object for every token (`DEX_CUSTOM_CLAIMS_STATIC`).

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::reserved::{Guard, ReservedError};
use crate::{ClaimsEnricher, EnrichError, EnrichmentContext};

#[derive(Debug, Clone)]
pub struct StaticEnricher {
    claims: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object, found {0}")]
    NotAnObject(&'static str),
    #[error(transparent)]
    Reserved(#[from] ReservedError),
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl StaticEnricher {
    /// From JSON text; anything but an object, or a reserved top-level key, is an error.
    pub fn from_json(text: &str, guard: &Guard) -> Result<Self, StaticError> {
        Self::new(serde_json::from_str(text)?, guard)
    }

    pub fn new(value: Value, guard: &Guard) -> Result<Self, StaticError> {
        let Value::Object(claims) = value else { return Err(StaticError::NotAnObject(kind(&value))) };
        for name in claims.keys() {
            guard.check(name)?;
        }
        Ok(Self { claims })
    }
}

#[async_trait]
impl ClaimsEnricher for StaticEnricher {
    async fn enrich(&self, _context: &EnrichmentContext, claims: &mut Map<String, Value>) -> Result<(), EnrichError> {
        claims.extend(self.claims.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_any_json_object_and_refuses_the_rest() {
        let guard = Guard::default();
        assert!(
            StaticEnricher::from_json(r#"{"policy": {"pgrole": "authn"}, "tags": [1, "two", null]}"#, &guard).is_ok()
        );
        assert!(matches!(StaticEnricher::from_json("{not json", &guard), Err(StaticError::Json(_))));
        assert!(matches!(StaticEnricher::from_json("[1]", &guard), Err(StaticError::NotAnObject("an array"))));
        assert!(matches!(StaticEnricher::from_json(r#"{"sub": "admin"}"#, &guard), Err(StaticError::Reserved(_))));
        // Nested keys are the claim's content, not claims: they may be called anything.
        assert!(StaticEnricher::from_json(r#"{"meta": {"sub": "x"}}"#, &guard).is_ok());
    }
}

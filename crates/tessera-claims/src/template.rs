//! The fork's argument templates (`["{{.UserID}}", "{{.Email}}"]`), compiled once at start-up. Only
//! `{{ .Field }}` with a known field is accepted; the rendered text is bound as a query parameter,
//! never spliced into SQL.

use crate::EnrichmentContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    UserID,
    Email,
    Username,
    PreferredUsername,
    EmailVerified,
    Groups,
    ConnectorID,
    ClientID,
}

const FIELDS: [(&str, Field); 8] = [
    ("UserID", Field::UserID),
    ("Email", Field::Email),
    ("Username", Field::Username),
    ("PreferredUsername", Field::PreferredUsername),
    ("EmailVerified", Field::EmailVerified),
    ("Groups", Field::Groups),
    ("ConnectorID", Field::ConnectorID),
    ("ClientID", Field::ClientID),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Field),
}

/// A compiled argument template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// A rendered argument: text, or the user's groups as a `text[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    Text(String),
    TextArray(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed {{{{ in {0:?}")]
    Unclosed(String),
    #[error("{action:?} in {source_text:?} is not a field reference (expected {{{{.Field}}}})")]
    Syntax { source_text: String, action: String },
    #[error("unknown field {field:?} in {source_text:?} (known: {})", FIELDS.map(|(n, _)| n).join(", "))]
    UnknownField { source_text: String, field: String },
    #[error("{{{{.Groups}}}} must be a whole argument on its own (it is bound as text[]), not part of {0:?}")]
    GroupsInText(String),
}

impl Template {
    pub fn compile(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| TemplateError::Unclosed(source.to_owned()))?;
            let action = after[..close].trim();
            let name =
                action.strip_prefix('.').filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()));
            let Some(name) = name else {
                return Err(TemplateError::Syntax { source_text: source.to_owned(), action: action.to_owned() });
            };
            let field = FIELDS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).ok_or_else(|| {
                TemplateError::UnknownField { source_text: source.to_owned(), field: name.to_owned() }
            })?;
            parts.push(Part::Field(field));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let template = Self { source: source.to_owned(), parts };
        if template.parts.len() > 1 && template.parts.contains(&Part::Field(Field::Groups)) {
            return Err(TemplateError::GroupsInText(source.to_owned()));
        }
        Ok(template)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Exactly `{{.Groups}}`: bound as an array.
    pub fn is_array(&self) -> bool {
        self.parts == [Part::Field(Field::Groups)]
    }

    pub fn render(&self, context: &EnrichmentContext) -> Argument {
        if self.is_array() {
            return Argument::TextArray(context.identity.groups.clone());
        }
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(literal) => text.push_str(literal),
                Part::Field(field) => text.push_str(&match field {
                    Field::UserID => context.identity.user_id.clone(),
                    Field::Email => context.identity.email.clone(),
                    Field::Username => context.identity.username.clone(),
                    Field::PreferredUsername => context.identity.preferred_username.clone(),
                    Field::EmailVerified => context.identity.email_verified.to_string(),
                    Field::ConnectorID => context.connector_id.clone(),
                    Field::ClientID => context.client_id.clone(),
                    Field::Groups => context.identity.groups.join(","),
                }),
            }
        }
        Argument::Text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::model::Claims;

    fn context() -> EnrichmentContext {
        EnrichmentContext {
            identity: Claims {
                user_id: "u1".into(),
                email: "' OR 1=1 --".into(),
                groups: vec!["a".into(), "b".into()],
                email_verified: true,
                ..Claims::default()
            },
            connector_id: "ldap".into(),
            client_id: "web".into(),
            ..EnrichmentContext::default()
        }
    }

    #[test]
    fn fields_render_as_plain_text() {
        assert_eq!(Template::compile("{{.UserID}}").unwrap().render(&context()), Argument::Text("u1".into()));
        assert_eq!(Template::compile("{{ .Email }}").unwrap().render(&context()), Argument::Text("' OR 1=1 --".into()));
        let mixed = Template::compile("{{.ConnectorID}}:{{.UserID}}/{{.ClientID}} {{.EmailVerified}}").unwrap();
        assert_eq!(mixed.render(&context()), Argument::Text("ldap:u1/web true".into()));
        assert_eq!(Template::compile("literal").unwrap().render(&context()), Argument::Text("literal".into()));
        let groups = Template::compile("{{.Groups}}").unwrap();
        assert!(groups.is_array());
        assert_eq!(groups.render(&context()), Argument::TextArray(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn mistakes_are_caught_at_compile_time() {
        assert!(matches!(Template::compile("{{.UserId}}"), Err(TemplateError::UnknownField { .. })));
        assert!(matches!(Template::compile("{{.UserID"), Err(TemplateError::Unclosed(_))));
        assert!(matches!(Template::compile("{{UserID}}"), Err(TemplateError::Syntax { .. })));
        assert!(matches!(Template::compile("{{.Email | printf}}"), Err(TemplateError::Syntax { .. })));
        assert!(matches!(Template::compile("{{ }}"), Err(TemplateError::Syntax { .. })));
        assert_eq!(Template::compile("x{{.Groups}}"), Err(TemplateError::GroupsInText("x{{.Groups}}".into())));
        let err = Template::compile("{{.Role}}").unwrap_err().to_string();
        assert!(err.contains("unknown field \"Role\"") && err.contains("UserID, Email"), "{err}");
    }
}

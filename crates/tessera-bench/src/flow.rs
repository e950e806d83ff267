//! The authorization-code flow as a browser walks it (the `/auth` redirect, the password page, the
//! redirect back with a code, the code redeemed at `/token`) and the refresh grant, against a running
//! tessera. Every step is a real HTTP request; redirects are followed by hand so the app's redirect
//! URI is never fetched.

use anyhow::{Context, bail};
use reqwest::{StatusCode, Url};
use serde_json::Value;

/// A relying party of the server under test.
#[derive(Debug, Clone)]
pub struct App {
    /// The issuer, e.g. `http://127.0.0.1:5556/dex`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

/// What `/token` answered.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

/// One browser (and the app's back channel): an HTTP client that keeps its connection open.
pub struct Browser {
    http: reqwest::Client,
    app: App,
}

impl Browser {
    pub fn new(app: App) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build()?;
        Ok(Self { http, app })
    }

    /// Logs `login` in with `password` through the pages and redeems the code.
    pub async fn log_in(&self, login: &str, password: &str, scope: &str) -> anyhow::Result<Tokens> {
        let mut auth = Url::parse(&format!("{}/auth", self.app.issuer))?;
        auth.query_pairs_mut()
            .append_pair("client_id", &self.app.client_id)
            .append_pair("redirect_uri", &self.app.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", "bench-state");
        let (page_url, page) = self.follow_to_page(auth).await?;
        let form = Form::parse(&page).context("the login page has no form")?;
        let mut fields = form.hidden;
        fields.push(("login".into(), login.into()));
        fields.push(("password".into(), password.into()));
        let action = page_url.join(&form.action)?;
        let response = self.http.post(action.clone()).form(&fields).send().await?;
        let callback = self.follow_to_app(action, response).await?;
        let code = callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .with_context(|| format!("no code in {callback}"))?;
        self.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", &self.app.redirect_uri)])
            .await
    }

    /// The refresh grant: the new token set (with the rotated refresh token).
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<Tokens> {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    async fn token(&self, form: &[(&str, &str)]) -> anyhow::Result<Tokens> {
        let response = self
            .http
            .post(format!("{}/token", self.app.issuer))
            .basic_auth(&self.app.client_id, Some(&self.app.client_secret))
            .form(form)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if status != StatusCode::OK {
            bail!("/token answered {status}: {body}");
        }
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Tokens {
            access_token: field("access_token").context("no access_token")?,
            refresh_token: field("refresh_token"),
        })
    }

    /// GETs `url` and follows redirects until a page answers 200: its URL and body.
    async fn follow_to_page(&self, mut url: Url) -> anyhow::Result<(Url, String)> {
        for _ in 0..10 {
            let response = self.http.get(url.clone()).send().await?;
            match redirect_target(&url, &response)? {
                Some(next) => url = next,
                None if response.status() == StatusCode::OK => return Ok((url, response.text().await?)),
                None => bail!("{url} answered {}", response.status()),
            }
        }
        bail!("too many redirects")
    }

    /// Follows the redirects after a form post until one leads to the app's redirect URI.
    async fn follow_to_app(&self, mut url: Url, mut response: reqwest::Response) -> anyhow::Result<Url> {
        for _ in 0..10 {
            let next = redirect_target(&url, &response)?
                .with_context(|| format!("{url} answered {} instead of a redirect", response.status()))?;
            if next.as_str().starts_with(&self.app.redirect_uri) {
                return Ok(next);
            }
            response = self.http.get(next.clone()).send().await?;
            url = next;
        }
        bail!("too many redirects")
    }
}

fn redirect_target(url: &Url, response: &reqwest::Response) -> anyhow::Result<Option<Url>> {
    if !response.status().is_redirection() {
        return Ok(None);
    }
    let location = response.headers().get("location").context("redirect without a Location")?.to_str()?;
    Ok(Some(url.join(location)?))
}

/// The first form of a page: its action and its hidden fields.
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
}

impl Form {
    fn parse(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let form = &html[start..start + html[start..].find("</form>")?];
        let action = attribute(&form[..form.find('>')?], "action")?;
        let hidden = form
            .split("<input")
            .skip(1)
            .filter_map(|tag| tag.split('>').next())
            .filter(|tag| attribute(tag, "type").as_deref() == Some("hidden"))
            .filter_map(|tag| Some((attribute(tag, "name")?, attribute(tag, "value").unwrap_or_default())))
            .collect();
        Some(Self { action, hidden })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let value = &tag[start..start + tag[start..].find('"')?];
    // The entities the page templates escape attribute values with.
    Some(
        value
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_gives_its_action_and_hidden_fields() {
        let html = r#"<p><form method="post" action="&#x2f;dex&#x2f;auth&#x2f;local&#x2f;login?back=&amp;state=x">
            <input type="hidden" name="req" value="abc">
            <input id="login" name="login" type="text" required>
            </form>"#;
        let form = Form::parse(html).unwrap();
        assert_eq!(form.action, "/dex/auth/local/login?back=&state=x");
        assert_eq!(form.hidden, vec![("req".to_owned(), "abc".to_owned())]);
    }
}

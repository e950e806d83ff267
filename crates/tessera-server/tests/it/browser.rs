//! A scripted browser: an HTTP client with a cookie store that follows redirects by hand (so tests
//! see every hop) and fills in the forms it finds in the pages.

use std::collections::BTreeMap;

pub use crate::login::link;

use reqwest::StatusCode;

pub struct Browser {
    pub http: reqwest::Client,
    /// The cookie store, for tests that read or change what the browser keeps.
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    /// Where the app's redirect URIs start: the browser stops there instead of fetching them.
    pub app: String,
}

/// A page or redirect the browser ended on.
#[derive(Debug)]
pub struct Landing {
    pub status: StatusCode,
    pub url: String,
    pub location: Option<String>,
    pub body: String,
    /// The `Set-Cookie` headers of this response.
    pub set_cookies: Vec<String>,
}

impl Browser {
    pub fn new(app: &str) -> Self {
        Self::with_headers(app, &[])
    }

    /// A browser behind a proxy that adds `headers` to every request.
    pub fn with_headers(app: &str, headers: &[(&str, &str)]) -> Self {
        Self::with_jar(app, headers, std::sync::Arc::new(reqwest::cookie::Jar::default()))
    }

    /// This browser's cookies, sent with other `headers` (a browser upgraded to a new user agent).
    pub fn same_cookies(&self, headers: &[(&str, &str)]) -> Self {
        Self::with_jar(&self.app, headers, self.jar.clone())
    }

    fn with_jar(app: &str, headers: &[(&str, &str)], jar: std::sync::Arc<reqwest::cookie::Jar>) -> Self {
        let mut defaults = reqwest::header::HeaderMap::new();
        for (name, value) in headers {
            defaults.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            );
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .default_headers(defaults)
            .build()
            .unwrap();
        Self { http, jar, app: app.to_owned() }
    }

    async fn land(&self, url: &str, response: reqwest::Response) -> Landing {
        let status = response.status();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let location = location.map(|l| resolve(url, &l));
        let set_cookies =
            response.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_owned()).collect();
        Landing { status, url: url.to_owned(), location, body: response.text().await.unwrap(), set_cookies }
    }

    pub async fn get(&self, url: &str) -> Landing {
        let response = self.http.get(url).send().await.unwrap();
        self.land(url, response).await
    }

    pub async fn post(&self, url: &str, fields: &[(String, String)]) -> Landing {
        let response = self.http.post(url).form(fields).send().await.unwrap();
        self.land(url, response).await
    }

    /// Follows redirects from `landing` until a page, or a redirect to the app.
    pub async fn follow(&self, mut landing: Landing) -> Landing {
        for _ in 0..20 {
            match &landing.location {
                Some(next) if landing.status.is_redirection() && !next.starts_with(&self.app) => {
                    landing = self.get(&next.clone()).await;
                }
                _ => return landing,
            }
        }
        panic!("too many redirects");
    }

    /// Submits the page's form with `fields` filled in (and a named submit button, if given).
    pub async fn submit(&self, page: &Landing, fields: &[(&str, &str)], button: Option<(&str, &str)>) -> Landing {
        let form = Form::parse(&page.body).unwrap_or_else(|| panic!("no form on the page:\n{}", page.body));
        let mut values = form.hidden;
        for (name, value) in fields {
            assert!(form.inputs.contains(&(*name).to_owned()), "the form has no field {name:?}: {:?}", form.inputs);
            values.insert((*name).to_owned(), (*value).to_owned());
        }
        if let Some((name, value)) = button {
            values.insert(name.to_owned(), value.to_owned());
        }
        let fields: Vec<(String, String)> = values.into_iter().collect();
        let landing = self.post(&resolve(&page.url, &form.action), &fields).await;
        self.follow(landing).await
    }
}

/// The first form of a page: its action, its hidden fields and the names of its other inputs.
pub struct Form {
    pub action: String,
    pub hidden: BTreeMap<String, String>,
    pub inputs: Vec<String>,
}

impl Form {
    pub fn parse(html: &str) -> Option<Self> {
        let start = html.find("<form")?;
        let end = html[start..].find("</form>")? + start;
        let form = &html[start..end];
        let action = attribute(&form[..form.find('>')?], "action").unwrap_or_default();
        let mut hidden = BTreeMap::new();
        let mut inputs = Vec::new();
        let mut rest = form;
        while let Some(at) = rest.find("<input") {
            let tag_end = rest[at..].find('>')? + at;
            let tag = &rest[at..tag_end];
            if let Some(name) = attribute(tag, "name") {
                if attribute(tag, "type").as_deref() == Some("hidden") {
                    hidden.insert(name, attribute(tag, "value").unwrap_or_default());
                } else {
                    inputs.push(name);
                }
            }
            rest = &rest[tag_end..];
        }
        Some(Self { action, hidden, inputs })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The HTML entities the template engine escapes attribute values with.
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An absolute URL for `location` as seen from `base`.
pub fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base).unwrap().join(location).unwrap().to_string()
}

/// The query (or fragment) parameters of a URL.
pub fn params(url: &str, fragment: bool) -> BTreeMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    let text = if fragment { url.fragment().unwrap_or("").to_owned() } else { url.query().unwrap_or("").to_owned() };
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

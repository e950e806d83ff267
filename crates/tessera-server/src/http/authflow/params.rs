//! Request parameters as Dex reads them (`r.Form`): the query string, then a form body; the first
//! value of a name wins.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri, header};

#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn from_query(uri: &Uri) -> Self {
        Self::parse(uri.query().unwrap_or("").as_bytes())
    }

    /// Query and, for a POST with a form body, the body's fields after them.
    pub fn from_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut params = Self::from_query(uri);
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            params.pairs.extend(Self::parse(body).pairs);
        }
        params
    }

    fn parse(bytes: &[u8]) -> Self {
        Self { pairs: url::form_urlencoded::parse(bytes).into_owned().collect() }
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// The parameters re-encoded as a query string, without `excluded`.
    pub fn query_without(&self, excluded: &str) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.pairs.iter().filter(|(k, _)| k != excluded) {
            out.append_pair(k, v);
        }
        out.finish()
    }
}

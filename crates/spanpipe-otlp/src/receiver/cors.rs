//! `protocols.http.cors`: Cross-Origin Resource Sharing for browser clients, as the OTel Collector's `confighttp`
//! does it (Go's `rs/cors` with credentials allowed): a preflight `OPTIONS` is answered (204) before
//! authentication, and responses to an allowed origin carry `Access-Control-Allow-Origin` (the origin itself),
//! `Access-Control-Allow-Credentials` and `Vary: Origin`. Off unless `allowed_origins` lists something.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, HeaderValue, ORIGIN, VARY,
};
use http::{Method, Response, StatusCode};
use serde::Deserialize;

/// `protocols.http.cors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send requests: exact (`https://app.example.com`), `*` for any, or with one `*`
    /// wildcard (`https://*.example.com`). Empty: CORS is off.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed besides `Accept`, `Accept-Language`, `Content-Type` and `Content-Language`
    /// (and `X-Requested-With` when the list is empty); `*` allows any.
    pub allowed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer (`Access-Control-Max-Age`); `0`: not sent.
    pub max_age: u32,
}

/// Methods a preflight may ask for (`rs/cors`' default).
const METHODS: [Method; 3] = [Method::GET, Method::POST, Method::HEAD];
const IMPLICIT_HEADERS: [&str; 4] = [
    "accept",
    "accept-language",
    "content-type",
    "content-language",
];

/// An allowed origin: exact, or a prefix and suffix around one `*`.
#[derive(Clone, Debug)]
enum Pattern {
    Exact(String),
    Wildcard(String, String),
}

/// The checked settings a server uses per request.
#[derive(Clone, Debug)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<Pattern>,
    any_header: bool,
    headers: Vec<String>,
    max_age: u32,
}

impl Cors {
    /// `None` when CORS is off; an error (the offending origin) for a pattern with more than one `*`.
    pub fn new(cfg: &CorsConfig) -> Result<Option<Cors>, String> {
        if cfg.allowed_origins.is_empty() {
            return Ok(None);
        }
        let mut cors = Cors {
            any_origin: false,
            origins: Vec::new(),
            any_header: false,
            headers: IMPLICIT_HEADERS.iter().map(|h| h.to_string()).collect(),
            max_age: cfg.max_age,
        };
        for o in &cfg.allowed_origins {
            let o = o.trim().to_ascii_lowercase();
            match o.matches('*').count() {
                _ if o == "*" => cors.any_origin = true,
                0 => cors.origins.push(Pattern::Exact(o)),
                1 => {
                    let (pre, post) = o.split_once('*').unwrap_or((&o, ""));
                    cors.origins
                        .push(Pattern::Wildcard(pre.to_string(), post.to_string()));
                }
                _ => return Err(format!("{o:?} has more than one `*`")),
            }
        }
        if cfg.allowed_headers.is_empty() {
            cors.headers.push("x-requested-with".into());
        }
        for h in &cfg.allowed_headers {
            let h = h.trim().to_ascii_lowercase();
            if h == "*" {
                cors.any_header = true;
            } else {
                cors.headers.push(h);
            }
        }
        Ok(Some(cors))
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.any_origin
            || self.origins.iter().any(|p| match p {
                Pattern::Exact(o) => *o == origin,
                Pattern::Wildcard(pre, post) => {
                    origin.len() >= pre.len() + post.len()
                        && origin.starts_with(pre.as_str())
                        && origin.ends_with(post.as_str())
                }
            })
    }

    /// The request's `Origin` when it is allowed (the value to echo in `Access-Control-Allow-Origin`).
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(ORIGIN)?;
        self.origin_allowed(origin.to_str().ok()?)
            .then(|| origin.clone())
    }

    /// Whether this is a preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(ORIGIN)
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// The answer to a preflight: 204, with the `Access-Control-Allow-*` headers only when the origin, the method
    /// and every requested header are allowed.
    pub fn preflight<B: Default>(&self, headers: &HeaderMap) -> Response<B> {
        let mut r = Response::new(B::default());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        for v in [
            "Origin",
            "Access-Control-Request-Method",
            "Access-Control-Request-Headers",
        ] {
            h.append(VARY, HeaderValue::from_static(v));
        }
        let Some(origin) = self.allowed_origin(headers) else {
            return r;
        };
        let method = headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .map(|m| m.trim().to_ascii_uppercase())
            .unwrap_or_default();
        if !METHODS.iter().any(|m| m.as_str() == method) {
            return r;
        }
        let requested: Vec<String> = headers
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if !self.any_header && !requested.iter().all(|q| self.headers.contains(q)) {
            return r;
        }
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Ok(v) = HeaderValue::from_str(&method) {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !requested.is_empty()
            && let Ok(v) = HeaderValue::from_str(&requested.join(", "))
        {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        if self.max_age > 0 {
            h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age));
        }
        r
    }

    /// Adds the headers an actual request's response carries; `origin` from [`Cors::allowed_origin`].
    pub fn decorate<B>(&self, origin: Option<HeaderValue>, r: &mut Response<B>) {
        let h = r.headers_mut();
        h.append(VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], headers: &[&str], max_age: u32) -> Cors {
        let cfg = CorsConfig {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            max_age,
        };
        Cors::new(&cfg).unwrap().unwrap()
    }

    fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origins_exact_wildcard_and_any() {
        let c = cors(&["https://app.example.com", "http://*.local:3000"], &[], 0);
        assert!(c.origin_allowed("https://app.example.com"));
        assert!(c.origin_allowed("HTTPS://APP.example.com"));
        assert!(c.origin_allowed("http://ui.local:3000"));
        assert!(!c.origin_allowed("http://ui.local:3001"));
        assert!(!c.origin_allowed("https://evil.com"));
        assert!(cors(&["*"], &[], 0).origin_allowed("https://anything"));
        assert!(cors(&["https://*"], &[], 0).origin_allowed("https://x.y"));
        assert!(Cors::new(&CorsConfig::default()).unwrap().is_none());
        let two = CorsConfig {
            allowed_origins: vec!["http://*.*".into()],
            ..Default::default()
        };
        assert!(Cors::new(&two).is_err());
    }

    #[test]
    fn preflight_allows_only_what_is_configured() {
        let c = cors(&["https://app.example.com"], &["X-Custom"], 600);
        let ok = req(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-custom"),
        ]);
        let r: Response<()> = c.preflight(&ok);
        assert_eq!(r.status(), 204);
        let h = r.headers();
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-custom");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        for bad in [
            req(&[
                ("origin", "https://evil.com"),
                ("access-control-request-method", "POST"),
            ]),
            req(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE"),
            ]),
            req(&[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-other"),
            ]),
        ] {
            let r: Response<()> = c.preflight(&bad);
            assert_eq!(r.status(), 204);
            assert!(!r.headers().contains_key(ACCESS_CONTROL_ALLOW_ORIGIN));
        }
        let any = cors(&["*"], &["*"], 0);
        let r: Response<()> = any.preflight(&req(&[
            ("origin", "https://x"),
            ("access-control-request-method", "post"),
            ("access-control-request-headers", "x-anything"),
        ]));
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "https://x");
        assert!(!r.headers().contains_key(ACCESS_CONTROL_MAX_AGE));
    }
}

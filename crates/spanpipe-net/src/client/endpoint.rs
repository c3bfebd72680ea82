//! Endpoint and header checks shared by every exporter, done at build time so a typo is a config error with file
//! and line rather than a failed export.

use std::collections::BTreeMap;

use spanpipe_config::Secret;

/// Where a gRPC exporter connects, after applying the OTel Collector's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcTarget {
    /// `http://host:port` or `https://host:port`.
    pub uri: String,
    pub tls: bool,
}

/// Resolves a gRPC `endpoint`: `host:port` means TLS unless `insecure` (as the OTel Collector), while an explicit
/// `http://` or `https://` scheme decides by itself.
pub fn grpc_target(endpoint: &str, insecure: bool) -> Result<GrpcTarget, String> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err("is required (host:port, or a http:// or https:// URL)".into());
    }
    let (uri, tls) = if let Some(rest) = endpoint.strip_prefix("https://") {
        (format!("https://{rest}"), true)
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        (format!("http://{rest}"), false)
    } else if endpoint.contains("://") {
        return Err(format!(
            "{endpoint:?}: only http:// and https:// schemes are supported"
        ));
    } else {
        let scheme = if insecure { "http" } else { "https" };
        (format!("{scheme}://{endpoint}"), !insecure)
    };
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a valid endpoint: {e}"))?;
    let host = parsed.host().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{endpoint:?} has no host"));
    }
    if !endpoint.contains("://") && parsed.port_u16().is_none() {
        return Err(format!("{endpoint:?} needs a port (host:port)"));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(format!("{endpoint:?}: a gRPC endpoint cannot have a path"));
    }
    Ok(GrpcTarget { uri, tls })
}

/// Checks that `url` is an absolute http(s) URL with a host.
pub fn check_http_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?}: the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(parsed)
}

/// Validates `headers` as HTTP header names and values; the error names the offending header.
pub fn http_headers(
    headers: &BTreeMap<String, Secret>,
) -> Result<http::HeaderMap, (String, String)> {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| (k.clone(), format!("{k:?} is not a valid header name")))?;
        let mut value = http::HeaderValue::from_str(v.expose()).map_err(|_| {
            (
                k.clone(),
                format!("the value of {k:?} is not a valid header value"),
            )
        })?;
        // Configured headers carry credentials: keep them out of client-side logs and HPACK tables.
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_host_port_follows_insecure_and_schemes_decide_alone() {
        let t = grpc_target("collector:4317", false).unwrap();
        assert_eq!((t.uri.as_str(), t.tls), ("https://collector:4317", true));
        let t = grpc_target("collector:4317", true).unwrap();
        assert_eq!((t.uri.as_str(), t.tls), ("http://collector:4317", false));
        let t = grpc_target("http://127.0.0.1:4317", false).unwrap();
        assert!(!t.tls);
        let t = grpc_target("https://otel.example.com", true).unwrap();
        assert!(t.tls);
    }

    #[test]
    fn grpc_rejects_bad_endpoints() {
        assert!(grpc_target("", false).unwrap_err().contains("required"));
        assert!(grpc_target("collector", true).unwrap_err().contains("port"));
        assert!(
            grpc_target("unix:///tmp/s", true)
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            grpc_target("http://h:1/v1/traces", true)
                .unwrap_err()
                .contains("path")
        );
        assert!(grpc_target("http://:4317", true).is_err());
    }

    #[test]
    fn http_urls_are_checked() {
        assert!(check_http_url("ftp://h/x").is_err());
        assert!(check_http_url("not a url").is_err());
        assert!(check_http_url("https://h:4318/v1/traces").is_ok());
    }

    #[test]
    fn headers_are_validated() {
        let mut h = BTreeMap::new();
        h.insert("X-Api-Key".to_string(), Secret::new("secret"));
        let map = http_headers(&h).unwrap();
        assert_eq!(map["x-api-key"], "secret");
        assert!(map["x-api-key"].is_sensitive());
        h.insert("bad header".to_string(), Secret::new("v"));
        assert_eq!(http_headers(&h).unwrap_err().0, "bad header");
        let mut h = BTreeMap::new();
        h.insert("ok".to_string(), Secret::new("line\nbreak"));
        assert!(http_headers(&h).unwrap_err().1.contains("value"));
    }
}

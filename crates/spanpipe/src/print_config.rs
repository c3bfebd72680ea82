//! `spanpipe print-config`: the merged configuration with every credential redacted.
//!
//! Redaction is by type: every component is built from the config (nothing starts), and every value some component
//! read as a [`spanpipe_config::Secret`] is printed as `[REDACTED]`, whatever its key is called. A config that does
//! not build still prints, with the key-name backstop and URL userinfo redaction only.

use spanpipe_config::{CollectorConfig, Node, collect_secret_locations};
use spanpipe_core::Service;

use crate::registry::registry;

/// The YAML `print-config` shows for `node`.
pub fn render(node: &Node) -> String {
    let ((), secrets) = collect_secret_locations(|| {
        if let Ok((cfg, _)) = CollectorConfig::from_node(node) {
            let _ = Service::build(&cfg, &registry());
        }
    });
    node.to_yaml_redacting(&secrets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of credential spanpipe's components accept, each with a value that must never be printed.
    const CONFIG: &str = r#"
extensions:
  bearertokenauth/in:
    tokens: [tok-in-1, tok-in-2]
    header: x-api-token
    scheme: ""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:4318
        auth:
          authenticator: bearertokenauth/in
processors:
  redaction:
    allow_all_keys: true
    hash_function: hmac-sha256
    hmac_key: hmac-key-3
exporters:
  otlp_http/vendor:
    endpoint: https://user:url-pass-4@otlp.example.com:4318
    headers:
      x-api-key: api-key-5
      DD-API-KEY: dd-key-6
      X-Honeycomb-Team: honeycomb-7
      Cookie: cookie-8
      Proxy-Authorization: proxy-9
      space_key: space-10
  otlp/grpc:
    endpoint: 127.0.0.1:4317
    tls:
      insecure: true
    headers:
      api-key: grpc-key-11
  prometheus_remote_write:
    endpoint: http://127.0.0.1:9090/api/v1/write
    headers:
      x-scope-orgid-token: rw-12
  mlflow/token:
    tracking_uri: http://127.0.0.1:5000
    experiment_id: "1"
    token: mlflow-token-13
  mlflow/basic:
    tracking_uri: http://127.0.0.1:5000
    experiment_id: "1"
    username: alice
    password: mlflow-pass-14
connectors:
  mlflow_spanmetrics:
service:
  extensions: [bearertokenauth/in]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [redaction]
      exporters: [otlp_http/vendor, otlp/grpc, mlflow/token, mlflow/basic, mlflow_spanmetrics]
    metrics:
      receivers: [mlflow_spanmetrics]
      exporters: [prometheus_remote_write]
"#;

    #[test]
    fn print_config_prints_no_credential() {
        let node = spanpipe_config::load_str("c.yaml", CONFIG).unwrap();
        let (cfg, _) = CollectorConfig::from_node(&node).unwrap();
        if let Err(e) = Service::build(&cfg, &registry()) {
            panic!("the test config must build, else nothing is typed: {e}");
        }
        let yaml = render(&node);
        let credentials = [
            "tok-in-1",
            "tok-in-2",
            "hmac-key-3",
            "url-pass-4",
            "api-key-5",
            "dd-key-6",
            "honeycomb-7",
            "cookie-8",
            "proxy-9",
            "space-10",
            "grpc-key-11",
            "rw-12",
            "mlflow-token-13",
            "mlflow-pass-14",
        ];
        for c in credentials {
            assert!(CONFIG.contains(c));
            assert!(!yaml.contains(c), "{c} printed:\n{yaml}");
        }
        assert_eq!(yaml.matches("[REDACTED]").count(), 14, "{yaml}");
        // The rest is printed as written.
        assert!(yaml.contains("username: alice"), "{yaml}");
        assert!(yaml.contains("header: x-api-token"), "{yaml}");
        // And re-parses.
        spanpipe_config::load_str("printed.yaml", &yaml).unwrap();
    }
}

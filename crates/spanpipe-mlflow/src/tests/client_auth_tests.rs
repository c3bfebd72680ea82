//! `auth.authenticator`: the extension's header goes on every request (OTLP and experiments API), is asked for
//! per request (a rotated token is used at once), and no credential yet is retryable.

use std::sync::{Arc, Mutex};

use spanpipe_core::auth::{ClientAuth, ClientCredential};
use spanpipe_core::{AuthError, ExportError, Exporter};

use super::data::{batch, one_trace};
use super::fake;
use crate::config::MlflowConfig;
use crate::exporter::MlflowExporter;

/// A token that tests can rotate or take away.
struct Rotating(Mutex<Option<&'static str>>);

impl ClientAuth for Rotating {
    fn credential(&self) -> Result<ClientCredential, AuthError> {
        match *self.0.lock().unwrap() {
            Some(t) => Ok(ClientCredential {
                header: "x-api-key".into(),
                value: format!("Token {t}").into(),
            }),
            None => Err(AuthError("token file /t is empty".into())),
        }
    }
}

#[tokio::test]
async fn the_authenticators_header_is_on_every_request() {
    let (uri, st) = fake::start().await;
    let node = spanpipe_config::load_str(
        "t.yaml",
        &format!("tracking_uri: {uri}\nexperiment_name: agents\nauth: {{authenticator: bearertokenauth}}\n"),
    )
    .unwrap();
    let cfg: MlflowConfig = node.deserialize("exporters.mlflow").unwrap();
    let auth = Arc::new(Rotating(Mutex::new(Some("one"))));
    let e = MlflowExporter::new("mlflow".into(), cfg.validate().unwrap(), Arc::new(|_| None))
        .with_client_auth(auth.clone());
    e.start().await.unwrap();
    e.export(&batch(&one_trace(2))).await.unwrap();
    *auth.0.lock().unwrap() = Some("two");
    e.export(&batch(&one_trace(3))).await.unwrap();
    {
        let s = st.lock().unwrap();
        let keys: Vec<&str> = s
            .seen
            .iter()
            .map(|x| x.headers["x-api-key"].as_str())
            .collect();
        assert!(keys.len() >= 4, "{keys:?}");
        assert_eq!(keys.last(), Some(&"Token two"));
        assert!(
            keys[..keys.len() - 1].iter().all(|k| *k == "Token one"),
            "{keys:?}"
        );
        assert!(
            s.seen
                .iter()
                .all(|x| !x.headers.contains_key("authorization"))
        );
    }
    *auth.0.lock().unwrap() = None;
    let r = e.export(&batch(&one_trace(4))).await;
    let Err(ExportError::Retryable { reason, .. }) = r else {
        panic!("expected retryable, got {r:?}")
    };
    assert!(
        reason.contains("auth.authenticator: token file /t is empty"),
        "{reason}"
    );
}

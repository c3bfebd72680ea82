use std::collections::HashMap;
use std::io::Write;

use spanpipe_config::{ComponentId, load_str};

use super::*;

fn ctx() -> BuildContext {
    BuildContext::new(
        "bearertokenauth".parse::<ComponentId>().unwrap(),
        "extensions.bearertokenauth".into(),
    )
}

fn build(yaml: &str) -> Result<BearerTokenAuth, ConfigError> {
    let node = load_str("test.yaml", yaml).unwrap();
    let cfg: BearerTokenAuthConfig = ctx().config(&node)?;
    config::validate(&cfg, &ctx(), &node)?;
    Ok(BearerTokenAuth::new("bearertokenauth".into(), cfg))
}

fn check(auth: &dyn ServerAuth, headers: &[(&str, &str)]) -> Result<(), AuthError> {
    let map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    auth.authenticate(&|name| map.get(name).map(String::as_str))
}

#[test]
fn token_with_default_scheme() {
    let a = build("token: s3cret\n").unwrap().checker();
    assert!(check(&*a, &[("authorization", "Bearer s3cret")]).is_ok());
    assert!(check(&*a, &[("authorization", "bearer s3cret")]).is_ok());
    let missing = check(&*a, &[]).unwrap_err().0;
    assert!(missing.contains("missing"), "{missing}");
    for bad in [
        "Bearer s3cre",
        "Bearer s3cretX",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        let e = check(&*a, &[("authorization", bad)]).unwrap_err().0;
        assert!(!e.contains("s3cret"), "the error leaks the token: {e}");
    }
}

#[test]
fn tokens_list_custom_scheme_and_header() {
    let a = build("tokens: [a1, b2]\nscheme: Token\nheader: X-Api-Key\n")
        .unwrap()
        .checker();
    assert!(check(&*a, &[("x-api-key", "Token a1")]).is_ok());
    assert!(check(&*a, &[("x-api-key", "Token b2")]).is_ok());
    assert!(check(&*a, &[("x-api-key", "Token c3")]).is_err());
    assert!(check(&*a, &[("authorization", "Token a1")]).is_err());

    let bare = build("token: raw\nscheme: \"\"\n").unwrap().checker();
    assert!(check(&*bare, &[("authorization", "raw")]).is_ok());
    assert!(check(&*bare, &[("authorization", "Bearer raw")]).is_err());
}

#[test]
fn invalid_configs_name_the_key() {
    let cases = [
        ("{}\n", "bearertokenauth"),
        ("token: a\nfilename: /x\n", "filename"),
        ("token: a\ntokens: [b]\n", "only one"),
        ("token: \"\"\n", "token"),
        ("tokens: [a, \" \"]\n", "tokens"),
        ("token: a\nbogus: 1\n", "bogus"),
        ("token: a\nscheme: \"a b\"\n", "scheme"),
    ];
    for (yaml, key) in cases {
        let err = build(yaml).err().expect(yaml).to_string();
        assert!(err.contains(key), "{yaml:?}: {err}");
    }
}

#[tokio::test]
async fn token_file_is_read_at_start_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let ext = build(&format!("filename: {}\n", path.display())).unwrap();
    ext.start().await.unwrap();
    let a = ext.server_auth().unwrap();
    assert!(check(&*a, &[("authorization", "Bearer first")]).is_ok());

    // Rewritten in place with the same length: noticed by content, not by size or mtime.
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(b"secnd\nthird\n").unwrap();
    drop(f);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while check(&*a, &[("authorization", "Bearer secnd")]).is_err() {
        assert!(std::time::Instant::now() < deadline, "reload not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(check(&*a, &[("authorization", "Bearer third")]).is_ok());
    assert!(check(&*a, &[("authorization", "Bearer first")]).is_err());

    // An emptied file keeps the last good tokens.
    std::fs::write(&path, "").unwrap();
    tokio::time::sleep(FILE_CHECK_EVERY * 2).await;
    assert!(check(&*a, &[("authorization", "Bearer secnd")]).is_ok());
    ext.shutdown().await;
}

#[tokio::test]
async fn unreadable_token_file_fails_start_without_leaking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent");
    let ext = build(&format!("filename: {}\n", path.display())).unwrap();
    let err = ext.start().await.unwrap_err().to_string();
    assert!(err.contains("absent"), "{err}");
    std::fs::write(&path, "\n  \n").unwrap();
    let err = ext.start().await.unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn constant_time_eq_is_equality() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    assert!(constant_time_eq(b"", b""));
}

fn sent(ext: &BearerTokenAuth) -> (String, String) {
    let c = ext.client_auth().unwrap().credential().unwrap();
    (c.header, c.value.expose().to_owned())
}

#[test]
fn client_side_sends_scheme_and_token_in_the_header() {
    let ext = build("token: s3cret\n").unwrap();
    assert_eq!(sent(&ext), ("authorization".into(), "Bearer s3cret".into()));
    // What the client sends, the server side of the same configuration accepts.
    let c = ext.client_auth().unwrap().credential().unwrap();
    assert!(check(&*ext.checker(), &[(c.header.as_str(), c.value.expose())]).is_ok());
    assert!(!format!("{}", c.value).contains("s3cret"));

    let ext = build("tokens: [first, second]\nscheme: Token\nheader: X-Api-Key\n").unwrap();
    assert_eq!(sent(&ext), ("x-api-key".into(), "Token first".into()));
    let bare = build("token: raw\nscheme: \"\"\n").unwrap();
    assert_eq!(sent(&bare), ("authorization".into(), "raw".into()));
}

#[tokio::test]
async fn client_side_follows_the_token_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "one\n").unwrap();
    let ext = build(&format!("filename: {}\n", path.display())).unwrap();
    let before_start = ext.client_auth().unwrap().credential();
    assert!(before_start.is_err(), "nothing read before start");
    ext.start().await.unwrap();
    assert_eq!(sent(&ext).1, "Bearer one");
    std::fs::write(&path, "two\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sent(&ext).1 != "Bearer two" {
        assert!(std::time::Instant::now() < deadline, "rotation not seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ext.shutdown().await;
}

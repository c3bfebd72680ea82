//! The documentation cannot drift from the code:
//! - every component type `spanpipe components` prints has `docs/components/<type>.md` (title
//!   `# <type> (<kind>[, <kind>])`), linked from `docs/config-reference.md`;
//! - every ```yaml block under `docs/` (and in README.md) is a complete config that `spanpipe validate` accepts
//!   (YAML for other tools is fenced as ```yaml <tool>, e.g. ```yaml prometheus);
//! - every row of a component's `| option | default | meaning |` table names a key the code accepts: a config
//!   setting that key to the documented default validates (`—`: no default; the key only must be known), and
//!   every key the code accepts at each documented level is in the table (read from the unknown-field error's
//!   list of expected fields).
//!
//! Component types other work in progress adds may be used in examples before they are registered; such blocks
//! are skipped (and reported) until `spanpipe components` lists the type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use spanpipe_e2e::yaml::yaml_to_json;
use spanpipe_e2e::{CmdOutput, run_spanpipe, workspace_root};

/// Types being added by parallel work; an example using one is skipped while the build lacks it.
const PENDING_TYPES: [&str; 9] = [
    "attributes",
    "resource",
    "filter",
    "redaction",
    "probabilistic_sampler",
    "memory_limiter",
    "health_check",
    "bearertokenauth",
    "file_storage",
];

const KINDS: [(&str, &str); 5] = [
    ("receivers", "receiver"),
    ("processors", "processor"),
    ("exporters", "exporter"),
    ("connectors", "connector"),
    ("extensions", "extension"),
];

fn docs_dir() -> PathBuf {
    workspace_root().join("docs")
}

/// `kind` (singular) → types, from `spanpipe components`.
fn components() -> BTreeMap<String, BTreeSet<String>> {
    let out = run_spanpipe(&["components"]);
    assert!(out.status.success(), "components: {}", out.stderr);
    let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut kind = String::new();
    for line in out.stdout.lines() {
        if let Some(t) = line.trim().strip_prefix("- ") {
            map.entry(kind.clone()).or_default().insert(t.to_string());
        } else if let Some(k) = line.trim().strip_suffix(':') {
            kind = KINDS
                .iter()
                .find(|(plural, _)| *plural == k)
                .map(|(_, s)| s.to_string())
                .unwrap_or_else(|| panic!("unknown kind heading {k}"));
        }
    }
    assert!(map.get("receiver").is_some_and(|r| r.contains("otlp")));
    map
}

fn all_types(c: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    c.values().flatten().cloned().collect()
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("entry").path();
        if p.is_dir() {
            markdown_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "md") {
            out.push(p);
        }
    }
}

/// (line number, info string, body) of every fenced block.
fn fenced_blocks(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = t.strip_prefix("```") {
                    open = Some((i + 1, info.trim().to_string(), String::new()));
                }
            }
            Some((_, _, body)) => {
                if t.starts_with("```") {
                    out.push(open.take().expect("open block"));
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "unterminated ``` block");
    out
}

/// Types a config uses (component ids in every kind section), for the pending check.
fn used_types(cfg: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (plural, _) in KINDS {
        if let Some(m) = cfg[plural].as_object() {
            for id in m.keys() {
                out.insert(id.split('/').next().unwrap_or(id).to_string());
            }
        }
    }
    out
}

struct Checked {
    validated: usize,
    skipped: Vec<String>,
}

fn validate_text(name: &str, yaml: &str, extra: &[String]) -> CmdOutput {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).expect("write");
    let mut args = vec![
        "validate".to_string(),
        "--config".to_string(),
        path.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run_spanpipe(&refs)
}

/// Validates a ```yaml block, or records why it was skipped (a pending type).
fn check_block(
    where_: &str,
    body: &str,
    registered: &BTreeSet<String>,
    checked: &mut Checked,
) -> bool {
    let cfg = yaml_to_json(body);
    let missing: Vec<String> = used_types(&cfg)
        .into_iter()
        .filter(|t| !registered.contains(t))
        .collect();
    if !missing.is_empty() {
        for t in &missing {
            assert!(
                PENDING_TYPES.contains(&t.as_str()),
                "{where_}: unknown component type {t}"
            );
        }
        checked
            .skipped
            .push(format!("{where_} (uses {})", missing.join(", ")));
        return false;
    }
    let out = validate_text("block.yaml", body, &[]);
    assert!(
        out.status.success(),
        "{where_}: spanpipe validate rejected the example:\n{}\n{body}",
        out.stderr
    );
    checked.validated += 1;
    true
}

#[test]
fn every_yaml_block_in_the_docs_validates() {
    let registered = all_types(&components());
    let mut files = Vec::new();
    markdown_files(&docs_dir(), &mut files);
    files.push(workspace_root().join("README.md"));
    files.sort();
    let mut checked = Checked {
        validated: 0,
        skipped: Vec::new(),
    };
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        for (line, info, body) in fenced_blocks(&text) {
            if info != "yaml" {
                continue;
            }
            let where_ = format!("{}:{line}", f.display());
            check_block(&where_, &body, &registered, &mut checked);
        }
    }
    assert!(checked.validated >= 20, "only {} blocks", checked.validated);
    if !checked.skipped.is_empty() {
        eprintln!(
            "NOTE skipped until their types are registered: {:#?}",
            checked.skipped
        );
    }
    eprintln!("validated {} yaml blocks", checked.validated);
}

#[test]
fn every_component_has_a_page_linked_from_the_reference() {
    let comps = components();
    let reference = std::fs::read_to_string(docs_dir().join("config-reference.md"))
        .expect("docs/config-reference.md");
    let mut problems = Vec::new();
    for (kind, types) in &comps {
        for t in types {
            let page = docs_dir().join("components").join(format!("{t}.md"));
            let Ok(text) = std::fs::read_to_string(&page) else {
                problems.push(format!("no page {} for {kind} {t}", page.display()));
                continue;
            };
            let title = text.lines().next().unwrap_or_default();
            let kinds = title
                .strip_prefix(&format!("# {t} ("))
                .and_then(|r| r.strip_suffix(')'))
                .map(|k| k.split(", ").collect::<Vec<_>>());
            if !kinds.is_some_and(|k| k.contains(&kind.as_str())) {
                problems.push(format!(
                    "{}: title {title:?} must be `# {t} ({kind})`",
                    page.display()
                ));
            }
            if !reference.contains(&format!("(components/{t}.md)")) {
                problems.push(format!(
                    "config-reference.md does not link components/{t}.md"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// One documented option: key path (dotted) and default (`None` for `—`).
#[derive(Debug)]
struct OptionRow {
    key: String,
    default: Option<String>,
}

/// A page section for one kind: its option rows and its first ```yaml example.
#[derive(Debug)]
struct Section {
    kind: String,
    rows: Vec<OptionRow>,
    example: Option<String>,
}

fn strip_code(s: &str) -> String {
    s.trim().trim_matches('`').to_string()
}

/// Splits a component page into one section per kind (`## <kind>` headings when the title lists several).
fn sections(text: &str) -> Vec<Section> {
    let title = text.lines().next().unwrap_or_default();
    let kinds: Vec<String> = title
        .rsplit_once('(')
        .and_then(|(_, k)| k.strip_suffix(')'))
        .map(|k| k.split(", ").map(str::to_string).collect())
        .unwrap_or_default();
    let mut out: Vec<Section> = Vec::new();
    let mut current = if kinds.len() == 1 {
        Some(Section {
            kind: kinds[0].clone(),
            rows: Vec::new(),
            example: None,
        })
    } else {
        None
    };
    let mut in_table = false;
    let mut in_yaml: Option<String> = None;
    for line in text.lines() {
        if let Some(body) = &mut in_yaml {
            if line.trim_start().starts_with("```") {
                if let Some(s) = current.as_mut()
                    && s.example.is_none()
                {
                    s.example = Some(body.clone());
                }
                in_yaml = None;
            } else {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if line.trim() == "```yaml" {
            in_yaml = Some(String::new());
            continue;
        }
        if let Some(h) = line.strip_prefix("## ")
            && kinds.iter().any(|k| k == h.trim())
        {
            out.extend(current.take());
            current = Some(Section {
                kind: h.trim().to_string(),
                rows: Vec::new(),
                example: None,
            });
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        if line.starts_with('|') && cells.len() >= 4 {
            let first = cells[1].trim();
            if first == "option" && cells[2].trim() == "default" {
                in_table = true;
                continue;
            }
            if in_table && !first.starts_with("---") {
                let key = strip_code(first);
                if key != "—" {
                    let d = strip_code(cells[2]);
                    let row = OptionRow {
                        key,
                        default: (d != "—").then_some(d),
                    };
                    current
                        .as_mut()
                        .expect("an option table outside a kind section")
                        .rows
                        .push(row);
                }
            }
        } else {
            in_table = false;
        }
    }
    out.extend(current);
    out
}

/// The id of the first component of `type_` in the example's `<kind>s` section.
fn component_id(example: &Value, plural: &str, type_: &str) -> Option<String> {
    example[plural]
        .as_object()?
        .keys()
        .find(|id| id.as_str() == type_ || id.starts_with(&format!("{type_}/")))
        .cloned()
}

/// Field names listed by serde's unknown-field error (`expected one of `a`, `b``, `expected `a` or `b``).
fn expected_fields(stderr: &str) -> Option<BTreeSet<String>> {
    let line = stderr.lines().find(|l| l.contains("unknown field"))?;
    let (_, rest) = line.split_once("expected")?;
    Some(
        rest.split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect(),
    )
}

fn set_arg(plural: &str, id: &str, key: &str, value: &str) -> Vec<String> {
    let path: Vec<&str> = std::iter::once(plural)
        .chain(std::iter::once(id))
        .chain(key.split('.'))
        .collect();
    vec!["--set".into(), format!("{}={value}", path.join("::"))]
}

#[test]
fn every_documented_option_exists_with_its_default_and_none_is_missing() {
    let comps = components();
    let registered = all_types(&comps);
    let mut problems = Vec::new();
    let mut rows_checked = 0;
    let mut skipped = Vec::new();
    for (kind, types) in &comps {
        let plural = KINDS
            .iter()
            .find(|(_, s)| *s == kind.as_str())
            .map(|(p, _)| *p)
            .expect("kind");
        for t in types {
            let page = docs_dir().join("components").join(format!("{t}.md"));
            let Ok(text) = std::fs::read_to_string(&page) else {
                continue; // reported by every_component_has_a_page_linked_from_the_reference
            };
            let Some(section) = sections(&text).into_iter().find(|s| s.kind == *kind) else {
                problems.push(format!("{}: no section for {kind}", page.display()));
                continue;
            };
            let Some(example) = section.example.as_deref() else {
                problems.push(format!("{}: no ```yaml example for {kind}", page.display()));
                continue;
            };
            let example_json = yaml_to_json(example);
            if used_types(&example_json)
                .iter()
                .any(|u| !registered.contains(u))
            {
                skipped.push(format!("{t} ({kind}): example uses a pending type"));
                continue;
            }
            let Some(id) = component_id(&example_json, plural, t) else {
                problems.push(format!(
                    "{}: the {kind} example does not use {t}",
                    page.display()
                ));
                continue;
            };
            if section.rows.is_empty() {
                if !text.contains("Alias of") && !text.contains("no options") {
                    problems.push(format!("{}: no option table", page.display()));
                }
                // No options (or an alias): an unknown key must be refused, so the page is right to list none.
                if text.contains("no options") {
                    let out = validate_text(
                        "page.yaml",
                        example,
                        &set_arg(plural, &id, "zz_unknown", "1"),
                    );
                    if out.status.success() {
                        problems.push(format!(
                            "{t}: accepts unknown keys but documents no options"
                        ));
                    }
                }
                continue;
            }
            // 1. Each row: the key exists; the default is accepted.
            for row in &section.rows {
                rows_checked += 1;
                let value = row.default.clone().unwrap_or_default();
                let out = validate_text(
                    "page.yaml",
                    example,
                    &set_arg(plural, &id, &row.key, &value),
                );
                let unknown = out.stderr.contains("unknown field");
                match (&row.default, out.status.success()) {
                    (Some(_), true) => {}
                    (None, _) if !unknown => {}
                    _ => problems.push(format!(
                        "{t} ({kind}) `{}` = {:?}: {}",
                        row.key,
                        row.default,
                        out.stderr.trim()
                    )),
                }
            }
            // 2. Every key the code accepts at each documented level is documented.
            let keys: BTreeSet<&str> = section.rows.iter().map(|r| r.key.as_str()).collect();
            let mut levels: BTreeSet<String> = BTreeSet::from([String::new()]);
            for k in &keys {
                let parts: Vec<&str> = k.split('.').collect();
                for n in 1..parts.len() {
                    levels.insert(parts[..n].join("."));
                }
            }
            for level in &levels {
                let probe = if level.is_empty() {
                    "zz_unknown".to_string()
                } else {
                    format!("{level}.zz_unknown")
                };
                let out = validate_text("page.yaml", example, &set_arg(plural, &id, &probe, "1"));
                // A level the code does not know at all is reported by its rows; only probe known levels.
                let full_probe = format!("{plural}.{id}.{probe}");
                if !out.stderr.contains(&format!("{full_probe}: unknown field")) {
                    if level.is_empty() {
                        problems.push(format!(
                            "{t} ({kind}): `{probe}` was not refused as an unknown field: {}",
                            out.stderr.trim()
                        ));
                    }
                    continue;
                }
                let Some(fields) = expected_fields(&out.stderr) else {
                    problems.push(format!(
                        "{t} ({kind}): `{probe}` was not refused as an unknown field: {}",
                        out.stderr.trim()
                    ));
                    continue;
                };
                for f in fields {
                    let full = if level.is_empty() {
                        f.clone()
                    } else {
                        format!("{level}.{f}")
                    };
                    let documented = keys.contains(full.as_str())
                        || keys.iter().any(|k| k.starts_with(&format!("{full}.")));
                    if !documented {
                        problems.push(format!("{t} ({kind}): option `{full}` is not documented"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        rows_checked >= 50,
        "only {rows_checked} option rows checked"
    );
    if !skipped.is_empty() {
        eprintln!("NOTE {skipped:#?}");
    }
    eprintln!("checked {rows_checked} documented options");
}

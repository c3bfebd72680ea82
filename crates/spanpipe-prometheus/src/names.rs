//! OTLP names to Prometheus names, following the OpenTelemetry-to-Prometheus compatibility specification as the
//! Go collector implements it (`prometheus/otlptranslator`, `UnderscoreEscapingWithSuffixes`), and Go's float
//! formatting, which Prometheus' own text format uses.

/// The Prometheus metric type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// UCUM units to the words Prometheus names use.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The "per" part of `x/y` units.
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn map_unit<'a>(table: &[(&str, &'a str)], unit: &'a str) -> &'a str {
    table
        .iter()
        .find(|(k, _)| *k == unit)
        .map_or(unit, |(_, v)| *v)
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// Main and `per_` suffixes of a unit (`By/s` → `bytes`, `per_second`); braces mean an annotation, not a unit.
fn unit_suffixes(unit: &str) -> (String, String) {
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit.trim(), None),
    };
    let usable = |u: &str| !u.is_empty() && !u.contains(['{', '}']);
    let main = if usable(main) {
        clean_unit(map_unit(UNITS, main))
    } else {
        String::new()
    };
    let per = match per {
        Some(p) if usable(p) => format!("per_{}", clean_unit(map_unit(PER_UNITS, p))),
        _ => String::new(),
    };
    (main, per)
}

/// Invalid characters to `_`, runs of `_` collapsed, no leading `_`.
fn clean_unit(u: &str) -> String {
    let mut out = String::with_capacity(u.len());
    for c in u.chars() {
        let c = if is_metric_char(c) { c } else { '_' };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    out
}

/// The Prometheus name of an OTLP metric; `None` when nothing usable is left.
///
/// With suffixes (the default): the name split on every character that is not `[a-zA-Z0-9:]` and re-joined with
/// `_`, the unit appended unless already a token (`ms` → `_milliseconds`), `_total` for counters, `_ratio` for
/// gauges of unit `1`, the namespace in front, `_` before a leading digit.
pub fn metric_name(
    name: &str,
    unit: &str,
    kind: Kind,
    namespace: &str,
    suffixes: bool,
) -> Option<String> {
    let mut tokens: Vec<String> = if suffixes {
        name.split(|c| !is_metric_char(c))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    } else {
        name.split(|c| !is_metric_char(c) && c != '_')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    if suffixes {
        let (main, per) = unit_suffixes(unit);
        let per = per.trim_end_matches('_');
        let per = if per == "per" || tokens.iter().any(|t| t == per) {
            ""
        } else {
            per
        };
        let main = if tokens.contains(&main) {
            ""
        } else if per.is_empty() {
            main.as_str()
        } else {
            main.trim_end_matches('_')
        };
        for s in [main, per] {
            if !s.is_empty() {
                tokens.push(s.to_string());
            }
        }
        if kind == Kind::Counter {
            tokens.retain(|t| t != "total");
            tokens.push("total".into());
        }
        if unit == "1" && kind == Kind::Gauge {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".into());
        }
    }
    let ns = clean_unit(namespace);
    if !ns.is_empty() {
        tokens.insert(0, ns);
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    (!out.is_empty() && out.chars().any(|c| c != '_')).then_some(out)
}

/// The Prometheus name of an attribute: invalid characters (anything but `[a-zA-Z0-9]`, including `_`) become
/// one `_` per run, `key_` goes before a leading digit, `__reserved__` names keep their underscores. `None` for
/// names that end up empty or all underscores.
pub fn label_name(key: &str) -> Option<String> {
    let (reserved, inner) = match key.strip_prefix("__").and_then(|k| k.strip_suffix("__")) {
        Some(inner) if key.len() >= 4 => (true, inner),
        _ => (false, key),
    };
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    if reserved {
        out = format!("__{out}__");
    } else if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    (!out.is_empty() && out.chars().any(|c| c != '_')).then_some(out)
}

/// A float as Go's `strconv.FormatFloat(v, 'g', -1, 64)` writes it (`1e+06`, `0.5`, `10000`), with Prometheus'
/// `+Inf`, `-Inf` and `NaN`.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return v.to_string();
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return v.to_string();
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, unit: &str, kind: Kind) -> String {
        metric_name(n, unit, kind, "", true).unwrap()
    }

    #[test]
    fn metric_names_get_units_and_type_suffixes() {
        assert_eq!(
            name("mlflow.trace.span.duration", "ms", Kind::Histogram),
            "mlflow_trace_span_duration_milliseconds"
        );
        assert_eq!(
            name("http.server.duration", "s", Kind::Histogram),
            "http_server_duration_seconds"
        );
        assert_eq!(name("requests", "1", Kind::Counter), "requests_total");
        assert_eq!(
            name("requests_total", "{request}", Kind::Counter),
            "requests_total"
        );
        assert_eq!(
            name("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            name("net.io", "By/s", Kind::Gauge),
            "net_io_bytes_per_second"
        );
        assert_eq!(name("queue__size", "", Kind::Gauge), "queue_size");
        assert_eq!(
            name("latency.seconds", "s", Kind::Histogram),
            "latency_seconds"
        );
        assert_eq!(name("5xx.count", "", Kind::Gauge), "_5xx_count");
        assert_eq!(name("odd", "fooBar", Kind::Gauge), "odd_fooBar");
        assert_eq!(
            metric_name("a.b", "ms", Kind::Gauge, "spanpipe", true).unwrap(),
            "spanpipe_a_b_milliseconds"
        );
        assert_eq!(
            metric_name("a.b__c", "ms", Kind::Counter, "", false).unwrap(),
            "a_b__c"
        );
        assert!(metric_name("...", "", Kind::Gauge, "", true).is_none());
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(label_name("tags.team").unwrap(), "tags_team");
        assert_eq!(
            label_name("metadata.mlflow.trace_schema.version").unwrap(),
            "metadata_mlflow_trace_schema_version"
        );
        assert_eq!(
            label_name("otel.metric.overflow").unwrap(),
            "otel_metric_overflow"
        );
        assert_eq!(label_name("a..__b").unwrap(), "a_b");
        assert_eq!(label_name("1st").unwrap(), "key_1st");
        assert_eq!(label_name("__name__").unwrap(), "__name__");
        assert_eq!(label_name("_private").unwrap(), "_private");
        assert!(label_name("...").is_none());
        assert!(label_name("").is_none());
    }

    #[test]
    fn floats_format_like_go() {
        for (v, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (10000.0, "10000"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.5, "1.2345675e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
    }
}

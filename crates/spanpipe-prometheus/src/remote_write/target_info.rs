//! `target_info`: the OTel Collector's remote-write exporter sends, per resource, one `target_info` gauge
//! (value 1) whose labels are the resource's attributes other than `service.name`, `service.namespace` and
//! `service.instance.id` (those are `job` and `instance`, on it as on every series), stamped with the newest
//! point of that resource — so resource attributes can be joined in PromQL without being copied to every series.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{Metric, ResourceMetrics, metric::Data};

use crate::names::label_name;
use crate::prompb::TimeSeries;
use crate::translate::{Options, value_text};

const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// Appends the `target_info` series of every resource of `req` that has a point and a non-identifying attribute.
pub fn target_info(req: &ExportMetricsServiceRequest, o: &Options, out: &mut Vec<TimeSeries>) {
    for rm in &req.resource_metrics {
        let Some(newest) = newest_point(rm) else {
            continue;
        };
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let text = |key: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| value_text(kv.value.as_ref()))
                .filter(|v| !v.is_empty())
        };
        let mut labels: Vec<(Arc<str>, String)> = Vec::new();
        for kv in attrs
            .iter()
            .filter(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
        {
            let value = value_text(kv.value.as_ref());
            if let Some(name) = label_name(&kv.key)
                && !value.is_empty()
            {
                match labels.iter_mut().find(|(n, _)| **n == *name) {
                    // Two keys sanitised to one label: values joined with `;`, as the Collector does.
                    Some((_, v)) => {
                        v.push(';');
                        v.push_str(&value);
                    }
                    None => labels.push((Arc::from(name), value)),
                }
            }
        }
        if labels.is_empty() {
            continue;
        }
        if let Some(name) = text("service.name") {
            let job = match text("service.namespace") {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            labels.push((Arc::from("job"), job));
        }
        if let Some(instance) = text("service.instance.id") {
            labels.push((Arc::from("instance"), instance));
        }
        for (k, v) in &o.const_labels {
            if !labels.iter().any(|(n, _)| n == k) {
                labels.push((k.clone(), v.clone()));
            }
        }
        labels.sort();
        let name = if o.namespace.is_empty() {
            "target_info".to_string()
        } else {
            format!("{}_target_info", o.namespace)
        };
        let ts = i64::try_from(newest / 1_000_000).unwrap_or(i64::MAX);
        out.push(super::series(&labels, name, None, 1.0, ts));
    }
}

/// The newest `time_unix_nano` of any point of `rm`.
fn newest_point(rm: &ResourceMetrics) -> Option<u64> {
    rm.scope_metrics
        .iter()
        .flat_map(|sm| &sm.metrics)
        .flat_map(point_times)
        .max()
}

fn point_times(m: &Metric) -> Vec<u64> {
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Sum(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.time_unix_nano).collect(),
        Some(Data::ExponentialHistogram(h)) => {
            h.data_points.iter().map(|p| p.time_unix_nano).collect()
        }
        Some(Data::Summary(s)) => s.data_points.iter().map(|p| p.time_unix_nano).collect(),
        None => Vec::new(),
    }
}

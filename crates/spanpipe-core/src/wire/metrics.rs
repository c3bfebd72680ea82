//! Counting data points in an encoded `ExportMetricsServiceRequest`.

use super::{Reader, WireError, for_each_message};

/// Validates the request's structure down to the data points and returns how many there are (the OTel Collector's
/// unit for metrics: `*_metric_points`).
pub fn count_metric_points(buf: &[u8]) -> Result<usize, WireError> {
    let mut points = 0usize;
    for_each_message(buf, 1, "resource_metrics", |rm| {
        for_each_message(rm, 2, "scope_metrics", |sm| {
            for_each_message(sm, 2, "metric", |metric| {
                let mut r = Reader::new(metric);
                while let Some((n, f)) = r.next_field()? {
                    // gauge 5, sum 7, histogram 9, exponential_histogram 10, summary 11: data_points is field 1.
                    if matches!(n, 5 | 7 | 9 | 10 | 11) {
                        for_each_message(f.bytes("metric data")?, 1, "data_point", |_| {
                            points += 1;
                            Ok(())
                        })?;
                    }
                }
                Ok(())
            })
        })
    })?;
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, metric::Data,
    };
    use prost::Message;

    #[test]
    fn counts_points_of_every_kind() {
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "g".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint::default(); 3],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "h".into(),
                            data: Some(Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint::default(); 2],
                                aggregation_temporality: 2,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(count_metric_points(&req.encode_to_vec()).unwrap(), 5);
        assert!(count_metric_points(b"\x0a\x05\x12").is_err());
    }
}

use super::*;
use crate::wire::test_data::request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

struct DropNamed(&'static [u8]);
impl SpanEditor for DropNamed {
    fn span(&mut self, ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        let v = crate::wire::SpanView::read(ctx.raw, |_, _| {})?;
        Ok(if v.name == self.0 {
            SpanEdit::Drop
        } else {
            SpanEdit::Keep
        })
    }
}

struct Rename;
impl SpanEditor for Rename {
    fn span(&mut self, ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        let mut sp = opentelemetry_proto::tonic::trace::v1::Span::decode(ctx.raw)
            .map_err(|e| WireError::new(e.to_string()))?;
        if sp.name != "span-1" {
            return Ok(SpanEdit::Keep);
        }
        sp.name = "renamed".into();
        Ok(SpanEdit::Replace(sp.encode_to_vec()))
    }
}

struct FillResource;
impl SpanEditor for FillResource {
    fn resource(&mut self, _r: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        Ok(Some(vec![]))
    }
    fn visits_spans(&self) -> bool {
        false
    }
}

#[test]
fn nothing_changed_means_no_copy() {
    let buf = request(2, 3).encode_to_vec();
    assert_eq!(
        rewrite_spans(&buf, &mut DropNamed(b"zzz")).unwrap(),
        Outcome::default()
    );
    assert_eq!(rewrite_fields(&buf, |_, _| Ok(Edit::Keep)).unwrap(), None);
}

#[test]
fn dropping_removes_empty_scopes_and_resources() {
    let req = request(2, 1);
    let buf = req.encode_to_vec();
    let out = rewrite_spans(&buf, &mut DropNamed(b"span-0")).unwrap();
    assert_eq!(out.dropped, 2);
    let got = ExportTraceServiceRequest::decode(out.payload.unwrap().as_slice()).unwrap();
    assert!(got.resource_spans.is_empty());

    let req = request(2, 3);
    let out = rewrite_spans(&req.encode_to_vec(), &mut DropNamed(b"span-0")).unwrap();
    let got = ExportTraceServiceRequest::decode(out.payload.unwrap().as_slice()).unwrap();
    assert_eq!(got.resource_spans.len(), 2);
    assert_eq!(
        got.resource_spans[0].resource,
        req.resource_spans[0].resource
    );
    assert_eq!(
        got.resource_spans[0].schema_url,
        req.resource_spans[0].schema_url
    );
    assert_eq!(got.resource_spans[1].scope_spans[0].spans.len(), 2);
}

#[test]
fn replacing_keeps_the_rest_identical() {
    let buf = request(2, 3).encode_to_vec();
    let out = rewrite_spans(&buf, &mut Rename).unwrap();
    let got = ExportTraceServiceRequest::decode(out.payload.unwrap().as_slice()).unwrap();
    let mut want = ExportTraceServiceRequest::decode(buf.as_slice()).unwrap();
    for rs in &mut want.resource_spans {
        rs.scope_spans[0].spans[1].name = "renamed".into();
    }
    assert_eq!(got, want);
}

#[test]
fn a_missing_resource_can_be_filled() {
    let mut req = request(1, 1);
    req.resource_spans[0].resource = None;
    let out = rewrite_spans(&req.encode_to_vec(), &mut FillResource).unwrap();
    let got = ExportTraceServiceRequest::decode(out.payload.unwrap().as_slice()).unwrap();
    assert!(got.resource_spans[0].resource.is_some());
    assert_eq!(
        got.resource_spans[0].scope_spans,
        req.resource_spans[0].scope_spans
    );
}

#[test]
fn field_edits_and_garbage() {
    let buf = request(1, 2).encode_to_vec();
    let out = rewrite_fields(&buf, |_, _| Ok(Edit::Drop))
        .unwrap()
        .unwrap();
    assert!(out.is_empty());
    for cut in 1..buf.len() {
        let _ = rewrite_spans(&buf[..cut], &mut DropNamed(b"span-0"));
    }
    assert!(rewrite_spans(b"\x0a\x05\x12\x03\x12\x01", &mut DropNamed(b"a")).is_err());
}

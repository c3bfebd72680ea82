//! The copy-on-write rewriter (`rewrite_spans`, `rewrite_fields`) on door-checked input, with the edits the
//! processors make: drop spans, rename spans, insert and delete span attributes, replace a resource. Never a
//! panic; whatever the rewriter writes still passes the door and decodes with prost, with the expected number of
//! spans. The first two bytes pick the edits; the rest is the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use spanpipe_core::wire::fields::{any_value, key_value, resource, span};
use spanpipe_core::wire::{
    Edit, Field, SpanCtx, SpanEdit, SpanEditor, WireError, bytes_field, check_traces,
    put_bytes_field, rewrite_fields, rewrite_spans,
};

const DEPTH: usize = 32;

struct Editor {
    sel: u8,
    index: usize,
    expect_dropped: usize,
}

/// An encoded `KeyValue` with a string value.
fn attribute(key: &str, value: &str) -> Vec<u8> {
    let mut kv = Vec::new();
    put_bytes_field(&mut kv, key_value::KEY, key.as_bytes());
    put_bytes_field(
        &mut kv,
        key_value::VALUE,
        &bytes_field(any_value::STRING, value.as_bytes()),
    );
    kv
}

impl SpanEditor for Editor {
    fn resource(&mut self, res: &[u8]) -> Result<Option<Vec<u8>>, WireError> {
        if self.sel & 0x10 == 0 {
            return Ok(None);
        }
        // The `resource` processor's upsert of service.name: delete it, append the new one.
        let out = rewrite_fields(res, |n, f| {
            Ok(match (n, f) {
                (resource::ATTRIBUTES, Field::Bytes(kv)) if is_key(kv, "service.name") => {
                    Edit::Drop
                }
                _ => Edit::Keep,
            })
        })?;
        let mut out = out.unwrap_or_else(|| res.to_vec());
        put_bytes_field(
            &mut out,
            resource::ATTRIBUTES,
            &attribute("service.name", "fuzz"),
        );
        Ok(Some(out))
    }

    fn span(&mut self, ctx: &SpanCtx<'_>) -> Result<SpanEdit, WireError> {
        let i = self.index;
        self.index += 1;
        let pick = (i as u8).wrapping_add(self.sel);
        if self.sel & 1 == 1 && pick.is_multiple_of(3) {
            self.expect_dropped += 1;
            return Ok(SpanEdit::Drop);
        }
        let rename = self.sel & 2 == 2;
        let delete = self.sel & 4 == 4;
        let changed = rewrite_fields(ctx.raw, |n, f| {
            Ok(match (n, f) {
                (span::NAME, _) if rename => Edit::field(span::NAME, "renamed ✓".as_bytes()),
                (span::ATTRIBUTES, Field::Bytes(_)) if delete && pick.is_multiple_of(2) => {
                    Edit::Drop
                }
                _ => Edit::Keep,
            })
        })?;
        if self.sel & 8 == 8 {
            let mut out = changed.unwrap_or_else(|| ctx.raw.to_vec());
            put_bytes_field(&mut out, span::ATTRIBUTES, &attribute("fuzz.inserted", "é"));
            return Ok(SpanEdit::Replace(out));
        }
        Ok(changed.map_or(SpanEdit::Keep, SpanEdit::Replace))
    }
}

fn is_key(kv: &[u8], key: &str) -> bool {
    spanpipe_core::wire::key_value(kv).is_ok_and(|(k, _)| k == key.as_bytes())
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let Ok(report) = check_traces(body, DEPTH) else {
        return;
    };
    if report.invalid_spans > 0 {
        return;
    }
    let mut editor = Editor {
        sel,
        index: 0,
        expect_dropped: 0,
    };
    let outcome =
        rewrite_spans(body, &mut editor).expect("the rewriter accepts what the door admitted");
    assert_eq!(outcome.dropped, editor.expect_dropped);
    assert_eq!(editor.index, report.spans, "the rewriter skipped spans");
    let out = outcome.payload.as_deref().unwrap_or(body);
    // An insert changes every kept span (a rename only spans that have a name).
    if sel & 0x08 != 0 && report.spans > outcome.dropped {
        assert!(outcome.payload.is_some(), "an insert was lost");
    }
    let again = check_traces(out, DEPTH).expect("rewritten request passes the door");
    assert_eq!(
        again.invalid_spans, 0,
        "rewriter produced an invalid span: {again:?}"
    );
    assert_eq!(again.spans, report.spans - outcome.dropped);
    let decoded = ExportTraceServiceRequest::decode(out);
    assert!(
        decoded.is_ok(),
        "rewritten request does not decode: {decoded:?}"
    );
});

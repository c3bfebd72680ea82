//! Why a request failed, and how each protocol says so: an HTTP status with a `google.rpc.Status` body (OTLP/HTTP)
//! or a gRPC status (OTLP/gRPC). One type for both, so the two transports cannot drift apart.

use std::time::Duration;

use http::StatusCode;
use prost::Message;
use spanpipe_core::ConsumeError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// A failed export request. Messages go back to the client; they never contain request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiveError {
    /// No such path (HTTP 404).
    NotFound(String),
    /// No pipeline takes this signal from the receiver (HTTP 404, gRPC UNIMPLEMENTED).
    NoPipeline(&'static str),
    /// Only POST is served (HTTP 405).
    MethodNotAllowed,
    /// Content type or encoding we do not speak (HTTP 415).
    Unsupported(String),
    /// Body larger than allowed, as sent or decompressed (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    TooLarge(String),
    /// Not a valid OTLP request, or the pipeline rejected it (HTTP 400, gRPC INVALID_ARGUMENT).
    Invalid(String),
    /// The door found invalid spans and the policy is `reject`: HTTP 400, gRPC INVALID_ARGUMENT, with the
    /// request's `spans` counted as refused.
    InvalidSpans { message: String, spans: usize },
    /// The authenticator refused the request's credentials (HTTP 401, gRPC UNAUTHENTICATED). The message
    /// never contains the credentials.
    Unauthenticated(String),
    /// The pipeline is saturated; try again later (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo).
    Refused {
        reason: String,
        retry_after: Duration,
    },
}

impl From<ConsumeError> for ReceiveError {
    fn from(e: ConsumeError) -> Self {
        match e {
            ConsumeError::Rejected { reason } => ReceiveError::Invalid(reason),
            ConsumeError::Refused {
                reason,
                retry_after,
            } => ReceiveError::Refused {
                reason,
                retry_after,
            },
        }
    }
}

impl ReceiveError {
    /// The HTTP status OTLP/HTTP answers with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            ReceiveError::NotFound(_) | ReceiveError::NoPipeline(_) => StatusCode::NOT_FOUND,
            ReceiveError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ReceiveError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ReceiveError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ReceiveError::Invalid(_) | ReceiveError::InvalidSpans { .. } => StatusCode::BAD_REQUEST,
            ReceiveError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ReceiveError::Refused { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC code, also used as `code` of the OTLP/HTTP `google.rpc.Status` body.
    pub fn grpc_code(&self) -> Code {
        match self {
            ReceiveError::NotFound(_) => Code::NotFound,
            ReceiveError::NoPipeline(_) | ReceiveError::MethodNotAllowed => Code::Unimplemented,
            ReceiveError::Unsupported(_)
            | ReceiveError::Invalid(_)
            | ReceiveError::InvalidSpans { .. } => Code::InvalidArgument,
            ReceiveError::TooLarge(_) => Code::ResourceExhausted,
            ReceiveError::Unauthenticated(_) => Code::Unauthenticated,
            ReceiveError::Refused { .. } => Code::Unavailable,
        }
    }

    /// The human-readable message.
    pub fn message(&self) -> String {
        match self {
            ReceiveError::NotFound(m)
            | ReceiveError::Unsupported(m)
            | ReceiveError::TooLarge(m) => m.clone(),
            ReceiveError::Invalid(m) | ReceiveError::Unauthenticated(m) => m.clone(),
            ReceiveError::InvalidSpans { message, .. } => message.clone(),
            ReceiveError::NoPipeline(signal) => {
                format!("no pipeline accepts {signal} from this receiver")
            }
            ReceiveError::MethodNotAllowed => "only POST is allowed".into(),
            ReceiveError::Refused { reason, .. } => reason.clone(),
        }
    }

    /// `Retry-After` in whole seconds, rounded up so a client never comes back early.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ReceiveError::Refused { retry_after, .. } => {
                Some(retry_after.as_nanos().div_ceil(1_000_000_000) as u64)
            }
            _ => None,
        }
    }

    /// The gRPC status; a refusal carries a `google.rpc.RetryInfo` detail, which OTLP clients honour.
    pub fn to_grpc_status(&self) -> tonic::Status {
        match self {
            ReceiveError::Refused {
                reason,
                retry_after,
            } => tonic::Status::with_error_details(
                Code::Unavailable,
                reason.clone(),
                ErrorDetails::with_retry_info(Some(*retry_after)),
            ),
            other => tonic::Status::new(other.grpc_code(), other.message()),
        }
    }

    /// The OTLP/HTTP error body: a `google.rpc.Status`, as JSON or protobuf like the request.
    pub fn http_body(&self, json: bool) -> Vec<u8> {
        let code = self.grpc_code() as i32;
        let message = self.message();
        if json {
            serde_json::json!({ "code": code, "message": message })
                .to_string()
                .into_bytes()
        } else {
            RpcStatus { code, message }.encode_to_vec()
        }
    }
}

/// `google.rpc.Status` without `details` (field 3), which OTLP/HTTP error bodies do not need.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings() {
        let refused = ReceiveError::from(ConsumeError::Refused {
            reason: "full".into(),
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(refused.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after_secs(), Some(2));
        let st = refused.to_grpc_status();
        assert_eq!(st.code(), Code::Unavailable);
        assert_eq!(
            st.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(1500))
        );

        let rejected = ReceiveError::from(ConsumeError::Rejected {
            reason: "bad".into(),
        });
        assert_eq!(rejected.http_status(), StatusCode::BAD_REQUEST);
        let body = RpcStatus::decode(&rejected.http_body(false)[..]).unwrap();
        assert_eq!((body.code, body.message.as_str()), (3, "bad"));
        let json: serde_json::Value = serde_json::from_slice(&rejected.http_body(true)).unwrap();
        assert_eq!(json, serde_json::json!({"code": 3, "message": "bad"}));
        assert_eq!(
            ReceiveError::Invalid(String::new()).retry_after_secs(),
            None
        );
    }
}

//! How EC2 error codes map onto `CloudError`: throttling and transient failures are retried,
//! capacity errors mark offerings unavailable, "not found" codes mean the instance is gone.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::cloud::provider::CloudError;

/// Codes EC2 answers when the caller should slow down or try again.
const RETRYABLE_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "ServiceUnavailable",
    "Unavailable",
    "InternalError",
    "InternalFailure",
];

/// CreateFleet per-override codes after which that offering is not tried again for a while
/// (Karpenter's `unfulfillableCapacityErrorCodes`).
const CAPACITY_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "UnfulfillableCapacity",
    "MaxSpotInstanceCountExceeded",
    "VcpuLimitExceeded",
    "Unsupported",
    "InsufficientFreeAddressesInSubnet",
    "ReservationCapacityExceeded",
];

const NOT_FOUND_CODES: &[&str] = &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];

pub fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

pub fn is_capacity_code(code: &str) -> bool {
    CAPACITY_CODES.contains(&code)
}

pub fn is_not_found_code(code: &str) -> bool {
    NOT_FOUND_CODES.contains(&code)
}

/// `CloudError` for an error code and message from `operation`.
pub fn classify(operation: &str, code: Option<&str>, message: String) -> CloudError {
    let operation = operation.to_string();
    match code {
        Some(c) if is_retryable_code(c) => CloudError::Retryable {
            operation,
            message: format!("{c}: {message}"),
        },
        Some(c) => CloudError::Api {
            operation,
            message: format!("{c}: {message}"),
        },
        None => CloudError::Api { operation, message },
    }
}

/// Maps an SDK error: service errors by code; timeouts and connection failures are retryable
/// (the request may not have reached EC2).
pub fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => CloudError::Retryable {
            operation: operation.to_string(),
            message: display_chain(&err),
        },
        _ => {
            let code = err.code().map(str::to_string);
            let message = err
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| display_chain(&err));
            classify(operation, code.as_deref(), message)
        }
    }
}

/// SDK errors print only their outermost layer ("dispatch failure"); the cause says why.
fn display_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_retryable_other_codes_are_not() {
        for code in ["RequestLimitExceeded", "Throttling"] {
            let e = classify("CreateFleet", Some(code), "slow down".into());
            assert!(matches!(e, CloudError::Retryable { .. }), "{code}: {e:?}");
            assert!(e.to_string().contains(code));
        }
        let e = classify("CreateFleet", Some("InvalidParameterValue"), "bad".into());
        assert!(matches!(e, CloudError::Api { .. }), "{e:?}");
    }

    #[test]
    fn capacity_and_not_found_codes() {
        assert!(is_capacity_code("InsufficientInstanceCapacity"));
        assert!(is_capacity_code("UnfulfillableCapacity"));
        assert!(is_capacity_code("MaxSpotInstanceCountExceeded"));
        assert!(!is_capacity_code("InvalidParameterValue"));
        assert!(is_not_found_code("InvalidInstanceID.NotFound"));
    }
}

//! The one table from outcome to exit code, so scripts can branch on what went wrong
//! without parsing messages.
//!
//! | exit | meaning                                                                 |
//! |------|-------------------------------------------------------------------------|
//! | 0    | OK                                                                      |
//! | 1    | any other failure (INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS, CANCELLED) |
//! | 2    | usage: bad arguments or an unreadable secret input; nothing was sent     |
//! | 3    | NOT_FOUND: unknown provider instance or no such credential              |
//! | 4    | INVALID_ARGUMENT, OUT_OF_RANGE, ALREADY_EXISTS: the request was refused  |
//! | 5    | FAILED_PRECONDITION: the credential needs re-authorization              |
//! | 6    | UNAUTHENTICATED, PERMISSION_DENIED: this caller may not do that          |
//! | 7    | UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED: retry later |
//! | 8    | `admin rewrap` finished, but some records were skipped or unreadable     |

use tonic::Code;

/// Bad arguments or unreadable local input (clap uses the same code for its own errors).
pub const USAGE: u8 = 2;

/// Every call succeeded but the work is not complete (`admin rewrap` left records to handle).
pub const INCOMPLETE: u8 = 8;

/// The exit code for a gRPC status code.
pub fn for_code(code: Code) -> u8 {
    match code {
        Code::Ok => 0,
        Code::NotFound => 3,
        Code::InvalidArgument | Code::OutOfRange | Code::AlreadyExists => 4,
        Code::FailedPrecondition => 5,
        Code::Unauthenticated | Code::PermissionDenied => 6,
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => 7,
        Code::Internal | Code::Unknown | Code::Unimplemented | Code::DataLoss | Code::Cancelled => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_documented_exit_code() {
        let table = [
            (Code::Ok, 0),
            (Code::NotFound, 3),
            (Code::InvalidArgument, 4),
            (Code::FailedPrecondition, 5),
            (Code::PermissionDenied, 6),
            (Code::Unauthenticated, 6),
            (Code::Unavailable, 7),
            (Code::DeadlineExceeded, 7),
            (Code::Internal, 1),
        ];
        for (code, exit) in table {
            assert_eq!(for_code(code), exit, "{code:?}");
        }
        assert_ne!(for_code(Code::Unavailable), USAGE);
    }
}

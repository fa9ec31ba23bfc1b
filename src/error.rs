//! The one error type of the addon.
//!
//! Every failure that reaches JavaScript carries a stable `code` (`ERR_BULWARK_…`): the napi
//! boundary turns the [`ErrorCode`] into the JS error's `code` property, and `lib/errors.js`
//! turns that code into the matching exported error class (`instanceof` works, `statusCode` is
//! set where an HTTP status fits). Add a variant here and its class in `lib/errors.js`, nowhere
//! else.
//!
//! Exported functions return [`Result`]; plain-Rust logic returns `Result<T, BulwarkError>` and
//! `?` converts at the boundary. Panics never cross into Node: exports that can panic carry
//! `#[napi(catch_unwind)]`, which turns the panic into a JS `Error`.

use std::fmt;

/// Stable error codes. The string form is part of the public API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
  /// An option or argument has the wrong type or shape (a `TypeError` in JS).
  InvalidArg,
  /// An option or argument is outside its allowed range (a `RangeError` in JS).
  OutOfRange,
  /// The object was stopped or closed and cannot be used any more.
  Closed,
  /// A bug in bulwark: a broken invariant or an unexpected failure of the host.
  Internal,
  // --- json
  /// Text that `JSON.parse` would refuse (a `SyntaxError` in JS, statusCode 400).
  JsonSyntax,
  /// A Buffer that is not valid UTF-8 (statusCode 400).
  JsonInvalidUtf8,
  /// A `__proto__` key, or a `constructor` key whose value has a `prototype` key (400).
  JsonForbiddenKey,
  /// More bytes than `maxBytes` (413).
  JsonTooLarge,
  /// Nesting deeper than `maxDepth` (400).
  JsonTooDeep,
  /// An object with more keys than `maxKeys` (400).
  JsonTooManyKeys,
  /// An array longer than `maxArrayLength` (400).
  JsonArrayTooLong,
  /// A string or key longer than `maxStringLength` (400).
  JsonStringTooLong,
  /// More values than `maxTotalNodes` (400).
  JsonTooManyNodes,
  /// The pool's queue is full (503).
  PoolOverloaded,
  /// regex: the pattern or flags are invalid JavaScript regex syntax (a `SyntaxError`).
  RegexSyntax,
  /// regex: the pattern uses a feature that needs backtracking (backreference, lookaround).
  RegexUnsupported,
  /// regex: the compiled pattern exceeds the size or nesting limits.
  RegexTooLarge,
}

impl ErrorCode {
  pub const fn as_str(self) -> &'static str {
    match self {
      ErrorCode::InvalidArg => "ERR_BULWARK_INVALID_ARG",
      ErrorCode::OutOfRange => "ERR_BULWARK_OUT_OF_RANGE",
      ErrorCode::Closed => "ERR_BULWARK_CLOSED",
      ErrorCode::Internal => "ERR_BULWARK_INTERNAL",
      // --- json
      ErrorCode::JsonSyntax => "ERR_BULWARK_JSON_SYNTAX",
      ErrorCode::JsonInvalidUtf8 => "ERR_BULWARK_JSON_INVALID_UTF8",
      ErrorCode::JsonForbiddenKey => "ERR_BULWARK_JSON_FORBIDDEN_KEY",
      ErrorCode::JsonTooLarge => "ERR_BULWARK_JSON_TOO_LARGE",
      ErrorCode::JsonTooDeep => "ERR_BULWARK_JSON_TOO_DEEP",
      ErrorCode::JsonTooManyKeys => "ERR_BULWARK_JSON_TOO_MANY_KEYS",
      ErrorCode::JsonArrayTooLong => "ERR_BULWARK_JSON_ARRAY_TOO_LONG",
      ErrorCode::JsonStringTooLong => "ERR_BULWARK_JSON_STRING_TOO_LONG",
      ErrorCode::JsonTooManyNodes => "ERR_BULWARK_JSON_TOO_MANY_NODES",
      ErrorCode::PoolOverloaded => "ERR_BULWARK_POOL_OVERLOADED",
      ErrorCode::RegexSyntax => "ERR_BULWARK_REGEX_SYNTAX",
      ErrorCode::RegexUnsupported => "ERR_BULWARK_REGEX_UNSUPPORTED",
      ErrorCode::RegexTooLarge => "ERR_BULWARK_REGEX_TOO_LARGE",
    }
  }
}

impl AsRef<str> for ErrorCode {
  fn as_ref(&self) -> &str {
    self.as_str()
  }
}

/// What exported functions return: the JS error's `code` is the [`ErrorCode`].
pub type Result<T> = napi::Result<T, ErrorCode>;

/// An error from plain-Rust logic, before it crosses the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulwarkError {
  pub code: ErrorCode,
  pub message: String,
}

impl BulwarkError {
  pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
    BulwarkError {
      code,
      message: message.into(),
    }
  }

  pub fn invalid_arg(message: impl Into<String>) -> Self {
    Self::new(ErrorCode::InvalidArg, message)
  }

  pub fn out_of_range(message: impl Into<String>) -> Self {
    Self::new(ErrorCode::OutOfRange, message)
  }
}

impl fmt::Display for BulwarkError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.code.as_str(), self.message)
  }
}

impl std::error::Error for BulwarkError {}

impl From<BulwarkError> for napi::Error<ErrorCode> {
  fn from(err: BulwarkError) -> Self {
    napi::Error::new(err.code, err.message)
  }
}

/// A failure of a napi call is never the caller's fault: it is reported as `Internal`, keeping
/// napi's own status in the message.
impl From<napi::Error> for BulwarkError {
  fn from(err: napi::Error) -> Self {
    BulwarkError::new(
      ErrorCode::Internal,
      format!("{} ({})", err.reason, err.status.as_ref()),
    )
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn codes_are_stable_and_prefixed() {
    for code in [
      ErrorCode::InvalidArg,
      ErrorCode::OutOfRange,
      ErrorCode::Closed,
      ErrorCode::Internal,
      // --- json
      ErrorCode::JsonSyntax,
      ErrorCode::JsonInvalidUtf8,
      ErrorCode::JsonForbiddenKey,
      ErrorCode::JsonTooLarge,
      ErrorCode::JsonTooDeep,
      ErrorCode::JsonTooManyKeys,
      ErrorCode::JsonArrayTooLong,
      ErrorCode::JsonStringTooLong,
      ErrorCode::JsonTooManyNodes,
      ErrorCode::PoolOverloaded,
      ErrorCode::RegexSyntax,
      ErrorCode::RegexUnsupported,
      ErrorCode::RegexTooLarge,
    ] {
      assert!(code.as_str().starts_with("ERR_BULWARK_"), "{code:?}");
    }
    assert_eq!(ErrorCode::InvalidArg.as_str(), "ERR_BULWARK_INVALID_ARG");
  }

  #[test]
  fn napi_errors_become_internal_with_their_status() {
    let err: BulwarkError =
      napi::Error::new(napi::Status::InvalidArg, "bad handle".to_string()).into();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("bad handle"));
    assert!(err.message.contains("InvalidArg"));
  }

  #[test]
  fn crossing_the_boundary_keeps_code_and_message() {
    let err: napi::Error<ErrorCode> = BulwarkError::out_of_range("too big").into();
    assert_eq!(err.status, ErrorCode::OutOfRange);
    assert_eq!(err.reason, "too big");
  }
}

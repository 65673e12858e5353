//! Error answers shared by many routes, documented once.

use crate::error::ErrorBody;

/// The refusals every submit route can answer, before any work is accepted.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum SubmitErrors {
    /// A bad field, named in `param`.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing, unknown, disabled or expired key.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The key's budget does not cover the request.
    #[response(status = 402)]
    PaymentRequired(ErrorBody),
    /// The key may not use this model.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over the key's rate limit; see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
}

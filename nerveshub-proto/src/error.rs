//! The one error type of this crate.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate: decoding frames and messages, using a session
/// the wrong way, and checking NH1 shared-secret tokens.
///
/// Every decoder in this crate returns one of these for bad input; none of them panics. The
/// JSON and MessagePack decoders' errors are kept as the [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- frames -----------------------------------------------------------------------------
    /// A frame (or a frame about to be sent) is larger than the configured bound.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The size of the frame in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The bytes are not valid JSON (V2 serializer).
    #[error("invalid JSON frame: {0}")]
    Json(#[source] serde_json::Error),
    /// The bytes are not valid MessagePack, or hold a value with no JSON equivalent (V3).
    #[error("invalid MessagePack frame: {0}")]
    MsgPack(#[source] MsgPackError),
    /// The frame decoded but is not a `[join_ref, ref, topic, event, payload]` array.
    #[error("malformed frame: {0}")]
    MalformedFrame(&'static str),
    /// The `vsn` query value names no serializer this crate implements.
    #[error("unsupported serializer version {0:?} (expected 2.x JSON or 3.x MessagePack)")]
    UnsupportedVsn(String),

    // ---- messages ---------------------------------------------------------------------------
    /// A payload did not have the shape its event requires.
    #[error("invalid payload for event {event:?}: {source}")]
    InvalidPayload {
        /// The event whose payload was being decoded.
        event: String,
        /// What was wrong, as serde_json's deserializer reports it.
        #[source]
        source: serde_json::Error,
    },

    // ---- sessions ---------------------------------------------------------------------------
    /// A push was attempted on a topic that is not joined (or not joined yet).
    #[error("topic {0:?} is not joined")]
    NotJoined(String),
    /// The session is not connected, so nothing can be sent.
    #[error("the session is not connected")]
    NotConnected,
    /// A server tried to reply to a device's push on a topic where a reply crashes the device
    /// (`device`: nerves_hub_link only handles replies to joins).
    #[error("replying to a device's {event:?} push on topic {topic:?} is not allowed")]
    ReplyNotAllowed {
        /// The topic of the push.
        topic: String,
        /// The event of the push.
        event: String,
    },
    /// A join request, push or reply refers to something the session no longer tracks.
    #[error("unknown or stale join request for topic {0:?}")]
    UnknownJoin(String),

    // ---- Erlang external term format -------------------------------------------------------
    /// The bytes are not a term this crate's small external term format decoder accepts.
    #[error("invalid Erlang term: {0}")]
    Term(&'static str),

    // ---- NH1 shared-secret auth ------------------------------------------------------------
    /// A shared-secret header is missing.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The `x-nh-alg` header is not `NH1-HMAC-<digest>-<iterations>-<length>` with supported
    /// values.
    #[error("unsupported x-nh-alg {0:?}")]
    UnsupportedAlg(String),
    /// The `x-nh-time` header is not a decimal number of seconds.
    #[error("invalid x-nh-time {0:?}")]
    InvalidTime(String),
    /// The signature token is not a `SFMyNTY.<payload>.<mac>` token.
    #[error("malformed signature token")]
    MalformedToken,
    /// The token's MAC does not match: wrong secret, key, time or alg.
    #[error("signature mismatch")]
    BadSignature,
    /// The token's contents are not `{identifier, signed_at_ms, max_age}`.
    #[error("unexpected token contents")]
    BadTokenContents,
    /// The token is older than the allowed age.
    #[error("token expired: signed at {signed_at_ms} ms, now {now_ms} ms")]
    Expired {
        /// When the token says it was signed (Unix milliseconds).
        signed_at_ms: u64,
        /// The verifier's current time (Unix milliseconds).
        now_ms: u64,
    },
    /// The token is signed too far in the future (the device clock runs ahead).
    #[error("token signed in the future: signed at {signed_at_ms} ms, now {now_ms} ms")]
    SignedInFuture {
        /// When the token says it was signed (Unix milliseconds).
        signed_at_ms: u64,
        /// The verifier's current time (Unix milliseconds).
        now_ms: u64,
    },
}

/// Why a V3 frame's MessagePack was refused (the source of [`Error::MsgPack`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MsgPackError {
    /// The bytes are not MessagePack, or nest too deep (rmpv's error).
    #[error("{0}")]
    Decode(#[source] rmpv::decode::Error),
    /// Bytes follow the value.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// An integer fits neither `i64` nor `u64`.
    #[error("integer out of range")]
    IntegerOutOfRange,
    /// A string is not UTF-8.
    #[error("string is not UTF-8")]
    StringNotUtf8,
    /// A map key is a string that is not UTF-8.
    #[error("map key is not UTF-8")]
    KeyNotUtf8,
    /// A map key is an array or a map (its JSON text could grow exponentially).
    #[error("map key is an array or a map")]
    ContainerKey,
    /// An extension type other than the timestamp (-1).
    #[error("unsupported extension type {0}")]
    UnsupportedExtension(i8),
    /// A NaN or infinite float (JSON has none).
    #[error("non-finite float")]
    NonFiniteFloat,
    /// A timestamp extension of the wrong length or with nanoseconds out of range.
    #[error("invalid timestamp extension")]
    InvalidTimestamp,
}

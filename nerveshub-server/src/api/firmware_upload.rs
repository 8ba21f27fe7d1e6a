//! `POST /api/orgs/{org}/products/{product}/firmwares`: a `.fw` in the multipart field
//! `firmware`.
//!
//! The pipeline, and what it leaves when any step fails (nothing):
//! 1. the body streams into a temp file under `<data-dir>/uploads` while its size is counted
//!    against `--max-firmware-size` (413 past it) and its SHA-256 and 1 MiB partial SHA-256s
//!    are computed; the temp file is removed when the upload ends, however it ends;
//! 2. from here on the work runs in a task of its own, so a client that goes away cannot
//!    stop it half-way;
//! 3. nerveshub-fwup verifies the whole archive against every signing key of the org (none
//!    registered, unsigned, or signed by none of them: 422) and every resource's hash;
//! 4. the metadata is checked: product, version, platform and architecture present, product
//!    equal to the path's, version SemVer, uuid new in the product (422 otherwise);
//! 5. the file is copied into storage under a fresh key; then the row and its audit entry
//!    are committed in one transaction, and the object is deleted again if that fails.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::time::Duration;

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{FromRequest as _, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use nerveshub_fwup::{PublicKey, SignatureStatus, Variables};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt as _;

use super::firmwares::firmware_json;
use super::{created, products};
use crate::auth::Caller;
use crate::db::{self, Actor, Audit, FirmwareRow, KeyRow, NewFirmware, OnUnique, ProductRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::storage::UPLOAD_PREFIX;

/// Room for the multipart framing and small fields around the firmware itself.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// At most this many form fields.
const MAX_FIELDS: usize = 16;
/// The size of each piece `partials_checksums` covers.
const PARTIAL_LEN: u64 = 1024 * 1024;
/// An uploaded archive may declare at most this many times the upload limit in inflated
/// resources, so the inflating one upload costs is bounded (zeros compress about 1000:1, real
/// root file systems 2–4:1).
const MAX_INFLATE_RATIO: u64 = 64;
/// The buffer between the request body and the temp file.
const WRITE_BUFFER: usize = 1024 * 1024;

/// After refusing an upload, up to this much of the rest of its body is read and discarded
/// before the answer goes out (a "lingering close", as web servers do): a client still
/// sending when the connection closes would otherwise see a reset instead of the answer.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;
/// …and for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// The upload handler (its route disables axum's default body limit; this one applies).
pub(super) async fn upload(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((org, product)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let checked = async {
        let caller = caller?;
        let membership = caller.membership()?;
        let product = products::find(&state, membership.org.id, &product).await?;
        let max = state.config.max_firmware_size;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max.saturating_add(FORM_OVERHEAD)) {
            return Err(too_large(max));
        }
        let multipart = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if !multipart {
            return Err(ApiError::BadRequest(
                "expected a multipart/form-data body with the field `firmware`".into(),
            ));
        }
        Ok((caller, membership, product, max))
    }
    .await;
    let (caller, membership, product, max) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            drain_body(body).await;
            return Err(e);
        }
    };
    // The body is cut off past the limit (plus room to drain after a refusal), whatever a
    // Content-Length said; the firmware field itself is held to `max` while it streams.
    let limit = max
        .saturating_add(FORM_OVERHEAD)
        .saturating_add(DRAIN_LIMIT);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let request = Request::from_parts(parts, Body::new(http_body_util::Limited::new(body, limit)));
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let received = match receive(&mut multipart, &state, max).await {
        Ok(received) => received,
        Err(e) => {
            drain_multipart(multipart).await;
            return Err(e);
        }
    };

    let job = Upload {
        org_id: membership.org.id,
        org_name: membership.org.name,
        product,
        user_id: caller.user.id,
        user_email: caller.user.email,
        received,
    };
    let firmware = tokio::spawn(store(state, job))
        .await
        .map_err(|e| ApiError::internal("firmware upload task", e))??;

    tracing::info!(org = %org, product = %firmware.product, uuid = %firmware.uuid, version = %firmware.version, size = firmware.size, "firmware uploaded");
    let location = format!(
        "/api/orgs/{}/products/{}/firmwares/{}",
        encode_segment(&org),
        encode_segment(&firmware.product),
        firmware.uuid
    );
    let mut response = created(firmware_json(&firmware));
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Reads and discards what is left of a refused request's body, within [`DRAIN_LIMIT`] and
/// [`DRAIN_TIME`].
pub(super) async fn drain_body(body: Body) {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
                if read > DRAIN_LIMIT {
                    break;
                }
            }
        }
    })
    .await;
}

/// [`drain_body`] for a form being read: skips the rest of it.
async fn drain_multipart(mut multipart: Multipart) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0u64;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                read += chunk.len() as u64;
                if read > DRAIN_LIMIT {
                    return;
                }
            }
        }
    })
    .await;
}

fn too_large(max: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the firmware is larger than this server's limit of {max} bytes (--max-firmware-size)"
    ))
}

/// A request body error: over the size limit (413) or malformed (400).
fn body_error(e: &MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(max)
    } else {
        ApiError::BadRequest(format!("reading the upload: {}", e.body_text()))
    }
}

/// The firmware as received: a temp file (removed on drop) and what was computed on the way.
struct Received {
    file: NamedTempFile,
    size: u64,
    checksum: String,
    partials_checksums: Vec<String>,
}

/// Reads the form: the `firmware` field into a temp file, other fields (the CLI's legacy
/// `ttl`) read and ignored within [`FORM_OVERHEAD`].
async fn receive(
    multipart: &mut Multipart,
    state: &AppState,
    max: u64,
) -> Result<Received, ApiError> {
    let mut received = None;
    let mut fields = 0;
    let mut other_bytes = 0;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| body_error(&e, max))?
    {
        fields += 1;
        if fields > MAX_FIELDS {
            return Err(ApiError::BadRequest(format!(
                "the form has more than {MAX_FIELDS} fields"
            )));
        }
        if field.name() == Some("firmware") {
            if received.is_some() {
                return Err(ApiError::invalid("firmware", "was sent more than once"));
            }
            received = Some(receive_file(field, state, max).await?);
        } else {
            while let Some(chunk) = field.chunk().await.map_err(|e| body_error(&e, max))? {
                other_bytes += chunk.len() as u64;
                if other_bytes > FORM_OVERHEAD {
                    return Err(ApiError::BadRequest(format!(
                        "form fields besides `firmware` are limited to {FORM_OVERHEAD} bytes"
                    )));
                }
            }
        }
    }
    received.ok_or_else(|| {
        ApiError::invalid(
            "firmware",
            "can't be blank: send the .fw file as the multipart/form-data field `firmware`",
        )
    })
}

/// Streams one field into a temp file, counting and hashing.
async fn receive_file(
    mut field: Field<'_>,
    state: &AppState,
    max: u64,
) -> Result<Received, ApiError> {
    let io = |e: std::io::Error| ApiError::internal("writing the upload's temp file", e);
    let temp = tempfile::Builder::new()
        .prefix(UPLOAD_PREFIX)
        .suffix(".fw")
        .tempfile_in(state.storage.upload_dir())
        .map_err(io)?;
    let mut out = tokio::io::BufWriter::with_capacity(
        WRITE_BUFFER,
        tokio::fs::File::from_std(temp.reopen().map_err(io)?),
    );
    let mut sums = Checksums::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| body_error(&e, max))? {
        if sums.size.saturating_add(chunk.len() as u64) > max {
            return Err(too_large(max));
        }
        sums.update(&chunk);
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.flush().await.map_err(io)?;
    let (size, checksum, partials_checksums) = sums.finish();
    Ok(Received {
        file: temp,
        size,
        checksum,
        partials_checksums,
    })
}

/// SHA-256 of the whole stream and of each [`PARTIAL_LEN`] piece, as NervesHub records them.
struct Checksums {
    size: u64,
    whole: Sha256,
    piece: Sha256,
    piece_len: u64,
    partials: Vec<String>,
}

impl Checksums {
    fn new() -> Self {
        Checksums {
            size: 0,
            whole: Sha256::new(),
            piece: Sha256::new(),
            piece_len: 0,
            partials: Vec::new(),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        self.whole.update(data);
        while !data.is_empty() {
            let room = usize::try_from(PARTIAL_LEN - self.piece_len).unwrap_or(usize::MAX);
            let (now, rest) = data.split_at(room.min(data.len()));
            self.piece.update(now);
            self.piece_len += now.len() as u64;
            if self.piece_len == PARTIAL_LEN {
                let piece = std::mem::replace(&mut self.piece, Sha256::new());
                self.partials.push(crate::hex::upper(&piece.finalize()));
                self.piece_len = 0;
            }
            data = rest;
        }
    }

    /// Size, whole-file checksum and partial checksums (the last piece may be short).
    fn finish(mut self) -> (u64, String, Vec<String>) {
        if self.piece_len > 0 {
            self.partials
                .push(crate::hex::upper(&self.piece.finalize()));
        }
        (
            self.size,
            crate::hex::upper(&self.whole.finalize()),
            self.partials,
        )
    }
}

/// Percent-encodes a path segment (org and product names may hold spaces and more).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything the storing task needs.
struct Upload {
    org_id: i64,
    org_name: String,
    product: ProductRow,
    user_id: i64,
    user_email: String,
    received: Received,
}

/// Steps 3 to 5: verify, check, store, record. The temp file goes when `job` is dropped.
async fn store(state: AppState, job: Upload) -> Result<FirmwareRow, ApiError> {
    let keys = state.db.keys(job.org_id).await?;
    if keys.is_empty() {
        return Err(ApiError::invalid(
            "firmware",
            format!(
                "no_public_keys: org {} has no firmware signing keys; register the public key the firmware is signed with (POST /api/orgs/{}/keys) and upload again",
                job.org_name,
                encode_segment(&job.org_name)
            ),
        ));
    }
    let public_keys = keys
        .iter()
        .map(|key| PublicKey::from_base64(&key.key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("a stored signing key does not parse", e))?;
    let path = job.received.file.path().to_owned();
    // Inflating is the work an upload can cost: bounded by what the archive may declare.
    let max_inflated = state
        .config
        .max_firmware_size
        .saturating_mul(MAX_INFLATE_RATIO);
    let verified = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path)?;
        let reader = BufReader::with_capacity(256 * 1024, file);
        nerveshub_fwup::verify_with_limit(reader, &public_keys, &Variables::default(), max_inflated)
    })
    .await
    .map_err(|e| ApiError::internal("firmware verification task", e))?
    .map_err(verify_error)?;
    let org_key = match verified.signature() {
        SignatureStatus::Verified { key_index } => keys.get(key_index).cloned(),
        other => {
            return Err(ApiError::bug(format!(
                "verification with keys ended as {other:?}"
            )));
        }
    };

    let info = verified.firmware_info();
    let meta = info.metadata();
    let uuid = info.uuid().to_string();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let (declared, version) = (text(&meta.product), text(&meta.version));
    let mut problems = BTreeMap::new();
    let required = [
        ("product", "meta-product", &meta.product),
        ("version", "meta-version", &meta.version),
        ("platform", "meta-platform", &meta.platform),
        ("architecture", "meta-architecture", &meta.architecture),
    ];
    for (field, key, value) in required {
        if value.as_deref().is_none_or(str::is_empty) {
            problems.insert(
                field.to_owned(),
                vec![format!(
                    "can't be blank: the firmware's meta.conf has no {key}"
                )],
            );
        }
    }
    if !declared.is_empty() && declared != job.product.name {
        problems.insert(
            "product".to_owned(),
            vec![format!(
                "product_mismatch: the firmware is for product {declared:?}, not {:?}",
                job.product.name
            )],
        );
    }
    if !version.is_empty() && semver::Version::parse(&version).is_err() {
        problems.insert(
            "version".to_owned(),
            vec![format!(
                "must be a SemVer version such as 1.2.3, not {version:?}"
            )],
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let taken = || {
        ApiError::invalid(
            "uuid",
            format!(
                "has already been taken: firmware {uuid} is already uploaded to {}",
                job.product.name
            ),
        )
    };
    if state
        .db
        .firmware_by_uuid(job.product.id, &uuid)
        .await?
        .is_some()
    {
        return Err(taken());
    }

    let mut nonce = [0u8; 6];
    getrandom::fill(&mut nonce)
        .map_err(|e| ApiError::internal("no randomness for a storage key", e))?;
    // A fresh key for every upload: two racing uploads of the same firmware never share an
    // object, so the loser can delete its own.
    let storage_key = format!(
        "{}/{}/{uuid}-{}.fw",
        job.org_id,
        job.product.id,
        crate::hex::lower(&nonce)
    );
    let file = tokio::fs::File::open(job.received.file.path())
        .await
        .map_err(|e| ApiError::internal("reopening the upload", e))?;
    state
        .storage
        .put_file(&storage_key, file)
        .await
        .map_err(|e| ApiError::internal("storing the firmware", e))?;

    let mut row = FirmwareRow {
        id: 0,
        org_id: job.org_id,
        product_id: job.product.id,
        product: job.product.name.clone(),
        org_key_id: org_key.as_ref().map(|k: &KeyRow| k.id),
        signing_key: org_key.map(|k| k.name),
        uuid: uuid.clone(),
        version,
        platform: text(&meta.platform),
        architecture: text(&meta.architecture),
        author: text(&meta.author),
        description: text(&meta.description),
        misc: text(&meta.misc),
        vcs_identifier: text(&meta.vcs_identifier),
        size: job.received.size,
        checksum: job.received.checksum.clone(),
        partials_checksums: job.received.partials_checksums.clone(),
        storage_key,
        inserted_at: 0,
    };
    let recorded = async {
        let mut tx = state.db.begin().await?;
        let (id, inserted_at) = db::insert_firmware(&mut tx, &new_firmware(&row))
            .await
            .on_unique(taken)?;
        db::audit(
            &mut tx,
            Audit {
                org_id: Some(job.org_id),
                actor: Actor::User(job.user_id),
                resource_type: "firmware",
                resource_id: &uuid,
                action: "create",
                description: format!(
                    "{} uploaded firmware {uuid} ({} {}) to {}",
                    job.user_email, row.product, row.version, job.org_name
                ),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, ApiError>((id, inserted_at))
    }
    .await;
    match recorded {
        Ok((id, inserted_at)) => {
            row.id = id;
            row.inserted_at = inserted_at;
            Ok(row)
        }
        Err(e) => {
            if let Err(delete) = state.storage.delete(&row.storage_key).await {
                tracing::error!(key = %row.storage_key, error = %delete, "could not remove the object of a failed upload");
            }
            Err(e)
        }
    }
}

fn new_firmware(row: &FirmwareRow) -> NewFirmware<'_> {
    NewFirmware {
        org_id: row.org_id,
        product_id: row.product_id,
        org_key_id: row.org_key_id,
        uuid: &row.uuid,
        version: &row.version,
        platform: &row.platform,
        architecture: &row.architecture,
        author: &row.author,
        description: &row.description,
        misc: &row.misc,
        vcs_identifier: &row.vcs_identifier,
        size: row.size,
        checksum: &row.checksum,
        partials_checksums: &row.partials_checksums,
        storage_key: &row.storage_key,
    }
}

/// A verification failure as the uploader sees it.
fn verify_error(e: nerveshub_fwup::Error) -> ApiError {
    use nerveshub_fwup::{Error, SignatureError};
    match e {
        Error::Signature(SignatureError::Missing) => ApiError::invalid(
            "firmware",
            "invalid_signature: the firmware is not signed; sign it with one of the org's keys (fwup -S)",
        ),
        Error::Signature(SignatureError::Bad) => ApiError::invalid(
            "firmware",
            "invalid_signature: the firmware's signature matches none of the org's signing keys",
        ),
        Error::Io(e) => ApiError::internal("reading the upload's temp file", e),
        other => ApiError::invalid("firmware", format!("is not a valid fwup archive: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_checksums_cover_each_mebibyte() {
        let data: Vec<u8> = (0..(2 * PARTIAL_LEN + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let whole = crate::hex::upper(&Sha256::digest(&data));
        let pieces: Vec<String> = data
            .chunks(PARTIAL_LEN as usize)
            .map(|piece| crate::hex::upper(&Sha256::digest(piece)))
            .collect();
        // Fed in odd-sized chunks that straddle the piece boundaries.
        let mut sums = Checksums::new();
        for chunk in data.chunks(65_537) {
            sums.update(chunk);
        }
        let (size, checksum, partials) = sums.finish();
        assert_eq!(size, data.len() as u64);
        assert_eq!(checksum, whole);
        assert_eq!(partials, pieces);
        assert_eq!(partials.len(), 3);
        assert!(
            checksum
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );

        let (size, _, partials) = {
            let mut exact = Checksums::new();
            exact.update(&data[..PARTIAL_LEN as usize]);
            exact.finish()
        };
        assert_eq!((size, partials.len()), (PARTIAL_LEN, 1));
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("Fixture Simple"), "Fixture%20Simple");
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_segment("ü/?"), "%C3%BC%2F%3F");
    }
}

//! The typed meta.conf model. Values are after `${VAR}` substitution. Options fwup
//! stores as strings (offsets, MBR signature, GPT flags and GUIDs) stay strings; integers
//! are parsed like libconfuse does (`strtol(…, 0)`), and unset integers hold fwup's
//! default.

/// fwup's default for `block-count` options (`INT32_MAX`).
pub(crate) const DEFAULT_BLOCK_COUNT: i64 = i32::MAX as i64;

/// The global `meta-*` strings of a firmware archive.
///
/// `meta-uuid`, `meta-nickname` are never here: they are computed from the meta.conf bytes
/// (and meta.conf may not set them). `meta-creation-date` is normally the mtime of the
/// meta.conf ZIP entry; only archives made by fwup before 1.2.0 store it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// `meta-product`
    pub product: Option<String>,
    /// `meta-description`
    pub description: Option<String>,
    /// `meta-version`
    pub version: Option<String>,
    /// `meta-author`
    pub author: Option<String>,
    /// `meta-platform`
    pub platform: Option<String>,
    /// `meta-architecture`
    pub architecture: Option<String>,
    /// `meta-fwup-version` (deprecated, written by fwup before 1.2.0)
    pub fwup_version: Option<String>,
    /// `meta-vcs-identifier`
    pub vcs_identifier: Option<String>,
    /// `meta-misc`
    pub misc: Option<String>,
    /// `meta-creation-date` when meta.conf itself has one (fwup before 1.2.0). When set,
    /// fwup shows it instead of the ZIP entry's mtime.
    pub creation_date: Option<String>,
}

/// One parsed function call of a `funlist` or `reqlist`: `raw_write(256)` is
/// `{ name: "raw_write", args: ["256"] }`. Unknown names are kept; they fail only when a
/// task using them is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
}

impl FunctionCall {
    /// The function (or requirement) name, e.g. `raw_write` or `require-partition-offset`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The arguments, as the strings stored in meta.conf.
    pub fn args(&self) -> &[String] {
        &self.args
    }
}

/// A `file-resource` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub(crate) name: String,
    pub(crate) length: Vec<u64>,
    pub(crate) blake2b_256: Option<String>,
    pub(crate) sha256: Option<String>,
    pub(crate) host_path: Option<String>,
    pub(crate) contents: Option<String>,
    pub(crate) skip_holes: bool,
    pub(crate) assert_size_lte: i64,
    pub(crate) assert_size_gte: i64,
}

/// A lowercase hex digit. fwup compares the stored digest with its own lowercase hex
/// rendering byte for byte, so uppercase digits never match.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

impl Resource {
    /// The name as written in meta.conf (`rootfs.img`, or `/name` for a resource stored at
    /// the archive root).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sparse map from `length`: data, hole, data, hole, … in bytes. A dense file has
    /// one run; a 0-byte resource has none.
    pub fn length_runs(&self) -> &[u64] {
        &self.length
    }

    /// Bytes the archive stores for this resource: the sum of the data runs.
    pub fn data_len(&self) -> u64 {
        self.length
            .iter()
            .step_by(2)
            .fold(0u64, |acc, &n| acc.saturating_add(n))
    }

    /// Size of the resource with its holes (data plus holes).
    pub fn total_len(&self) -> u64 {
        self.length
            .iter()
            .fold(0u64, |acc, &n| acc.saturating_add(n))
    }

    /// The `blake2b-256` digest, or `None` when it is missing or not 64 lowercase hex
    /// digits. fwup says `invalid blake2b-256 hash` when the string is not 64 characters
    /// long; 64 characters that are not lowercase hex pass that check but can never match
    /// (fwup compares hex strings), so they give `None` here too — see
    /// [`blake2b_256_hex`](Self::blake2b_256_hex) to tell the two apart.
    pub fn blake2b_256(&self) -> Option<[u8; 32]> {
        let hex = self.blake2b_256.as_deref()?.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(out)
    }

    /// The `blake2b-256` string as written.
    pub fn blake2b_256_hex(&self) -> Option<&str> {
        self.blake2b_256.as_deref()
    }

    /// The legacy `sha256` string (fwup before 0.3.0; unused when verifying).
    pub fn sha256(&self) -> Option<&str> {
        self.sha256.as_deref()
    }

    /// `host-path` (creation only; fwup never writes it into meta.conf).
    pub fn host_path(&self) -> Option<&str> {
        self.host_path.as_deref()
    }

    /// `contents` (creation only; fwup never writes it into meta.conf).
    pub fn contents(&self) -> Option<&str> {
        self.contents.as_deref()
    }

    /// `skip-holes` (creation only).
    pub fn skip_holes(&self) -> bool {
        self.skip_holes
    }

    /// `assert-size-lte` in 512-byte blocks (creation only), `None` when unset (-1).
    pub fn assert_size_lte(&self) -> Option<i64> {
        (self.assert_size_lte >= 0).then_some(self.assert_size_lte)
    }

    /// `assert-size-gte` in 512-byte blocks (creation only), `None` when unset (-1).
    pub fn assert_size_gte(&self) -> Option<i64> {
        (self.assert_size_gte >= 0).then_some(self.assert_size_gte)
    }
}

/// An `on-resource "name"` section of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnResource {
    pub(crate) resource: String,
    pub(crate) functions: Vec<FunctionCall>,
    pub(crate) verify_on_the_fly: bool,
    pub(crate) delta_source_raw_offset: Option<String>,
    pub(crate) delta_source_raw_count: Option<i64>,
    pub(crate) delta_source_raw_options: Option<String>,
    pub(crate) delta_source_fat_offset: Option<String>,
    pub(crate) delta_source_fat_path: Option<String>,
}

impl OnResource {
    /// The resource this handler runs for.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The functions to run, in order.
    pub fn functions(&self) -> &[FunctionCall] {
        &self.functions
    }

    /// Deprecated `verify-on-the-fly` (ignored by fwup).
    pub fn verify_on_the_fly(&self) -> bool {
        self.verify_on_the_fly
    }

    /// `delta-source-raw-offset` (a block offset kept as a string, as fwup does).
    pub fn delta_source_raw_offset(&self) -> Option<&str> {
        self.delta_source_raw_offset.as_deref()
    }

    /// `delta-source-raw-count` in blocks (an integer option in fwup), `None` when unset.
    pub fn delta_source_raw_count(&self) -> Option<i64> {
        self.delta_source_raw_count
    }

    /// `delta-source-raw-options` (e.g. dm-crypt options).
    pub fn delta_source_raw_options(&self) -> Option<&str> {
        self.delta_source_raw_options.as_deref()
    }

    /// `delta-source-fat-offset` (a block offset kept as a string).
    pub fn delta_source_fat_offset(&self) -> Option<&str> {
        self.delta_source_fat_offset.as_deref()
    }

    /// `delta-source-fat-path`.
    pub fn delta_source_fat_path(&self) -> Option<&str> {
        self.delta_source_fat_path.as_deref()
    }
}

/// A `task` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub(crate) name: String,
    pub(crate) requirements: Vec<FunctionCall>,
    pub(crate) require_partition1_offset: i64,
    pub(crate) require_unmounted_destination: bool,
    pub(crate) verify_on_the_fly: bool,
    pub(crate) on_init: Vec<FunctionCall>,
    pub(crate) on_finish: Vec<FunctionCall>,
    pub(crate) on_error: Vec<FunctionCall>,
    pub(crate) on_resources: Vec<OnResource>,
}

impl Task {
    /// The task name (`-t` selects the first task whose name starts with the prefix).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The requirements (`reqlist`), all of which must hold for the task to be chosen.
    pub fn requirements(&self) -> &[FunctionCall] {
        &self.requirements
    }

    /// `on-init` functions.
    pub fn on_init(&self) -> &[FunctionCall] {
        &self.on_init
    }

    /// `on-finish` functions.
    pub fn on_finish(&self) -> &[FunctionCall] {
        &self.on_finish
    }

    /// `on-error` functions.
    pub fn on_error(&self) -> &[FunctionCall] {
        &self.on_error
    }

    /// The `on-resource` handlers in meta.conf order.
    pub fn on_resources(&self) -> &[OnResource] {
        &self.on_resources
    }

    /// The `on-resource` handler for `resource`.
    pub fn on_resource(&self, resource: &str) -> Option<&OnResource> {
        self.on_resources.iter().find(|r| r.resource == resource)
    }

    /// Deprecated `require-partition1-offset`: `None` when unset or negative (fwup only
    /// checks values ≥ 0).
    pub fn require_partition1_offset(&self) -> Option<i64> {
        (self.require_partition1_offset >= 0).then_some(self.require_partition1_offset)
    }

    /// Deprecated `require-unmounted-destination`.
    pub fn require_unmounted_destination(&self) -> bool {
        self.require_unmounted_destination
    }

    /// Deprecated `verify-on-the-fly`.
    pub fn verify_on_the_fly(&self) -> bool {
        self.verify_on_the_fly
    }
}

/// A `partition "N"` section of an `mbr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrPartition {
    pub(crate) title: String,
    pub(crate) block_offset: Option<String>,
    pub(crate) block_count: i64,
    pub(crate) partition_type: i64,
    pub(crate) boot: bool,
    pub(crate) expand: bool,
}

impl MbrPartition {
    /// The section title: the partition number as written (`"0"`…`"3"` primary, more for
    /// logical partitions).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// `block-offset` (a string in fwup, to hold unsigned 32-bit values).
    pub fn block_offset(&self) -> Option<&str> {
        self.block_offset.as_deref()
    }

    /// `block-count` (fwup's default is `INT32_MAX`).
    pub fn block_count(&self) -> i64 {
        self.block_count
    }

    /// `type` (fwup's default is -1, meaning unset).
    pub fn partition_type(&self) -> i64 {
        self.partition_type
    }

    /// `boot`
    pub fn boot(&self) -> bool {
        self.boot
    }

    /// `expand`
    pub fn expand(&self) -> bool {
        self.expand
    }
}

/// An `osii "N"` section of an `mbr` (Intel Edison OSIP header entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrOsii {
    pub(crate) title: String,
    pub(crate) os_major: i64,
    pub(crate) os_minor: i64,
    pub(crate) start_block_offset: i64,
    pub(crate) ddr_load_address: i64,
    pub(crate) entry_point: i64,
    pub(crate) image_size_blocks: i64,
    pub(crate) attribute: i64,
}

impl MbrOsii {
    /// The section title (the OSII index as written).
    pub fn title(&self) -> &str {
        &self.title
    }
    /// `os-major` (default 0)
    pub fn os_major(&self) -> i64 {
        self.os_major
    }
    /// `os-minor` (default 0)
    pub fn os_minor(&self) -> i64 {
        self.os_minor
    }
    /// `start-block-offset` (default 0)
    pub fn start_block_offset(&self) -> i64 {
        self.start_block_offset
    }
    /// `ddr-load-address` (default 0)
    pub fn ddr_load_address(&self) -> i64 {
        self.ddr_load_address
    }
    /// `entry-point` (default 0)
    pub fn entry_point(&self) -> i64 {
        self.entry_point
    }
    /// `image-size-blocks` (default 0)
    pub fn image_size_blocks(&self) -> i64 {
        self.image_size_blocks
    }
    /// `attribute` (default 0xf)
    pub fn attribute(&self) -> i64 {
        self.attribute
    }
}

/// An `mbr` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    pub(crate) name: String,
    pub(crate) bootstrap_code: Option<String>,
    pub(crate) bootstrap_code_host_path: Option<String>,
    pub(crate) include_osip: bool,
    pub(crate) osip_major: i64,
    pub(crate) osip_minor: i64,
    pub(crate) osip_num_pointers: i64,
    pub(crate) signature: Option<String>,
    pub(crate) partitions: Vec<MbrPartition>,
    pub(crate) osiis: Vec<MbrOsii>,
}

impl Mbr {
    /// The section title (what `mbr_write(name)` refers to).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `bootstrap-code`: 440 bytes as 880 hex digits.
    pub fn bootstrap_code(&self) -> Option<&str> {
        self.bootstrap_code.as_deref()
    }
    /// `bootstrap-code-host-path` (creation only).
    pub fn bootstrap_code_host_path(&self) -> Option<&str> {
        self.bootstrap_code_host_path.as_deref()
    }
    /// `include-osip`
    pub fn include_osip(&self) -> bool {
        self.include_osip
    }
    /// `osip-major` (default 1)
    pub fn osip_major(&self) -> i64 {
        self.osip_major
    }
    /// `osip-minor` (default 0)
    pub fn osip_minor(&self) -> i64 {
        self.osip_minor
    }
    /// `osip-num-pointers` (default 1)
    pub fn osip_num_pointers(&self) -> i64 {
        self.osip_num_pointers
    }
    /// `signature`: the 32-bit disk identifier, kept as written (e.g. `0x12345678`).
    pub fn signature(&self) -> Option<&str> {
        self.signature.as_deref()
    }
    /// `partition` sections in meta.conf order.
    pub fn partitions(&self) -> &[MbrPartition] {
        &self.partitions
    }
    /// `osii` sections in meta.conf order.
    pub fn osiis(&self) -> &[MbrOsii] {
        &self.osiis
    }
}

/// A `partition "N"` section of a `gpt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    pub(crate) title: String,
    pub(crate) block_offset: Option<String>,
    pub(crate) block_count: i64,
    pub(crate) partition_type: Option<String>,
    pub(crate) guid: Option<String>,
    pub(crate) name: String,
    pub(crate) flags: String,
    pub(crate) expand: bool,
    pub(crate) boot: bool,
}

impl GptPartition {
    /// The section title (the partition index as written).
    pub fn title(&self) -> &str {
        &self.title
    }
    /// `block-offset` (kept as a string, as fwup does).
    pub fn block_offset(&self) -> Option<&str> {
        self.block_offset.as_deref()
    }
    /// `block-count` (fwup's default is `INT32_MAX`).
    pub fn block_count(&self) -> i64 {
        self.block_count
    }
    /// `type`: the partition type GUID.
    pub fn partition_type(&self) -> Option<&str> {
        self.partition_type.as_deref()
    }
    /// `guid`: the partition GUID.
    pub fn guid(&self) -> Option<&str> {
        self.guid.as_deref()
    }
    /// `name` (default empty).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `flags`: a 64-bit number kept as a string (default `"0"`).
    pub fn flags(&self) -> &str {
        &self.flags
    }
    /// `expand`
    pub fn expand(&self) -> bool {
        self.expand
    }
    /// `boot` (fwup folds it into `flags` bit 2 when creating).
    pub fn boot(&self) -> bool {
        self.boot
    }
}

/// A `gpt` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    pub(crate) name: String,
    pub(crate) guid: Option<String>,
    pub(crate) partitions: Vec<GptPartition>,
}

impl Gpt {
    /// The section title (what `gpt_write(name)` refers to).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `guid`: the disk GUID.
    pub fn guid(&self) -> Option<&str> {
        self.guid.as_deref()
    }
    /// `partition` sections in meta.conf order.
    pub fn partitions(&self) -> &[GptPartition] {
        &self.partitions
    }
}

/// A `uboot-environment` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbootEnvironment {
    pub(crate) name: String,
    pub(crate) block_offset: Option<String>,
    pub(crate) block_count: i64,
    pub(crate) block_offset_redund: Option<String>,
}

impl UbootEnvironment {
    /// The section title (what the `uboot_*` functions refer to).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `block-offset` (kept as a string, as fwup does).
    pub fn block_offset(&self) -> Option<&str> {
        self.block_offset.as_deref()
    }
    /// `block-count` (fwup's default is `INT32_MAX`; valid values are 1 to 65534).
    pub fn block_count(&self) -> i64 {
        self.block_count
    }
    /// `block-offset-redund`: the second copy of a redundant environment.
    pub fn block_offset_redund(&self) -> Option<&str> {
        self.block_offset_redund.as_deref()
    }
}

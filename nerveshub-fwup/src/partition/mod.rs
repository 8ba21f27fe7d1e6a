//! MBR and GPT partition tables as fwup's `mbr.c` and `gpt.c` build them: the checks fwup
//! makes on an `mbr`/`gpt` section when an archive is created (`create`), and the tables
//! `mbr_write`/`gpt_write` put on a destination (`apply`).

mod gpt;
mod mbr;

#[cfg(feature = "create")]
pub(crate) use gpt::verify_cfg as verify_gpt_cfg;
#[cfg(feature = "apply")]
pub(crate) use gpt::write_gpt;
#[cfg(feature = "create")]
pub(crate) use mbr::verify_cfg as verify_mbr_cfg;
#[cfg(feature = "apply")]
pub(crate) use mbr::{partition_offset, write_mbr};

/// Fixture loading shared by the tests of the partition and environment modules.
#[cfg(all(test, feature = "apply"))]
pub(crate) mod test_support {
    use std::io::Read;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
    }

    /// A recorded image, decompressed (`images/<name>.img.gz`).
    pub(crate) fn image(name: &str) -> Vec<u8> {
        let file = std::fs::File::open(fixtures().join(format!("images/{name}.img.gz"))).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    /// The meta.conf of a fixture group, parsed without variables.
    pub(crate) fn meta(group: &str) -> crate::MetaConf {
        let text = std::fs::read(fixtures().join(format!("expected/{group}/meta.conf"))).unwrap();
        crate::MetaConf::parse(&text, &crate::Variables::new()).unwrap()
    }

    /// Blocks `from..to` of `bytes`.
    pub(crate) fn blocks(bytes: &[u8], from: usize, to: usize) -> &[u8] {
        &bytes[from * 512..to * 512]
    }
}

//! meta.conf as fwup's `cfgprint.c` writes it when creating an archive.
//!
//! The rules (see `research/fwup.md` §2.2): one `key=value` per line without spaces or
//! indentation, options in the order of fwup's option table (not file order), unset
//! options, empty strings and values equal to their default left out, creation-only
//! options (`host-path`, `contents`, `assert-size-*`, `skip-holes`,
//! `bootstrap-code-host-path`) and computed ones (`meta-uuid`, `meta-nickname`,
//! `meta-creation-date`) scrubbed, empty sections dropped except `task`, strings quoted by
//! [`quote_value`], one-element lists printed as scalars. A document that prints as nothing
//! becomes `# Empty file\n`.

use super::model::{DEFAULT_BLOCK_COUNT, FunctionCall};
use super::{MetaConf, quote_value};

/// What fwup writes for a config that prints as nothing.
pub(crate) const EMPTY_META_CONF: &str = "# Empty file\n";

/// A string option: printed unless unset, empty, or equal to `default`.
fn str_opt(out: &mut String, name: &str, value: Option<&str>, default: Option<&str>) {
    let Some(v) = value else { return };
    if v.is_empty() || Some(v) == default {
        return;
    }
    out.push_str(name);
    out.push('=');
    out.push_str(&quote_value(v));
    out.push('\n');
}

fn int_opt(out: &mut String, name: &str, value: i64, default: i64) {
    if value != default {
        out.push_str(&format!("{name}={value}\n"));
    }
}

fn bool_opt(out: &mut String, name: &str, value: bool) {
    // Every boolean in fwup's table defaults to false.
    if value {
        out.push_str(name);
        out.push_str("=true\n");
    }
}

/// A string list (`funlist`, `reqlist`): nothing when empty, a scalar for one element.
fn str_list(out: &mut String, name: &str, items: &[String]) {
    match items {
        [] => {}
        [one] => str_opt(out, name, Some(one), None),
        _ => {
            out.push_str(name);
            out.push_str("={");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quote_value(item));
            }
            out.push_str("}\n");
        }
    }
}

/// `{argc,name,arg…,…}` as fwup's function callbacks record calls.
fn flatten(calls: &[FunctionCall]) -> Vec<String> {
    let mut list = Vec::new();
    for call in calls {
        list.push((call.args.len() + 1).to_string());
        list.push(call.name.clone());
        list.extend(call.args.iter().cloned());
    }
    list
}

/// Prints a section around what `body` writes; drops it when `body` writes nothing
/// (unless `keep_empty`, fwup's rule for `task`).
fn section(
    out: &mut String,
    name: &str,
    title: Option<&str>,
    keep_empty: bool,
    body: impl FnOnce(&mut String),
) {
    let start = out.len();
    match title {
        Some(t) => out.push_str(&format!("{name} \"{t}\" {{\n")),
        None => out.push_str(&format!("{name} {{\n")),
    }
    let before = out.len();
    body(out);
    if out.len() == before && !keep_empty {
        out.truncate(start);
    } else {
        out.push_str("}\n");
    }
}

/// Writes `conf` as fwup writes meta.conf into a new archive.
pub(crate) fn print_meta_conf(conf: &MetaConf) -> String {
    let mut out = String::new();
    let m = &conf.metadata;
    str_opt(&mut out, "meta-product", m.product.as_deref(), None);
    str_opt(&mut out, "meta-description", m.description.as_deref(), None);
    str_opt(&mut out, "meta-version", m.version.as_deref(), None);
    str_opt(&mut out, "meta-author", m.author.as_deref(), None);
    str_opt(&mut out, "meta-platform", m.platform.as_deref(), None);
    str_opt(
        &mut out,
        "meta-architecture",
        m.architecture.as_deref(),
        None,
    );
    str_opt(
        &mut out,
        "meta-fwup-version",
        m.fwup_version.as_deref(),
        None,
    );
    str_opt(
        &mut out,
        "meta-vcs-identifier",
        m.vcs_identifier.as_deref(),
        None,
    );
    str_opt(&mut out, "meta-misc", m.misc.as_deref(), None);
    str_opt(
        &mut out,
        "require-fwup-version",
        conf.require_fwup_version.as_deref(),
        Some("0"),
    );
    int_opt(&mut out, "block-cache-size-mb", conf.block_cache_size_mb, 8);

    for r in &conf.resources {
        section(&mut out, "file-resource", Some(&r.name), false, |out| {
            match r.length.as_slice() {
                [] | [0] => {}
                [one] => out.push_str(&format!("length={one}\n")),
                runs => {
                    let parts: Vec<String> = runs.iter().map(u64::to_string).collect();
                    out.push_str(&format!("length={{{}}}\n", parts.join(",")));
                }
            }
            str_opt(out, "blake2b-256", r.blake2b_256.as_deref(), None);
            str_opt(out, "sha256", r.sha256.as_deref(), None);
        });
    }
    for mbr in &conf.mbrs {
        section(&mut out, "mbr", Some(&mbr.name), false, |out| {
            str_opt(out, "bootstrap-code", mbr.bootstrap_code.as_deref(), None);
            bool_opt(out, "include-osip", mbr.include_osip);
            int_opt(out, "osip-major", mbr.osip_major, 1);
            int_opt(out, "osip-minor", mbr.osip_minor, 0);
            int_opt(out, "osip-num-pointers", mbr.osip_num_pointers, 1);
            str_opt(out, "signature", mbr.signature.as_deref(), None);
            for p in &mbr.partitions {
                section(out, "partition", Some(&p.title), false, |out| {
                    str_opt(out, "block-offset", p.block_offset.as_deref(), None);
                    int_opt(out, "block-count", p.block_count, DEFAULT_BLOCK_COUNT);
                    int_opt(out, "type", p.partition_type, -1);
                    bool_opt(out, "boot", p.boot);
                    bool_opt(out, "expand", p.expand);
                });
            }
            for o in &mbr.osiis {
                section(out, "osii", Some(&o.title), false, |out| {
                    int_opt(out, "os-major", o.os_major, 0);
                    int_opt(out, "os-minor", o.os_minor, 0);
                    int_opt(out, "start-block-offset", o.start_block_offset, 0);
                    int_opt(out, "ddr-load-address", o.ddr_load_address, 0);
                    int_opt(out, "entry-point", o.entry_point, 0);
                    int_opt(out, "image-size-blocks", o.image_size_blocks, 0);
                    int_opt(out, "attribute", o.attribute, 0xf);
                });
            }
        });
    }
    for gpt in &conf.gpts {
        section(&mut out, "gpt", Some(&gpt.name), false, |out| {
            str_opt(out, "guid", gpt.guid.as_deref(), None);
            for p in &gpt.partitions {
                section(out, "partition", Some(&p.title), false, |out| {
                    str_opt(out, "block-offset", p.block_offset.as_deref(), None);
                    int_opt(out, "block-count", p.block_count, DEFAULT_BLOCK_COUNT);
                    str_opt(out, "type", p.partition_type.as_deref(), None);
                    str_opt(out, "guid", p.guid.as_deref(), None);
                    str_opt(out, "name", Some(&p.name), Some(""));
                    str_opt(out, "flags", Some(&p.flags), Some("0"));
                    bool_opt(out, "expand", p.expand);
                    bool_opt(out, "boot", p.boot);
                });
            }
        });
    }
    for task in &conf.tasks {
        section(&mut out, "task", Some(&task.name), true, |out| {
            str_list(out, "reqlist", &flatten(&task.requirements));
            int_opt(
                out,
                "require-partition1-offset",
                task.require_partition1_offset,
                -1,
            );
            bool_opt(
                out,
                "require-unmounted-destination",
                task.require_unmounted_destination,
            );
            bool_opt(out, "verify-on-the-fly", task.verify_on_the_fly);
            for (name, calls) in [
                ("on-init", &task.on_init),
                ("on-finish", &task.on_finish),
                ("on-error", &task.on_error),
            ] {
                section(out, name, None, false, |out| {
                    str_list(out, "funlist", &flatten(calls));
                });
            }
            for r in &task.on_resources {
                section(out, "on-resource", Some(&r.resource), false, |out| {
                    bool_opt(out, "verify-on-the-fly", r.verify_on_the_fly);
                    let o = |out: &mut String, name: &str, v: &Option<String>| {
                        str_opt(out, name, v.as_deref(), None)
                    };
                    o(out, "delta-source-raw-offset", &r.delta_source_raw_offset);
                    if let Some(count) = r.delta_source_raw_count {
                        int_opt(out, "delta-source-raw-count", count, DEFAULT_BLOCK_COUNT);
                    }
                    o(out, "delta-source-raw-options", &r.delta_source_raw_options);
                    o(out, "delta-source-fat-offset", &r.delta_source_fat_offset);
                    o(out, "delta-source-fat-path", &r.delta_source_fat_path);
                    str_list(out, "funlist", &flatten(&r.functions));
                });
            }
        });
    }
    for u in &conf.uboot_environments {
        section(&mut out, "uboot-environment", Some(&u.name), false, |out| {
            str_opt(out, "block-offset", u.block_offset.as_deref(), None);
            int_opt(out, "block-count", u.block_count, DEFAULT_BLOCK_COUNT);
            str_opt(
                out,
                "block-offset-redund",
                u.block_offset_redund.as_deref(),
                None,
            );
        });
    }
    if out.is_empty() {
        out.push_str(EMPTY_META_CONF);
    }
    out
}

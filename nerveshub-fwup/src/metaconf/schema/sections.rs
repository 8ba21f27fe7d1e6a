//! The per-section builders: each section type's options turned into its model struct.

use super::super::lexer::Token;
use super::super::model::{
    DEFAULT_BLOCK_COUNT, Gpt, GptPartition, Mbr, MbrOsii, MbrPartition, OnResource, Resource, Task,
    UbootEnvironment,
};
use super::super::syntax::{Section, syntax_error};
use super::super::values::{VersionCheck, check_required_version};
use super::{
    Entry, Parsed, RawList, Res, append_call, bool_value, event_kind, gpt_kind, gpt_partition_kind,
    int_value, mbr_kind, mbr_partition_kind, on_resource_kind, osii_kind, resource_kind, task_kind,
    title_of, top_kind, uboot_kind, walk,
};

/// Applies the whole option table to the document root.
pub(crate) fn build(tokens: &[Token], root: &Section) -> Res<Parsed> {
    let mut p = Parsed {
        block_cache_size_mb: 8,
        ..Parsed::default()
    };
    walk(tokens, root, top_kind, |entry| {
        match entry {
            Entry::Scalar("block-cache-size-mb", v) => {
                p.block_cache_size_mb = int_value("block-cache-size-mb", v)?
            }
            Entry::Scalar(name, v) => {
                let value = Some(v.text.clone());
                let m = &mut p.metadata;
                match name {
                    "meta-product" => m.product = value,
                    "meta-description" => m.description = value,
                    "meta-version" => m.version = value,
                    "meta-author" => m.author = value,
                    "meta-platform" => m.platform = value,
                    "meta-architecture" => m.architecture = value,
                    "meta-creation-date" => m.creation_date = value,
                    "meta-fwup-version" => m.fwup_version = value,
                    "meta-vcs-identifier" => m.vcs_identifier = value,
                    "meta-misc" => m.misc = value,
                    "meta-uuid" | "meta-nickname" => p.sets_reserved_metadata = true,
                    "require-fwup-version" => {
                        match check_required_version(&v.text, crate::FWUP_VERSION) {
                            VersionCheck::Satisfied => {}
                            VersionCheck::TooNew => {
                                return Err(crate::Error::MetaConf(
                                    crate::MetaConfError::RequiresNewerFwup {
                                        required: v.text.clone(),
                                        implemented: crate::FWUP_VERSION,
                                    },
                                )
                                .into());
                            }
                            VersionCheck::Invalid => {
                                let msg = format!(
                                    "Invalid version '{}' passed to require-fwup-version",
                                    v.text
                                );
                                return Err(syntax_error(v.line, msg).into());
                            }
                        }
                        p.require_fwup_version = value;
                    }
                    _ => {}
                }
            }
            Entry::Call(call) => {
                // define/define! are handled while parsing; the others need the file system
                // or are not supported when reading.
                let msg = format!("'{}' is not supported when reading meta.conf", call.name);
                return Err(syntax_error(call.close_line, msg).into());
            }
            Entry::Section(sec) => match sec.name.as_str() {
                "file-resource" => p.resources.push(resource(tokens, sec)?),
                "mbr" => p.mbrs.push(mbr(tokens, sec)?),
                "gpt" => p.gpts.push(gpt(tokens, sec)?),
                "task" => p.tasks.push(task(tokens, sec)?),
                "uboot-environment" => p.uboot_environments.push(uboot(tokens, sec)?),
                _ => {}
            },
            Entry::List(..) => {}
        }
        Ok(())
    })?;
    Ok(p)
}

#[cfg(feature = "create")]
/// The model of one `mbr` section, for fwup's create-time validator; `None` when the
/// section has an error the whole-file pass reports.
pub(crate) fn mbr_of(tokens: &[Token], sec: &Section) -> Option<Mbr> {
    mbr(tokens, sec).ok()
}

#[cfg(feature = "create")]
/// The model of one `gpt` section, as [`mbr_of`].
pub(crate) fn gpt_of(tokens: &[Token], sec: &Section) -> Option<Gpt> {
    gpt(tokens, sec).ok()
}

#[cfg(feature = "create")]
/// The model of one `uboot-environment` section, as [`mbr_of`].
pub(crate) fn uboot_of(tokens: &[Token], sec: &Section) -> Option<UbootEnvironment> {
    uboot(tokens, sec).ok()
}

fn resource(tokens: &[Token], sec: &Section) -> Res<Resource> {
    let name = title_of(sec);
    let mut r = Resource {
        name,
        length: Vec::new(),
        blake2b_256: None,
        sha256: None,
        host_path: None,
        contents: None,
        skip_holes: false,
        assert_size_lte: -1,
        assert_size_gte: -1,
    };
    walk(tokens, sec, resource_kind, |entry| {
        match entry {
            Entry::Scalar(name, v) => match name {
                "host-path" => r.host_path = Some(v.text.clone()),
                "contents" => r.contents = Some(v.text.clone()),
                "blake2b-256" => r.blake2b_256 = Some(v.text.clone()),
                "sha256" => r.sha256 = Some(v.text.clone()),
                "skip-holes" => r.skip_holes = bool_value(name, v)?,
                "assert-size-lte" => r.assert_size_lte = int_value(name, v)?,
                "assert-size-gte" => r.assert_size_gte = int_value(name, v)?,
                _ => {}
            },
            Entry::List("length", append, values) => {
                if !append {
                    r.length.clear();
                }
                for v in values {
                    let n = int_value("length", v)?;
                    let Ok(n) = u64::try_from(n) else {
                        let msg = format!("negative length for file-resource '{}'", r.name);
                        return Err(syntax_error(v.line, msg).into());
                    };
                    r.length.push(n);
                }
            }
            Entry::Call(call) => {
                let mut ignored = Vec::new();
                append_call(&mut ignored, call)?;
            }
            Entry::List(..) | Entry::Section(_) => {}
        }
        Ok(())
    })?;
    Ok(r)
}

fn mbr(tokens: &[Token], sec: &Section) -> Res<Mbr> {
    let mut m = Mbr {
        name: title_of(sec),
        bootstrap_code: None,
        bootstrap_code_host_path: None,
        include_osip: false,
        osip_major: 1,
        osip_minor: 0,
        osip_num_pointers: 1,
        signature: None,
        partitions: Vec::new(),
        osiis: Vec::new(),
    };
    walk(tokens, sec, mbr_kind, |entry| {
        match entry {
            Entry::Scalar(name, v) => match name {
                "bootstrap-code-host-path" => m.bootstrap_code_host_path = Some(v.text.clone()),
                "bootstrap-code" => m.bootstrap_code = Some(v.text.clone()),
                "signature" => m.signature = Some(v.text.clone()),
                "include-osip" => m.include_osip = bool_value(name, v)?,
                "osip-major" => m.osip_major = int_value(name, v)?,
                "osip-minor" => m.osip_minor = int_value(name, v)?,
                "osip-num-pointers" => m.osip_num_pointers = int_value(name, v)?,
                _ => {}
            },
            Entry::Section(s) if s.name == "partition" => {
                m.partitions.push(mbr_partition(tokens, s)?)
            }
            Entry::Section(s) => m.osiis.push(osii(tokens, s)?),
            Entry::List(..) | Entry::Call(_) => {}
        }
        Ok(())
    })?;
    Ok(m)
}

fn mbr_partition(tokens: &[Token], sec: &Section) -> Res<MbrPartition> {
    let mut p = MbrPartition {
        title: title_of(sec),
        block_offset: None,
        block_count: DEFAULT_BLOCK_COUNT,
        partition_type: -1,
        boot: false,
        expand: false,
    };
    walk(tokens, sec, mbr_partition_kind, |entry| {
        if let Entry::Scalar(name, v) = entry {
            match name {
                "block-offset" => p.block_offset = Some(v.text.clone()),
                "block-count" => p.block_count = int_value(name, v)?,
                "type" => p.partition_type = int_value(name, v)?,
                "boot" => p.boot = bool_value(name, v)?,
                "expand" => p.expand = bool_value(name, v)?,
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(p)
}

fn osii(tokens: &[Token], sec: &Section) -> Res<MbrOsii> {
    let mut o = MbrOsii {
        title: title_of(sec),
        os_major: 0,
        os_minor: 0,
        start_block_offset: 0,
        ddr_load_address: 0,
        entry_point: 0,
        image_size_blocks: 0,
        attribute: 0xf,
    };
    walk(tokens, sec, osii_kind, |entry| {
        if let Entry::Scalar(name, v) = entry {
            let slot = match name {
                "os-major" => &mut o.os_major,
                "os-minor" => &mut o.os_minor,
                "start-block-offset" => &mut o.start_block_offset,
                "ddr-load-address" => &mut o.ddr_load_address,
                "entry-point" => &mut o.entry_point,
                "image-size-blocks" => &mut o.image_size_blocks,
                "attribute" => &mut o.attribute,
                _ => return Ok(()),
            };
            *slot = int_value(name, v)?;
        }
        Ok(())
    })?;
    Ok(o)
}

fn gpt(tokens: &[Token], sec: &Section) -> Res<Gpt> {
    let mut g = Gpt {
        name: title_of(sec),
        guid: None,
        partitions: Vec::new(),
    };
    walk(tokens, sec, gpt_kind, |entry| {
        match entry {
            Entry::Scalar("guid", v) => g.guid = Some(v.text.clone()),
            Entry::Section(s) => g.partitions.push(gpt_partition(tokens, s)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(g)
}

fn gpt_partition(tokens: &[Token], sec: &Section) -> Res<GptPartition> {
    let mut p = GptPartition {
        title: title_of(sec),
        block_offset: None,
        block_count: DEFAULT_BLOCK_COUNT,
        partition_type: None,
        guid: None,
        name: String::new(),
        flags: "0".into(),
        expand: false,
        boot: false,
    };
    walk(tokens, sec, gpt_partition_kind, |entry| {
        if let Entry::Scalar(name, v) = entry {
            match name {
                "block-offset" => p.block_offset = Some(v.text.clone()),
                "block-count" => p.block_count = int_value(name, v)?,
                "type" => p.partition_type = Some(v.text.clone()),
                "guid" => p.guid = Some(v.text.clone()),
                "name" => p.name = v.text.clone(),
                "flags" => p.flags = v.text.clone(),
                "expand" => p.expand = bool_value(name, v)?,
                "boot" => p.boot = bool_value(name, v)?,
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(p)
}

fn uboot(tokens: &[Token], sec: &Section) -> Res<UbootEnvironment> {
    let mut u = UbootEnvironment {
        name: title_of(sec),
        block_offset: None,
        block_count: DEFAULT_BLOCK_COUNT,
        block_offset_redund: None,
    };
    walk(tokens, sec, uboot_kind, |entry| {
        if let Entry::Scalar(name, v) = entry {
            match name {
                "block-offset" => u.block_offset = Some(v.text.clone()),
                "block-offset-redund" => u.block_offset_redund = Some(v.text.clone()),
                "block-count" => u.block_count = int_value(name, v)?,
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(u)
}

fn task(tokens: &[Token], sec: &Section) -> Res<Task> {
    let mut t = Task {
        name: title_of(sec),
        requirements: Vec::new(),
        require_partition1_offset: -1,
        require_unmounted_destination: false,
        verify_on_the_fly: false,
        on_init: Vec::new(),
        on_finish: Vec::new(),
        on_error: Vec::new(),
        on_resources: Vec::new(),
    };
    let mut reqlist = RawList {
        line: sec.open_line,
        ..RawList::default()
    };
    // on-init/on-finish/on-error are single sections: a repeated one continues the first,
    // as libconfuse reuses the section.
    let mut events: [RawList; 3] = Default::default();
    walk(tokens, sec, task_kind, |entry| {
        if reqlist.entry(&entry, "reqlist")? {
            return Ok(());
        }
        match entry {
            Entry::Scalar(name, v) => match name {
                "require-partition1-offset" => t.require_partition1_offset = int_value(name, v)?,
                "require-unmounted-destination" => {
                    t.require_unmounted_destination = bool_value(name, v)?
                }
                "verify-on-the-fly" => t.verify_on_the_fly = bool_value(name, v)?,
                _ => {}
            },
            Entry::Section(s) if s.name == "on-resource" => {
                t.on_resources.push(on_resource(tokens, s)?)
            }
            Entry::Section(s) => {
                let index = match s.name.as_str() {
                    "on-init" => 0,
                    "on-finish" => 1,
                    _ => 2,
                };
                let raw = &mut events[index];
                if raw.line == 0 {
                    raw.line = s.open_line;
                }
                walk(tokens, s, event_kind, |entry| {
                    raw.entry(&entry, "funlist").map(|_| ())
                })?;
            }
            Entry::List(..) | Entry::Call(_) => {}
        }
        Ok(())
    })?;
    t.requirements = reqlist.decode("reqlist")?;
    let [init, finish, error] = &events;
    t.on_init = init.decode("funlist")?;
    t.on_finish = finish.decode("funlist")?;
    t.on_error = error.decode("funlist")?;
    Ok(t)
}

fn on_resource(tokens: &[Token], sec: &Section) -> Res<OnResource> {
    let mut r = OnResource {
        resource: title_of(sec),
        functions: Vec::new(),
        verify_on_the_fly: false,
        delta_source_raw_offset: None,
        delta_source_raw_count: None,
        delta_source_raw_options: None,
        delta_source_fat_offset: None,
        delta_source_fat_path: None,
    };
    let mut funlist = RawList {
        line: sec.open_line,
        ..RawList::default()
    };
    walk(tokens, sec, on_resource_kind, |entry| {
        if funlist.entry(&entry, "funlist")? {
            return Ok(());
        }
        if let Entry::Scalar(name, v) = entry {
            let text = Some(v.text.clone());
            match name {
                "verify-on-the-fly" => r.verify_on_the_fly = bool_value(name, v)?,
                "delta-source-raw-offset" => r.delta_source_raw_offset = text,
                "delta-source-raw-count" => r.delta_source_raw_count = Some(int_value(name, v)?),
                "delta-source-raw-options" => r.delta_source_raw_options = text,
                "delta-source-fat-offset" => r.delta_source_fat_offset = text,
                "delta-source-fat-path" => r.delta_source_fat_path = text,
                _ => {}
            }
        }
        Ok(())
    })?;
    r.functions = funlist.decode("funlist")?;
    Ok(r)
}

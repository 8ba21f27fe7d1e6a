//! fwup's create-time check that every name in a fwup.conf is known.

use super::*;

/// fwup creates archives without `CFGF_IGNORE_UNKNOWN`: every option, function and section
/// name must be in the option table (`no such option 'X'`).
pub(crate) fn check_known_names(root: &Section) -> crate::Result<()> {
    check_section_names(root, Table::Top)
}

/// The option tables, for walking the tree without the read-time leniency.
#[derive(Debug, Clone, Copy)]
enum Table {
    Top,
    Resource,
    Mbr,
    MbrPartition,
    Osii,
    Gpt,
    GptPartition,
    Uboot,
    Task,
    Event,
    OnResource,
}

impl Table {
    fn kind(self, name: &str) -> Option<Kind> {
        match self {
            Table::Top => top_kind(name),
            Table::Resource => resource_kind(name),
            Table::Mbr => mbr_kind(name),
            Table::MbrPartition => mbr_partition_kind(name),
            Table::Osii => osii_kind(name),
            Table::Gpt => gpt_kind(name),
            Table::GptPartition => gpt_partition_kind(name),
            Table::Uboot => uboot_kind(name),
            Table::Task => task_kind(name),
            Table::Event => event_kind(name),
            Table::OnResource => on_resource_kind(name),
        }
    }

    fn child(self, name: &str) -> Table {
        match (self, name) {
            (Table::Top, "file-resource") => Table::Resource,
            (Table::Top, "mbr") => Table::Mbr,
            (Table::Top, "gpt") => Table::Gpt,
            (Table::Top, "uboot-environment") => Table::Uboot,
            (Table::Top, _) => Table::Task,
            (Table::Mbr, "partition") => Table::MbrPartition,
            (Table::Mbr, _) => Table::Osii,
            (Table::Gpt, _) => Table::GptPartition,
            (_, "on-resource") => Table::OnResource,
            _ => Table::Event,
        }
    }
}

fn check_section_names(section: &Section, table: Table) -> crate::Result<()> {
    for item in &section.items {
        let (name, line) = match item {
            Item::Option(o) => (&o.name, o.op_line),
            Item::Call(c) => (&c.name, c.open_line),
            Item::Section(s) => (&s.name, s.open_line),
        };
        // "__unknown" is only a catch-all when reading.
        if name == "__unknown" || table.kind(name).is_none() {
            return Err(syntax_error(line, format!("no such option '{name}'")));
        }
        if let Item::Section(s) = item {
            check_section_names(s, table.child(name))?;
        }
    }
    Ok(())
}

//! The recorded A/B chain (blank → complete → upgrade → upgrade) through the library API,
//! with fwup's images byte for byte, and a veto before `on-finish` that must leave the
//! active slot as it was.

mod common;

use common::{fixture, image};

use nerveshub_fwup::{ApplyError, ApplyEvents, ApplyOptions, Error, MemoryTarget, apply};

fn ab_fw() -> Vec<u8> {
    fixture("fw/ab.fw")
}

#[derive(Default)]
struct Events {
    task: String,
    infos: Vec<String>,
    veto: bool,
}

impl ApplyEvents for Events {
    fn task_selected(&mut self, task: &str) {
        self.task = task.to_owned();
    }
    fn info(&mut self, message: &str) {
        self.infos.push(message.to_owned());
    }
    fn before_finish(&mut self) -> Result<(), String> {
        if self.veto {
            Err("download SHA-256 mismatch".to_owned())
        } else {
            Ok(())
        }
    }
}

fn step(target: &mut MemoryTarget, task: &str, veto: bool) -> (Result<(), Error>, Events) {
    let mut events = Events {
        veto,
        ..Events::default()
    };
    let result = apply(&ab_fw()[..], target, &ApplyOptions::new(task), &mut events).map(|_| ());
    (result, events)
}

#[test]
fn ab_chain_matches_fwup() {
    let mut target = MemoryTarget::new();
    let (result, events) = step(&mut target, "upgrade", false);
    assert_eq!(
        result.unwrap_err().to_string(),
        "no upgrade task matched this device"
    );
    assert_eq!(events.task, "upgrade.unmatched");
    assert_eq!(events.infos, ["upgrade.unmatched: on-error ran"]);
    assert!(target.as_bytes().is_empty());

    let (result, events) = step(&mut target, "complete", false);
    result.unwrap();
    assert_eq!(events.infos, ["ab complete: wrote slot a"]);
    assert_eq!(target.as_bytes(), image("ab--step1-complete").as_slice());

    let (result, events) = step(&mut target, "upgrade", false);
    result.unwrap();
    assert_eq!(events.task, "upgrade.b");
    assert_eq!(target.as_bytes(), image("ab--step2-upgrade").as_slice());

    let (result, events) = step(&mut target, "upgrade", false);
    result.unwrap();
    assert_eq!(events.task, "upgrade.a");
    assert_eq!(target.as_bytes(), image("ab--step3-upgrade").as_slice());
}

#[test]
fn a_veto_before_on_finish_keeps_the_active_slot() {
    let before = image("ab--step2-upgrade");
    let mut target = MemoryTarget::from_bytes(before.clone());
    let (result, events) = step(&mut target, "upgrade", true);
    assert!(matches!(result, Err(Error::Apply(ApplyError::Vetoed(_)))));
    assert_eq!(events.task, "upgrade.a");
    // MBR (block 0) and both environment copies (blocks 16–47) are untouched, so slot b
    // stays active; here even the slot data was still cached, so nothing changed at all.
    assert_eq!(target.as_bytes(), before.as_slice());

    // Without the veto the same upgrade switches to slot a.
    let (result, _) = step(&mut target, "upgrade", false);
    result.unwrap();
    assert_eq!(target.as_bytes(), image("ab--step3-upgrade").as_slice());
}

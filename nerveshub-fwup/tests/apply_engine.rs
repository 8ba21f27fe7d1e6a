//! The apply engine through its library API: recorded fwup archives and images, and small
//! archives built here to reach each function, requirement and failure.

mod common;

use common::{fixture, image};

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use blake2::digest::Digest as _;
use nerveshub_fwup::{
    ApplyError, ApplyEvents, ApplyOptions, Error, Host, HostSink, MemoryTarget, Progress,
    PublicKey, SignatureError, Target, apply, apply_with_host,
};

/// Records what the engine reports.
#[derive(Default)]
struct Recorder {
    task: Option<String>,
    infos: Vec<String>,
    progress: Vec<Progress>,
    veto: Option<String>,
    finish_asked: bool,
}

impl ApplyEvents for Recorder {
    fn task_selected(&mut self, task: &str) {
        self.task = Some(task.to_owned());
    }
    fn progress(&mut self, progress: Progress) {
        self.progress.push(progress);
    }
    fn info(&mut self, message: &str) {
        self.infos.push(message.to_owned());
    }
    fn before_finish(&mut self) -> Result<(), String> {
        self.finish_asked = true;
        self.veto.clone().map_or(Ok(()), Err)
    }
}

/// Builds an archive: meta.conf gets one `file-resource` per resource (with its length and
/// hash) followed by `tasks`.
fn archive(resources: &[(&str, &[u8])], tasks: &str) -> Vec<u8> {
    let mut meta = String::new();
    for (name, data) in resources {
        let hash: String = blake2::Blake2b256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        meta.push_str(&format!(
            "file-resource \"{name}\" {{\nlength={}\nblake2b-256=\"{hash}\"\n}}\n",
            data.len()
        ));
    }
    meta.push_str(tasks);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("meta.conf", options).unwrap();
    zip.write_all(meta.as_bytes()).unwrap();
    for (name, data) in resources {
        zip.start_file(format!("data/{name}"), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn run(fw: &[u8], task: &str, target: &mut MemoryTarget) -> Result<Recorder, Error> {
    let mut events = Recorder::default();
    apply(fw, target, &ApplyOptions::new(task), &mut events)?;
    Ok(events)
}

#[test]
fn simple_archive_gives_fwups_image() {
    let mut target = MemoryTarget::new();
    let events = run(&fixture("fw/simple.fw"), "comp", &mut target).unwrap();
    assert_eq!(events.task.as_deref(), Some("complete"));
    assert_eq!(
        target.as_bytes(),
        image("simple--apply-complete").as_slice()
    );
    let last = events.progress.last().unwrap();
    assert_eq!(last.done, last.total);
    assert!(events.progress.windows(2).all(|w| w[0].done <= w[1].done));
    assert!(events.finish_asked);
}

#[test]
fn multi_and_sparse_archives_give_fwups_images() {
    let mut target = MemoryTarget::new();
    let events = run(&fixture("fw/multi.fw"), "complete", &mut target).unwrap();
    assert_eq!(events.infos, ["multi: on-init", "multi: on-finish"]);
    assert_eq!(target.as_bytes(), image("multi--apply-complete").as_slice());

    for task in ["complete", "dense"] {
        let mut target = MemoryTarget::new();
        run(&fixture("fw/sparse.fw"), task, &mut target).unwrap();
        assert_eq!(
            target.as_bytes(),
            image("sparse--apply-complete").as_slice()
        );
    }
}

#[test]
fn an_existing_image_is_not_truncated() {
    let mut target = MemoryTarget::from_bytes(vec![0xee; 600_000]);
    run(&fixture("fw/simple.fw"), "complete", &mut target).unwrap();
    let bytes = target.as_bytes();
    assert_eq!(bytes.len(), 600_000);
    assert!(bytes[..131_072].iter().all(|b| *b == 0xee));
    assert_eq!(
        &bytes[131_072..196_608],
        fixture("data/rootfs.img").as_slice()
    );
    assert!(bytes[196_608..].iter().all(|b| *b == 0xee));
}

#[test]
fn signature_is_checked_before_anything_is_written() {
    let key =
        PublicKey::from_file_contents(&fixture("keys/other-key.pub"), "other-key.pub").unwrap();
    let mut options = ApplyOptions::new("complete");
    options.public_keys = vec![key];
    let mut target = MemoryTarget::new();
    let err = apply(
        &fixture("fw/simple-signed.fw")[..],
        &mut target,
        &options,
        &mut (),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Signature(SignatureError::Bad)));
    assert!(target.as_bytes().is_empty());

    let good =
        PublicKey::from_file_contents(&fixture("keys/fwup-key.pub"), "fwup-key.pub").unwrap();
    options.public_keys = vec![good];
    apply(
        &fixture("fw/simple-signed.fw")[..],
        &mut target,
        &options,
        &mut (),
    )
    .unwrap();
    assert_eq!(
        target.as_bytes(),
        image("simple--apply-complete").as_slice()
    );
}

#[test]
fn corrupted_data_fails_and_cached_writes_are_dropped() {
    let mut target = MemoryTarget::new();
    let err = run(
        &fixture("corrupt/data-modified-repacked.fw"),
        "complete",
        &mut target,
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "raw_write detected blake2b mismatch on 'rootfs.img'"
    );
    assert!(target.as_bytes().is_empty());
}

#[test]
fn unknown_function_fails_before_on_init() {
    let fw = archive(
        &[("a.bin", b"abc")],
        "task t {\non-init { funlist = {\"4\", \"raw_memset\", \"0\", \"1\", \"1\"} }\n\
         on-resource a.bin { funlist = {\"1\", \"no_such_function\"} }\n}\n",
    );
    let mut target = MemoryTarget::new();
    let err = run(&fw, "t", &mut target).err().unwrap();
    assert!(
        matches!(err, Error::Apply(ApplyError::UnknownFunction(ref name)) if name == "no_such_function"),
        "{err:?}"
    );
    assert!(target.as_bytes().is_empty());
}

#[test]
fn no_matching_task_is_reported_like_fwup() {
    let mut target = MemoryTarget::new();
    let err = run(&fixture("fw/simple.fw"), "upgrade", &mut target)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "Couldn't find applicable task 'upgrade'. If task is available, the task's requirements may not be met."
    );
}

#[test]
fn raw_write_pads_the_last_block_and_memset_fills() {
    let data = [7u8; 700];
    let fw = archive(
        &[("a.bin", &data)],
        "task t {\non-init { funlist = {\"4\", \"raw_memset\", \"0\", \"2\", \"0x5a\"} }\n\
         on-resource a.bin { funlist = {\"2\", \"raw_write\", \"1\"} }\n}\n",
    );
    // An existing image of 0xff shows the padding.
    let mut target = MemoryTarget::from_bytes(vec![0xff; 4096]);
    run(&fw, "t", &mut target).unwrap();
    let bytes = target.as_bytes();
    assert!(bytes[..512].iter().all(|b| *b == 0x5a));
    assert!(bytes[512..1212].iter().all(|b| *b == 7));
    assert!(bytes[1212..1536].iter().all(|b| *b == 0), "zero padding");
    assert!(bytes[1536..4096].iter().all(|b| *b == 0xff));
    assert_eq!(
        bytes.len(),
        131_072,
        "the segment is completed and written whole"
    );
}

#[test]
fn a_second_consumer_finds_no_data() {
    let fw = archive(
        &[("a.bin", b"abc")],
        "task t {\non-resource a.bin { funlist = {\"2\", \"raw_write\", \"0\", \"2\", \"raw_write\", \"8\"} }\n}\n",
    );
    let err = run(&fw, "t", &mut MemoryTarget::new()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "raw_write didn't write anything and was likely called twice"
    );
}

#[test]
fn error_runs_on_error_and_keeps_its_writes() {
    let fw = archive(
        &[],
        "task t {\non-init { funlist = {\"4\", \"raw_memset\", \"0\", \"1\", \"1\", \"2\", \"error\", \"boom\"} }\n\
         on-error { funlist = {\"4\", \"raw_memset\", \"8\", \"1\", \"2\", \"2\", \"info\", \"cleanup\"} }\n}\n",
    );
    let mut target = MemoryTarget::new();
    let mut events = Recorder::default();
    let err = apply(&fw[..], &mut target, &ApplyOptions::new("t"), &mut events).unwrap_err();
    assert_eq!(err.to_string(), "boom");
    assert_eq!(events.infos, ["cleanup"]);
    let bytes = target.as_bytes();
    assert_eq!(bytes.len(), 131_072);
    assert!(
        bytes[..512].iter().all(|b| *b == 0),
        "on-init's write dropped"
    );
    assert!(
        bytes[4096..4608].iter().all(|b| *b == 2),
        "on-error's write kept"
    );
}

#[test]
fn a_veto_stops_before_on_finish() {
    let fw = archive(
        &[("a.bin", &[3u8; 1024])],
        "task t {\non-resource a.bin { funlist = {\"2\", \"raw_write\", \"0\"} }\n\
         on-finish { funlist = {\"4\", \"raw_memset\", \"16\", \"1\", \"9\"} }\n\
         on-error { funlist = {\"2\", \"info\", \"vetoed\"} }\n}\n",
    );
    let mut target = MemoryTarget::new();
    let mut events = Recorder {
        veto: Some("download hash mismatch".to_owned()),
        ..Recorder::default()
    };
    let err = apply(&fw[..], &mut target, &ApplyOptions::new("t"), &mut events).unwrap_err();
    assert!(
        matches!(err, Error::Apply(ApplyError::Vetoed(ref why)) if why == "download hash mismatch")
    );
    assert_eq!(events.infos, ["vetoed"]);
    assert!(
        target.as_bytes().is_empty(),
        "nothing flushed, on-finish never ran"
    );
}

#[test]
fn max_size_is_a_hard_end() {
    let mut target = MemoryTarget::with_size(51_200).unwrap();
    let err = run(&fixture("fw/simple.fw"), "complete", &mut target)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "read/write failed at offset 131072 since past end of media (51200)."
    );
    assert!(target.as_bytes().iter().all(|b| *b == 0));
}

#[test]
fn missing_on_resource_and_unsupported_functions() {
    let fw = archive(
        &[],
        "file-resource gone.bin { length=1 blake2b-256=\"0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8\" }\n\
         task t {\non-resource gone.bin { funlist = {\"2\", \"raw_write\", \"0\"} }\n}\n",
    );
    let err = run(&fw, "t", &mut MemoryTarget::new()).err().unwrap();
    assert_eq!(err.to_string(), "Resource gone.bin not found in archive");

    // FAT functions are supported now: a missing block count is a function error.
    let fw = archive(
        &[("a.bin", b"x")],
        "task t {\non-resource a.bin { funlist = {\"2\", \"fat_mkfs\", \"0\"} }\n}\n",
    );
    let err = run(&fw, "t", &mut MemoryTarget::new()).err().unwrap();
    assert!(
        matches!(err, Error::Apply(ApplyError::FunctionFailed { .. })),
        "{err}"
    );

    let fw = archive(
        &[("a.bin", b"x")],
        "task t {\non-resource a.bin { funlist = {\"3\", \"raw_write\", \"0\", \"cipher=aes-cbc-plain\"} }\n}\n",
    );
    // Encrypted writes are supported now: a cipher without a secret fails as in fwup.
    let err = run(&fw, "t", &mut MemoryTarget::new()).err().unwrap();
    assert_eq!(
        err.to_string(),
        "raw_write: Both a cipher and secret are required if one is supplied"
    );
}

/// Host files and pipes written, shared between the fake host and its sinks.
type Files = std::rc::Rc<std::cell::RefCell<Vec<(String, Vec<u8>)>>>;

/// A host that records instead of touching the machine.
#[derive(Default)]
struct FakeHost {
    executed: Vec<String>,
    files: Files,
    reboot: Option<(Option<PathBuf>, String)>,
    path_ok: bool,
}

struct FakeSink {
    name: String,
    data: Vec<u8>,
    files: Files,
}

impl Write for FakeSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl HostSink for FakeSink {
    fn finish(self: Box<Self>) -> nerveshub_fwup::Result<()> {
        self.files.borrow_mut().push((self.name, self.data));
        Ok(())
    }
}

impl Host for FakeHost {
    fn execute(&mut self, command: &str) -> nerveshub_fwup::Result<bool> {
        self.executed.push(command.to_owned());
        Ok(command != "false")
    }
    fn open_path(&mut self, path: &str) -> nerveshub_fwup::Result<Box<dyn HostSink>> {
        Ok(Box::new(FakeSink {
            name: path.to_owned(),
            data: Vec::new(),
            files: self.files.clone(),
        }))
    }
    fn open_pipe(&mut self, command: &str) -> nerveshub_fwup::Result<Box<dyn HostSink>> {
        self.open_path(&format!("|{command}"))
    }
    fn write_reboot_param(
        &mut self,
        path: Option<&Path>,
        args: &str,
    ) -> nerveshub_fwup::Result<()> {
        self.reboot = Some((path.map(Path::to_owned), args.to_owned()));
        Ok(())
    }
    fn path_on_device(&mut self, _path: &str, _device: &str) -> nerveshub_fwup::Result<bool> {
        Ok(self.path_ok)
    }
    fn path_at_offset(&mut self, _path: &str, block: u64) -> nerveshub_fwup::Result<bool> {
        Ok(self.path_ok && block == 2048)
    }
}

#[test]
fn unsafe_functions_need_unsafe_and_go_through_the_host() {
    let payload = fixture("data/payload.bin");
    let fw = fixture("fw/unsafe.fw");
    let mut options = ApplyOptions::new("complete");
    options.variables.set("PATH_WRITE_OUT", "out.bin");
    let mut host = FakeHost::default();
    let err =
        apply_with_host(&fw[..], MemoryTarget::new(), &options, &mut (), &mut host).unwrap_err();
    assert_eq!(err.to_string(), "path_write requires --unsafe");
    assert!(host.files.borrow().is_empty());

    options.unsafe_mode = true;
    apply_with_host(&fw[..], MemoryTarget::new(), &options, &mut (), &mut host).unwrap();
    assert_eq!(
        *host.files.borrow(),
        [("out.bin".to_owned(), payload.clone())]
    );
    assert_eq!(host.executed, ["echo Fixture-executed-by-fwup"]);

    let mut pipe = options.clone();
    pipe.task = "pipe".to_owned();
    apply_with_host(&fw[..], MemoryTarget::new(), &pipe, &mut (), &mut host).unwrap();
    assert_eq!(host.files.borrow()[1], ("|wc -c".to_owned(), payload));
}

#[test]
fn requirements_pick_the_first_task_that_holds() {
    let fw = archive(
        &[],
        "task go.exec { reqlist = {2, \"require-execute\", \"true\"}\n\
           on-init { funlist = {\"2\", \"info\", \"exec\"} } }\n\
         task go.path { reqlist = {3, \"require-path-on-device\", \"/\", \"/dev/sda2\",\n\
           3, \"require-path-at-offset\", \"/\", 2048}\n\
           on-init { funlist = {\"2\", \"info\", \"path\"} } }\n\
         task go.fallback { on-init { funlist = {\"2\", \"reboot_param\", \"0 tryboot\"} } }\n",
    );
    let pick = |unsafe_mode: bool, path_ok: bool| {
        let mut options = ApplyOptions::new("go");
        options.unsafe_mode = unsafe_mode;
        options.reboot_param_path = Some(PathBuf::from("/tmp/rp"));
        let mut host = FakeHost {
            path_ok,
            ..FakeHost::default()
        };
        let mut events = Recorder::default();
        apply_with_host(
            &fw[..],
            MemoryTarget::new(),
            &options,
            &mut events,
            &mut host,
        )
        .unwrap();
        (events.task.unwrap(), host)
    };
    // require-execute silently fails without --unsafe.
    assert_eq!(pick(false, true).0, "go.path");
    assert_eq!(pick(true, false).0, "go.exec");
    let (task, host) = pick(false, false);
    assert_eq!(task, "go.fallback");
    assert_eq!(
        host.reboot,
        Some((Some(PathBuf::from("/tmp/rp")), "0 tryboot".to_owned()))
    );
}

#[test]
fn apply_time_variables_are_substituted() {
    let fw = fixture("fw/vars.fw");
    let mut options = ApplyOptions::new("complete");
    options.variables.set("APPLY_TIME_VAR", "set-at-apply");
    let mut events = Recorder::default();
    apply(&fw[..], MemoryTarget::new(), &options, &mut events).unwrap();
    assert!(
        events
            .infos
            .iter()
            .any(|m| m == "apply-time: [set-at-apply]")
    );
}

#[test]
fn a_target_that_fails_writes_fails_the_apply() {
    struct Broken;
    impl Target for Broken {
        fn read_at(&mut self, _: u64, buf: &mut [u8]) -> nerveshub_fwup::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn write_at(&mut self, _: u64, _: &[u8]) -> nerveshub_fwup::Result<()> {
            Err(std::io::Error::other("disk on fire").into())
        }
        fn size(&self) -> Option<u64> {
            None
        }
        fn trim(&mut self, _: u64, _: u64) -> nerveshub_fwup::Result<()> {
            Ok(())
        }
    }
    let err = apply(
        &fixture("fw/simple.fw")[..],
        Broken,
        &ApplyOptions::new("complete"),
        &mut (),
    )
    .unwrap_err();
    // The target's own error is kept as the source, not folded into the message.
    let Error::Io(source) = &err else {
        panic!("not an I/O error: {err:?}");
    };
    assert_eq!(source.to_string(), "disk on fire");
    assert_eq!(
        std::error::Error::source(&err).map(ToString::to_string),
        Some("disk on fire".to_owned())
    );
}

//! The exact JSON of every message, both ways (a snapshot per message, as plain strings).

use std::fmt::Debug;
use std::time::Duration;

use nerveshub_proto::*;
use serde_json::{Value, json};

/// Encodes `msg`, compares with `expected` byte for byte, and decodes `expected` back to `msg`.
fn check<M: ChannelMessage + PartialEq + Debug>(msg: M, event: &str, expected: &str) {
    assert_eq!(msg.event(), event);
    assert_eq!(msg.to_payload().to_string(), expected, "{event}");
    let parsed: Value = serde_json::from_str(expected).unwrap();
    assert_eq!(M::from_parts(event, parsed).unwrap(), msg, "{event}");
}

fn extra(v: Value) -> Extra {
    v.as_object().unwrap().clone()
}

/// The join frame observed from a real nerves_hub_link (docs/COMPAT.md), plus an env key we do
/// not model, and the public-key requests.
const OBSERVED_JOIN: &str = r#"["1","1","device","phx_join",{"archive_public_keys":"on_connect","console_version":"2.0.0","currently_downloading_uuid":null,"device_api_version":"2.3.0","fwup_public_keys":"on_connect","fwup_version":"1.16.0","meta":{"firmware_auto_revert_detected":false,"firmware_validated":true},"nerves_fw_architecture":"x86_64","nerves_fw_author":"","nerves_fw_description":"","nerves_fw_devpath":"/dev/mmcblk0","nerves_fw_misc":"","nerves_fw_platform":"host","nerves_fw_product":"host_test","nerves_fw_uuid":"3c4f8a2e-0000-4000-8000-000000000001","nerves_fw_vcs_identifier":"","nerves_fw_version":"0.1.0"}]"#;

#[test]
fn device_join_params_from_a_real_device() {
    let frame = Frame::from_json(OBSERVED_JOIN.as_bytes()).unwrap();
    assert_eq!(frame.event, Event::Join);
    let p = DeviceJoinParams::from_payload(frame.payload.clone()).unwrap();
    assert_eq!(
        p.nerves_fw_uuid.as_deref(),
        Some("3c4f8a2e-0000-4000-8000-000000000001")
    );
    assert_eq!(p.nerves_fw_author.as_deref(), Some(""));
    assert_eq!(p.device_api_version.as_deref(), Some(DEVICE_API_VERSION));
    assert_eq!(p.console_version.as_deref(), Some(CONSOLE_VERSION));
    assert_eq!(p.currently_downloading_uuid, None);
    assert_eq!(
        p.meta.as_ref().and_then(|m| m.firmware_validated),
        Some(true)
    );
    assert_eq!(
        p.meta
            .as_ref()
            .and_then(|m| m.firmware_auto_revert_detected),
        Some(false)
    );
    assert!(p.wants_fwup_public_keys() && p.wants_archive_public_keys());
    assert_eq!(
        p.extra.get("nerves_fw_devpath"),
        Some(&json!("/dev/mmcblk0")),
        "unknown keys are kept"
    );
    // Written back byte for byte.
    let again = Frame::join("1", DEVICE_TOPIC, p.to_payload());
    assert_eq!(again.to_json(), OBSERVED_JOIN);
    let meta = p.firmware_metadata();
    assert_eq!(meta.product.as_deref(), Some("host_test"));
    assert_eq!(meta.fwup_version.as_deref(), Some("1.16.0"));
}

#[test]
fn device_join_params_minimal_and_update_tool() {
    let p = DeviceJoinParams {
        update_tool: Some("esp-idf".into()),
        currently_downloading_uuid: Some("abc".into()),
        extra: extra(json!({"esp_idf_project_name": "demo"})),
        ..Default::default()
    };
    assert_eq!(
        p.to_payload().to_string(),
        r#"{"currently_downloading_uuid":"abc","esp_idf_project_name":"demo","update_tool":"esp-idf"}"#
    );
    assert_eq!(
        DeviceJoinParams::default().to_payload().to_string(),
        r#"{"currently_downloading_uuid":null}"#,
        "nerves_hub_link always sends currently_downloading_uuid"
    );
    assert_eq!(DeviceJoinParams::from_payload(p.to_payload()).unwrap(), p);
}

#[test]
fn server_to_device_events() {
    let update = UpdatePayload {
        update_available: true,
        firmware_url: "https://fw.example/1/f.fw".into(),
        firmware_meta: FirmwareMetadata {
            uuid: Some("u".into()),
            product: Some("p".into()),
            version: Some("1.0.0".into()),
            platform: Some("rpi4".into()),
            architecture: Some("arm".into()),
            author: Some("a".into()),
            description: Some("d".into()),
            vcs_identifier: Some("v".into()),
            misc: Some("m".into()),
            fwup_version: None,
            extra: extra(json!({"id": 9})),
        },
        size: Some(2_097_152),
        checksum: Some("AA".into()),
        partials_checksums: Some(vec!["BB".into(), "CC".into()]),
        deployment_id: Some(3),
        extra: Default::default(),
    };
    check(
        DeviceServerEvent::Update(Box::new(update.clone())),
        "update",
        r#"{"checksum":"AA","deployment_id":3,"firmware_meta":{"architecture":"arm","author":"a","description":"d","id":9,"misc":"m","platform":"rpi4","product":"p","uuid":"u","vcs_identifier":"v","version":"1.0.0"},"firmware_url":"https://fw.example/1/f.fw","partials_checksums":["BB","CC"],"size":2097152,"update_available":true}"#,
    );
    // A manual push: deployment_id is null; older servers send no size/checksums.
    let manual = UpdatePayload {
        size: None,
        checksum: None,
        partials_checksums: None,
        deployment_id: None,
        firmware_meta: FirmwareMetadata::default(),
        ..update
    };
    check(
        DeviceServerEvent::Update(Box::new(manual)),
        "update",
        r#"{"deployment_id":null,"firmware_meta":{},"firmware_url":"https://fw.example/1/f.fw","update_available":true}"#,
    );
    check(DeviceServerEvent::Reboot(Extra::new()), "reboot", "{}");
    check(DeviceServerEvent::Identify(Extra::new()), "identify", "{}");
    check(
        DeviceServerEvent::ExtensionsGet(Extra::new()),
        "extensions:get",
        "{}",
    );
    check(
        DeviceServerEvent::Archive(ArchivePayload {
            size: Some(10),
            uuid: Some("a-u".into()),
            version: Some("1.0.0".into()),
            description: Some("d".into()),
            platform: Some("host".into()),
            architecture: Some("x86_64".into()),
            uploaded_at: Some("2026-01-01T00:00:00Z".into()),
            url: Some("https://fw.example/a".into()),
            extra: Extra::new(),
        }),
        "archive",
        r#"{"architecture":"x86_64","description":"d","platform":"host","size":10,"uploaded_at":"2026-01-01T00:00:00Z","url":"https://fw.example/a","uuid":"a-u","version":"1.0.0"}"#,
    );
    let keys = PublicKeys {
        keys: vec!["k1".into(), "k2".into()],
        extra: Extra::new(),
    };
    check(
        DeviceServerEvent::FwupPublicKeys(keys.clone()),
        "fwup_public_keys",
        r#"{"keys":["k1","k2"]}"#,
    );
    check(
        DeviceServerEvent::ArchivePublicKeys(keys),
        "archive_public_keys",
        r#"{"keys":["k1","k2"]}"#,
    );
    check(
        DeviceServerEvent::ScriptsRun(ScriptRequest {
            text: "1 + 1".into(),
            script_ref: "connecting_code".into(),
            timeout: Some(5000),
            extra: Extra::new(),
        }),
        "scripts/run",
        r#"{"ref":"connecting_code","text":"1 + 1","timeout":5000}"#,
    );
    check(
        DeviceServerEvent::Other {
            event: "future_thing".into(),
            payload: json!({"x": [1]}),
        },
        "future_thing",
        r#"{"x":[1]}"#,
    );
    // Unknown keys of a known event survive a round trip.
    let m = DeviceServerEvent::from_parts("reboot", json!({"delay": 3})).unwrap();
    assert_eq!(m.to_payload(), json!({"delay": 3}));
    // nerves_hub_link requires firmware_url and firmware_meta.
    assert!(DeviceServerEvent::from_parts("update", json!({"firmware_url": "u"})).is_err());
}

#[test]
fn device_to_server_events() {
    check(
        DeviceEvent::FwupProgress(Progress::new("updating", 0)),
        "fwup_progress",
        r#"{"stage":"updating","value":0}"#,
    );
    check(
        DeviceEvent::UpdateProgress(Progress::new("downloading", 42)),
        "update_progress",
        r#"{"stage":"downloading","value":42}"#,
    );
    let DeviceEvent::UpdateProgress(p) = DeviceEvent::from_parts(
        "update_progress",
        json!({"stage": "downloading", "value": 12.6}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(p.value, 13, "fractions from other clients are rounded");
    assert!(DeviceEvent::from_parts("fwup_progress", json!({"value": -1})).is_err());
    let legacy = Progress {
        stage: None,
        value: 100,
        extra: Extra::new(),
    };
    assert_eq!(legacy.effective_stage(), "completed");
    check(
        DeviceEvent::FwupProgress(legacy),
        "fwup_progress",
        r#"{"value":100}"#,
    );

    let s =
        |st: StatusUpdate, json: &str| check(DeviceEvent::StatusUpdate(st), "status_update", json);
    s(
        StatusUpdate::Received {
            extra: Extra::new(),
        },
        r#"{"status":"received"}"#,
    );
    s(
        StatusUpdate::Started {
            downloader_network_interface: Some("eth0".into()),
            extra: Extra::new(),
        },
        r#"{"downloader_network_interface":"eth0","status":"started"}"#,
    );
    s(
        StatusUpdate::Started {
            downloader_network_interface: None,
            extra: Extra::new(),
        },
        r#"{"downloader_network_interface":null,"status":"started"}"#,
    );
    s(
        StatusUpdate::Completed {
            extra: Extra::new(),
        },
        r#"{"status":"completed"}"#,
    );
    s(
        StatusUpdate::Ignored {
            reason: String::new(),
            extra: Extra::new(),
        },
        r#"{"reason":"","status":"ignored"}"#,
    );
    s(
        StatusUpdate::Rescheduled {
            delay_for_minutes: 5,
            reason: None,
            extra: Extra::new(),
        },
        r#"{"delay_for":5,"status":"rescheduled"}"#,
    );
    s(
        StatusUpdate::Rescheduled {
            delay_for_minutes: 90,
            reason: Some("busy".into()),
            extra: Extra::new(),
        },
        r#"{"delay_for":90,"reason":"busy","status":"rescheduled"}"#,
    );
    s(
        StatusUpdate::Failed {
            reason: "Refusing unverified firmware : no public keys available".into(),
            extra: Extra::new(),
        },
        r#"{"reason":"Refusing unverified firmware : no public keys available","status":"failed"}"#,
    );
    s(
        StatusUpdate::Other {
            status: "fwup error: x".into(),
            extra: Extra::new(),
        },
        r#"{"status":"fwup error: x"}"#,
    );

    // delay_for is minutes, as nerves_hub_link sends it.
    let r = StatusUpdate::from_payload(json!({"status": "rescheduled", "delay_for": 5})).unwrap();
    assert_eq!(r.delay(), Some(Duration::from_secs(300)));
    assert!(StatusUpdate::from_payload(json!({"status": "rescheduled"})).is_err());
    assert!(
        StatusUpdate::from_payload(json!({"status": "fwup error: bad"}))
            .unwrap()
            .is_failure()
    );
    let with_extra = StatusUpdate::from_payload(json!({"status": "completed", "new": 1})).unwrap();
    assert_eq!(
        with_extra.to_payload(),
        json!({"status": "completed", "new": 1})
    );

    check(
        DeviceEvent::FirmwareValidated(Extra::new()),
        "firmware_validated",
        "{}",
    );
    check(DeviceEvent::Rebooting(Extra::new()), "rebooting", "{}");
    check(
        DeviceEvent::ConnectionTypes(ConnectionTypes {
            values: vec![json!("ethernet"), json!("wifi")],
            extra: Extra::new(),
        }),
        "connection_types",
        r#"{"values":["ethernet","wifi"]}"#,
    );
    let nic = NetworkInterface {
        interface: "wlan0".into(),
        extra: Extra::new(),
    };
    assert_eq!(nic.kind(), "wifi");
    check(
        DeviceEvent::ReportNetworkInterface(nic),
        "report_network_interface",
        r#"{"interface":"wlan0"}"#,
    );
    check(
        DeviceEvent::ScriptResult(ScriptResult {
            script_ref: "r1".into(),
            result: "completed".into(),
            output: "hi\n".into(),
            return_value: json!("2"),
            reason: None,
            extra: Extra::new(),
        }),
        "scripts/run",
        r#"{"output":"hi\n","ref":"r1","result":"completed","return":"2"}"#,
    );
    check(
        DeviceEvent::ScriptResult(ScriptResult {
            script_ref: "r2".into(),
            result: "error".into(),
            output: "Error running script: timeout exceeded".into(),
            return_value: json!(""),
            reason: Some("timeout".into()),
            extra: Extra::new(),
        }),
        "scripts/run",
        r#"{"output":"Error running script: timeout exceeded","reason":"timeout","ref":"r2","result":"error","return":""}"#,
    );
    check(
        DeviceEvent::Other {
            event: "new_event".into(),
            payload: json!({"a": 1}),
        },
        "new_event",
        r#"{"a":1}"#,
    );
}

#[test]
fn console_messages() {
    let join = ConsoleJoinParams {
        console_version: Some("2.0.0".into()),
        device_api_version: Some("2.3.0".into()),
        extra: Extra::new(),
    };
    assert_eq!(
        serde_json::to_string(&join).unwrap(),
        r#"{"console_version":"2.0.0","device_api_version":"2.3.0"}"#
    );
    let data = |d: &str| ConsoleData {
        data: d.into(),
        extra: Extra::new(),
    };
    check(
        ConsoleServerEvent::Dn(data("ls\r")),
        "dn",
        r#"{"data":"ls\r"}"#,
    );
    check(
        ConsoleServerEvent::WindowSize(WindowSize {
            height: 24,
            width: 80,
            extra: Extra::new(),
        }),
        "window_size",
        r#"{"height":24,"width":80}"#,
    );
    check(ConsoleServerEvent::Restart(Extra::new()), "restart", "{}");
    let name = FileName {
        filename: "a.txt".into(),
        extra: Extra::new(),
    };
    check(
        ConsoleServerEvent::FileDataStart(name.clone()),
        "file-data/start",
        r#"{"filename":"a.txt"}"#,
    );
    check(
        ConsoleServerEvent::FileData(FileChunk {
            filename: "a.txt".into(),
            chunk: None,
            data: "aGk=".into(),
            extra: Extra::new(),
        }),
        "file-data",
        r#"{"data":"aGk=","filename":"a.txt"}"#,
    );
    check(
        ConsoleServerEvent::FileDataStop(name.clone()),
        "file-data/stop",
        r#"{"filename":"a.txt"}"#,
    );
    check(
        ConsoleDeviceEvent::Up(data("iex> ")),
        "up",
        r#"{"data":"iex> "}"#,
    );
    check(
        ConsoleDeviceEvent::FileDataStart(name.clone()),
        "file-data/start",
        r#"{"filename":"a.txt"}"#,
    );
    check(
        ConsoleDeviceEvent::FileData(FileChunk {
            filename: "a.txt".into(),
            chunk: Some(0),
            data: "aGk=".into(),
            extra: Extra::new(),
        }),
        "file-data",
        r#"{"chunk":0,"data":"aGk=","filename":"a.txt"}"#,
    );
    check(
        ConsoleDeviceEvent::FileDataStop(name),
        "file-data/stop",
        r#"{"filename":"a.txt"}"#,
    );
}

#[test]
fn console_file_names_are_checked() {
    let name = |s: &str| FileName {
        filename: s.into(),
        extra: Extra::new(),
    };
    assert!(name("fw.log").is_safe());
    for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "a\0b"] {
        assert!(!name(bad).is_safe(), "{bad:?}");
    }
    let chunk = FileChunk {
        filename: "../x".into(),
        chunk: Some(1),
        data: String::new(),
        extra: Extra::new(),
    };
    assert!(!chunk.is_safe());
}

#[test]
fn extensions_messages() {
    let join =
        ExtensionsJoinParams::from_payload(json!({"health": "0.0.1", "geo": "0.0.1"})).unwrap();
    assert_eq!(
        join.to_payload().to_string(),
        r#"{"geo":"0.0.1","health":"0.0.1"}"#
    );
    let reply = ExtensionsJoinParams::reply_attach(&["health".into()]);
    assert_eq!(
        reply.to_payload().to_string(),
        r#"{"response":["health"],"status":"ok"}"#
    );
    assert_eq!(
        ExtensionsJoinParams::names_from_reply(&reply.response),
        vec!["health".to_owned()]
    );
    assert_eq!(
        detach_reply().to_payload().to_string(),
        r#"{"response":"detach","status":"error"}"#
    );

    let server = |m: ExtensionsServerEvent, event: &str, expected: &str| {
        assert_eq!(m.event(), event);
        assert_eq!(m.to_payload().to_string(), expected);
        assert_eq!(
            ExtensionsServerEvent::from_parts(event, serde_json::from_str(expected).unwrap())
                .unwrap(),
            m
        );
    };
    server(
        ExtensionsServerEvent::Attach(ExtensionSelection::All),
        "attach",
        r#"{"extensions":"all"}"#,
    );
    server(
        ExtensionsServerEvent::Detach(ExtensionSelection::Names(vec![
            "geo".into(),
            "health".into(),
        ])),
        "detach",
        r#"{"extensions":["geo","health"]}"#,
    );
    assert_eq!(
        ExtensionsServerEvent::from_parts("attach", json!({"extensions": "geo"})).unwrap(),
        ExtensionsServerEvent::Attach(ExtensionSelection::Names(vec!["geo".into()]))
    );
    server(
        ExtensionsServerEvent::Extension {
            name: "health".into(),
            event: "check".into(),
            payload: json!({}),
        },
        "health:check",
        "{}",
    );
    server(
        ExtensionsServerEvent::Extension {
            name: "geo".into(),
            event: "location:request".into(),
            payload: json!({}),
        },
        "geo:location:request",
        "{}",
    );

    let device = |m: ExtensionsDeviceEvent, event: &str, expected: &str| {
        assert_eq!(m.event(), event);
        assert_eq!(m.to_payload().to_string(), expected);
        assert_eq!(
            ExtensionsDeviceEvent::from_parts(event, serde_json::from_str(expected).unwrap())
                .unwrap(),
            m
        );
    };
    device(
        ExtensionsDeviceEvent::Attached {
            name: "health".into(),
            extra: Extra::new(),
        },
        "health:attached",
        "{}",
    );
    device(
        ExtensionsDeviceEvent::Detached {
            name: "geo".into(),
            extra: Extra::new(),
        },
        "geo:detached",
        "{}",
    );
    device(
        ExtensionsDeviceEvent::Error {
            name: "geo".into(),
            reason: "start_failure".into(),
            extra: Extra::new(),
        },
        "geo:error",
        r#"{"reason":"start_failure"}"#,
    );
    device(
        ExtensionsDeviceEvent::Extension {
            name: "health".into(),
            event: "report".into(),
            payload: json!({"value": {"metrics": {"cpu_temp": 41.5}}}),
        },
        "health:report",
        r#"{"value":{"metrics":{"cpu_temp":41.5}}}"#,
    );
    device(
        ExtensionsDeviceEvent::Extension {
            name: "geo".into(),
            event: "location:update".into(),
            payload: json!({"latitude": 1.5, "longitude": 2.5, "source": "geoip"}),
        },
        "geo:location:update",
        r#"{"latitude":1.5,"longitude":2.5,"source":"geoip"}"#,
    );
    device(
        ExtensionsDeviceEvent::Other {
            event: "weird".into(),
            payload: json!(null),
        },
        "weird",
        "null",
    );
}

#[test]
fn replies() {
    let ok = Reply::ok(json!({}));
    assert_eq!(
        ok.to_payload().to_string(),
        r#"{"response":{},"status":"ok"}"#
    );
    let err = Reply::error(json!({"error": "could not connect"}));
    assert_eq!(
        err.to_payload().to_string(),
        r#"{"response":{"error":"could not connect"},"status":"error"}"#
    );
    assert_eq!(
        Reply::from_payload(&json!({"status": "ok"})).unwrap(),
        ok,
        "a missing response reads as {{}}"
    );
    assert_eq!(
        Reply::from_payload(&json!({"status": "timeout"}))
            .unwrap()
            .status,
        ReplyStatus::Other("timeout".into())
    );
    assert!(Reply::from_payload(&json!([])).is_err());
}

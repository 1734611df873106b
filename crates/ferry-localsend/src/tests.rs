//! The wire types' checks and the identity.

use serde_json::json;

use crate::*;

fn info_body() -> serde_json::Value {
    json!({"alias": "  Phone of Ana ", "version": "2.1", "deviceModel": "Pixel", "deviceType": "mobile",
           "fingerprint": "ab12cd", "port": 53317, "protocol": "https", "download": false, "announce": true})
}

fn info_with(key: &str, value: serde_json::Value) -> Result<DeviceInfo, LsError> {
    let mut body = info_body();
    body[key] = value;
    parse_info(body.to_string().as_bytes())
}

fn file(id: &str, name: &str) -> serde_json::Value {
    json!({"id": id, "fileName": name, "size": 12, "fileType": "text/plain", "sha256": null, "preview": null})
}

fn prepare_with(files: serde_json::Value) -> Result<PrepareUpload, LsError> {
    parse_prepare(json!({"info": info_body(), "files": files}).to_string().as_bytes())
}

#[test]
fn info_parses_the_apps_shapes() {
    let info = parse_info(info_body().to_string().as_bytes()).unwrap();
    assert_eq!(info.alias, "Phone of Ana", "the alias is trimmed");
    assert_eq!(
        (info.device_type, info.protocol, info.announce),
        (Some(DeviceType::Mobile), Protocol::Https, Some(true))
    );
    // The app's /info answer: no port, protocol or announce; a newer app's unknown type.
    let bare = json!({"alias": "Mac", "version": "2.1", "deviceModel": null, "deviceType": "toaster",
                      "fingerprint": "EF01", "download": true});
    let info = parse_info(bare.to_string().as_bytes()).unwrap();
    assert_eq!((info.port, info.protocol, info.device_type), (PORT, Protocol::Https, Some(DeviceType::Desktop)));
    assert_eq!((info.device_model.as_deref(), info.announce, info.download), (None, None, true));
    // The app's datagram carries v1's `announcement` beside `announce`; an unknown protocol is
    // taken as HTTPS (as the app takes it).
    let mut app = info_body();
    app["announcement"] = json!(true);
    app["protocol"] = json!("quic");
    let from_app = parse_info(app.to_string().as_bytes()).unwrap();
    assert_eq!((from_app.announce, from_app.protocol), (Some(true), Protocol::Https));
    assert_eq!(info_with("protocol", json!("http")).unwrap().protocol, Protocol::Http);
    // Round trip through our own serialisation.
    let again = parse_info(&serde_json::to_vec(&info).unwrap()).unwrap();
    assert_eq!(again, info);
    assert!(!serde_json::to_string(&info).unwrap().contains("announce"), "announce omitted when None");
}

#[test]
fn info_refuses_bad_fields() {
    let bad = [
        ("alias", json!("   ")),
        ("alias", json!("a".repeat(65))),
        ("alias", json!("bell\u{7}")),
        ("alias", json!(5)),
        ("fingerprint", json!("")),
        ("fingerprint", json!("f".repeat(129))),
        ("fingerprint", json!("has space")),
        ("port", json!(0)),
        ("port", json!(70000)),
        ("protocol", json!(5)),
        ("deviceModel", json!("m".repeat(65))),
        ("version", json!("")),
    ];
    for (key, value) in bad {
        assert!(info_with(key, value.clone()).is_err(), "accepted {key} = {value}");
    }
    assert_eq!(
        info_with("alias", json!("é".repeat(64))).unwrap().alias.chars().count(),
        64,
        "64 characters, not bytes"
    );
    assert!(parse_info(b"{not json").is_err());
    let mut huge = b"{\"alias\":\"".to_vec();
    huge.resize(MAX_JSON + 1, b'a');
    assert!(matches!(parse_info(&huge), Err(LsError::TooLarge { .. })));
}

#[test]
fn prepare_checks_shape_ids_and_names() {
    let ok = prepare_with(json!({"f1": file("f1", "a.txt"), "f2": file("f2", "dir/b.txt")})).unwrap();
    assert_eq!(ok.files.len(), 2);
    assert_eq!(ok.files["f2"].file_name, "dir/b.txt", "names are not judged here");
    let mut with_extras = file("f1", "a.txt");
    with_extras["sha256"] = json!("ab".repeat(32));
    with_extras["preview"] = json!("hello");
    with_extras["metadata"] = json!({"modified": "2024-01-01T00:00:00Z"});
    assert!(prepare_with(json!({"f1": with_extras})).is_ok());

    let bad_sha = {
        let mut f = file("f1", "a");
        f["sha256"] = json!("xyz");
        f
    };
    let negative = {
        let mut f = file("f1", "a");
        f["size"] = json!(-1);
        f
    };
    let bad = [
        json!({}),
        json!({"f1": file("f2", "a.txt")}),
        json!({"f1": file("f1", "")}),
        json!({"f1": file("f1", "a\nb")}),
        json!({"f1": file("f1", "a\u{0}b")}),
        json!({"": file("", "a")}),
        json!({"f1": bad_sha}),
        json!({"f1": negative}),
        json!({"f1": file("f1", &"n".repeat(4097))}),
        json!({"f1": {"id": "f1", "fileName": "a"}}),
        json!([file("f1", "a")]),
    ];
    for files in bad {
        assert!(prepare_with(files.clone()).is_err(), "accepted {files}");
    }
}

#[test]
fn prepare_of_ten_thousand_short_names_fits_and_one_more_file_does_not() {
    let files = |n: usize| -> serde_json::Value {
        (0..n).map(|i| (format!("{i:08x}-0000-4000-8000-000000000000"), i)).fold(json!({}), |mut m, (id, i)| {
            m[&id] = json!({"id": id, "fileName": format!("IMG_{i:05}.jpg"), "size": 3_000_000,
                            "fileType": "image/jpeg", "sha256": null, "preview": null,
                            "metadata": {"modified": "2024-06-01T12:00:00.000Z"}});
            m
        })
    };
    let body = json!({"info": info_body(), "files": files(MAX_FILES)}).to_string();
    assert!(body.len() < MAX_JSON, "{} bytes", body.len());
    assert_eq!(parse_prepare(body.as_bytes()).unwrap().files.len(), MAX_FILES);
    let body = json!({"info": info_body(), "files": files(MAX_FILES + 1)}).to_string();
    assert!(parse_prepare(body.as_bytes()).is_err());
}

#[test]
fn answer_must_name_only_offered_files() {
    let offer = prepare_with(json!({"f1": file("f1", "a.txt")})).unwrap();
    let ok = parse_answer(br#"{"sessionId":"s1","files":{"f1":"t1"}}"#, &offer).unwrap();
    assert_eq!((ok.session_id.as_str(), ok.files["f1"].as_str()), ("s1", "t1"));
    assert!(parse_answer(br#"{"sessionId":"s1","files":{}}"#, &offer).is_ok(), "wanting none is an answer");
    for bad in [
        &br#"{"sessionId":"s1","files":{"f9":"t"}}"#[..],
        br#"{"sessionId":"","files":{"f1":"t"}}"#,
        br#"{"sessionId":"s","files":{"f1":""}}"#,
        br#"{"files":{"f1":"t"}}"#,
    ] {
        assert!(parse_answer(bad, &offer).is_err(), "accepted {}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn fingerprints_compare_without_case() {
    assert!(fingerprint_eq("ABCDEF01", "abcdef01"));
    assert!(!fingerprint_eq("ABCDEF01", "abcdef02"));
    assert!(!fingerprint_eq("ABCDEF01", "ABCDEF0"));
}

#[test]
fn identity_persists_with_a_private_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let a = LocalIdentity::load_or_create(dir.path()).unwrap();
    assert_eq!(a.fingerprint.len(), 64);
    assert!(a.fingerprint.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{}", a.fingerprint);
    assert_eq!(a.fingerprint, fingerprint_of(&a.cert_der));
    let mode = std::fs::metadata(dir.path().join("key.der")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let b = LocalIdentity::load_or_create(dir.path()).unwrap();
    assert_eq!((b.fingerprint, b.cert_der), (a.fingerprint.clone(), a.cert_der));
    assert_ne!(LocalIdentity::generate().unwrap().fingerprint, a.fingerprint);
    std::fs::write(dir.path().join("key.der"), b"garbage").unwrap();
    assert!(LocalIdentity::load_or_create(dir.path()).is_err(), "a broken key is an error, not a new identity");
}

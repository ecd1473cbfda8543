use super::*;
use crate::Level;
use crate::registry::RegistryError;
use crate::registry::records::Config;

/// The writer, in memory: plans, allocates an ID above every ID handed out, appends.
#[derive(Default)]
struct Log {
    records: Vec<Record>,
    store: Store,
}

impl Log {
    fn append(&mut self, records: Vec<Record>) {
        for (k, v) in records {
            let offset = self.records.len() as i64;
            self.store.apply(offset, &k, v.as_deref()).unwrap();
            self.records.push((k, v));
        }
    }

    fn register_req(&mut self, req: Registration) -> Result<i32, RegistryError> {
        match self.store.plan_register(&req)? {
            RegisterPlan::Registered(id) => Ok(id),
            RegisterPlan::Write(new) => {
                let id = match new.id {
                    IdSource::Existing(id) | IdSource::Given(id) => id,
                    IdSource::New => self.store.max_id() + 1,
                };
                self.append(new.records(id));
                Ok(id)
            }
        }
    }

    fn register(&mut self, subject: &str, schema: &str) -> Result<i32, RegistryError> {
        self.register_req(req(subject, schema))
    }

    /// The state rebuilt from the log as compaction leaves it: the last record of each
    /// key, tombstones gone.
    fn compacted(&self) -> Store {
        let mut last: Vec<(usize, &Record)> = Vec::new();
        for (i, r) in self.records.iter().enumerate() {
            last.retain(|(_, x)| x.0 != r.0);
            last.push((i, r));
        }
        let mut store = Store::default();
        for (offset, (k, v)) in last {
            if v.is_some() {
                store.apply(offset as i64, k, v.as_deref()).unwrap();
            }
        }
        store
    }
}

fn req(subject: &str, schema: &str) -> Registration {
    Registration {
        subject: subject.into(),
        schema_type: SchemaType::Avro,
        schema: schema.into(),
        references: vec![],
        id: None,
        version: None,
    }
}

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":""}]}"#;
const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"c","type":"string"}]}"#;

fn visible(store: &Store) -> Vec<(String, i32, i32, bool)> {
    let mut out = Vec::new();
    for s in store.subjects(true) {
        for v in store.versions(&s, true).unwrap() {
            let sv = store.version(&s, VersionId::Number(v), true).unwrap();
            out.push((s.clone(), v, sv.schema.id, sv.deleted));
        }
    }
    out
}

#[test]
fn the_same_schema_gets_one_id_everywhere() {
    let mut log = Log::default();
    assert_eq!(log.register("a-value", V1).unwrap(), 1);
    let written = log.records.len();
    // Again, with other whitespace: already registered, nothing written.
    assert_eq!(log.register("a-value", &format!("  {V1} ")).unwrap(), 1);
    assert_eq!(log.records.len(), written);
    // Under another subject: a new version there, the same ID.
    assert_eq!(log.register("b-value", V1).unwrap(), 1);
    assert_eq!(log.store.versions("b-value", false).unwrap(), vec![1]);
    assert_eq!(log.register("a-value", V2).unwrap(), 2);
    assert_eq!(
        log.store.uses(1, false).unwrap(),
        vec![("a-value".into(), 1), ("b-value".into(), 1)]
    );
    let latest = log.store.version("a-value", VersionId::Latest, false).unwrap();
    assert_eq!((latest.version, latest.schema.id), (2, 2));
}

#[test]
fn an_incompatible_schema_is_refused_with_confluents_reasons() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    let err = log.register("s", V2_NO_DEFAULT).unwrap_err();
    assert_eq!(err.code(), 409);
    let text = err.to_string();
    assert!(text.starts_with("Schema being registered is incompatible with an earlier schema for subject \"s\", details: [{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE'"), "{text}");
    assert!(text.ends_with("{oldSchemaVersion: 1}, {oldSchema: '{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}'}, {validateFields: 'false', compatibility: 'BACKWARD'}]"), "{text}");
    log.append(log.store.plan_config(Some("s"), level(Level::None)).unwrap().1);
    assert_eq!(log.register("s", V2_NO_DEFAULT).unwrap(), 2);
}

#[test]
fn soft_then_permanent_deletes_and_ids_never_come_back() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    log.register("s", V2).unwrap();
    // Permanent first is refused: it must be soft-deleted before.
    assert_eq!(
        log.store.plan_delete_version("s", VersionId::Number(2), true).unwrap_err().code(),
        40407
    );
    let (v, records) = log.store.plan_delete_version("s", VersionId::Latest, false).unwrap();
    assert_eq!(v, 2);
    log.append(records);
    assert_eq!(log.store.versions("s", false).unwrap(), vec![1]);
    assert_eq!(log.store.versions("s", true).unwrap(), vec![1, 2]);
    assert_eq!(log.store.version("s", VersionId::Number(2), false).unwrap_err().code(), 40402);
    assert!(log.store.version("s", VersionId::Number(2), true).unwrap().deleted);
    // A soft-deleted version's schema stays readable by ID.
    assert_eq!(log.store.schema(2).unwrap().id, 2);
    assert_eq!(
        log.store.plan_delete_version("s", VersionId::Number(2), false).unwrap_err().code(),
        40406
    );
    let (_, records) = log.store.plan_delete_version("s", VersionId::Number(2), true).unwrap();
    log.append(records);
    assert_eq!(log.store.schema(2).unwrap_err().code(), 40403);
    // Once compaction drops the tombstoned records, the log no longer shows ID 2 was
    // ever handed out: why new IDs come from a watermark kept outside the log.
    assert_eq!(log.compacted().max_id(), 1);
    assert_eq!(log.store.max_id(), 2);
    // The next version number continues from the highest still in the log; the next ID
    // from the highest ever handed out.
    assert_eq!(log.register("s", V2).unwrap(), 3);
    assert_eq!(log.store.versions("s", false).unwrap(), vec![1, 2]);
    assert_eq!(visible(&log.compacted()), visible(&log.store));
}

#[test]
fn subjects_delete_softly_then_permanently() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    log.register("s", V2).unwrap();
    log.append(log.store.plan_config(Some("s"), level(Level::Full)).unwrap().1);
    assert_eq!(log.store.plan_delete_subject("s", true).unwrap_err().code(), 40405);
    let (versions, records) = log.store.plan_delete_subject("s", false).unwrap();
    assert_eq!(versions, vec![1, 2]);
    log.append(records);
    assert!(log.store.subjects(false).is_empty());
    assert_eq!(log.store.subjects(true), vec!["s".to_string()]);
    assert_eq!(log.store.config(Some("s")), None, "the subject's config goes with it");
    assert_eq!(log.store.plan_delete_subject("s", false).unwrap_err().code(), 40404);
    assert_eq!(log.store.versions("s", false).unwrap_err().code(), 40401);
    let (versions, records) = log.store.plan_delete_subject("s", true).unwrap();
    assert_eq!(versions, vec![1, 2]);
    log.append(records);
    assert!(log.store.subjects(true).is_empty());
    assert_eq!(log.store.plan_delete_subject("s", false).unwrap_err().code(), 40401);
    assert_eq!(visible(&log.compacted()), visible(&log.store));
}

#[test]
fn a_soft_deleted_schema_registered_again_is_a_new_version_with_its_id() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    let (_, records) = log.store.plan_delete_subject("s", false).unwrap();
    log.append(records);
    assert_eq!(log.register("s", V1).unwrap(), 1);
    assert_eq!(
        log.store.versions("s", true).unwrap(),
        vec![2],
        "the old deleted version is tombstoned"
    );
}

#[test]
fn references_resolve_and_protect_what_they_refer_to() {
    let mut log = Log::default();
    let address = r#"{"type":"record","name":"Address","namespace":"ex","fields":[{"name":"city","type":"string"}]}"#;
    let user = r#"{"type":"record","name":"User","namespace":"ex","fields":[{"name":"home","type":"Address"}]}"#;
    log.register("address", address).unwrap();
    assert_eq!(
        log.register("user", user).unwrap_err().code(),
        42201,
        "without its reference it does not parse"
    );
    let mut with_ref = req("user", user);
    with_ref.references =
        vec![Reference { name: "ex.Address".into(), subject: "address".into(), version: 1 }];
    let id = log.register_req(with_ref.clone()).unwrap();
    assert_eq!(log.store.referenced_by("address", 1), vec![id]);
    assert_eq!(
        log.store.plan_delete_version("address", VersionId::Number(1), false).unwrap_err().code(),
        42206
    );
    assert_eq!(log.store.plan_delete_subject("address", false).unwrap_err().code(), 42206);
    let mut missing = with_ref;
    missing.references[0].version = 9;
    assert_eq!(log.register_req(missing).unwrap_err().code(), 42201);
}

#[test]
fn modes_guard_writes_and_import_keeps_given_ids() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    log.append(log.store.plan_mode(Some("s"), Mode::ReadOnly, false).unwrap());
    assert_eq!(log.register("s", V2).unwrap_err().code(), 42205);
    // Already registered: answered even in READONLY (Confluent's fast path).
    assert_eq!(log.register("s", V1).unwrap(), 1);
    assert_eq!(log.store.plan_mode(None, Mode::Import, false).unwrap_err().code(), 42205);
    log.append(log.store.plan_mode(Some("t"), Mode::Import, false).unwrap());
    assert_eq!(log.register("t", V2).unwrap_err().code(), 42205, "IMPORT needs the ID");
    let mut import = req("t", V2);
    import.id = Some(100);
    import.version = Some(5);
    assert_eq!(log.register_req(import).unwrap(), 100);
    assert_eq!(log.store.versions("t", false).unwrap(), vec![5]);
    let mut clash = req("t", V2_NO_DEFAULT);
    clash.id = Some(100);
    assert_eq!(log.register_req(clash).unwrap_err().code(), 42205, "an ID names one schema");
    log.append(log.store.plan_mode(Some("t"), Mode::ReadWrite, false).unwrap());
    let fresh = r#"{"type":"record","name":"Q","fields":[]}"#;
    assert_eq!(log.register("u", fresh).unwrap(), 101, "new IDs continue above imported ones");
}

#[test]
fn a_record_giving_an_id_to_a_second_schema_is_skipped() {
    let mut log = Log::default();
    log.register("s", V1).unwrap();
    // What a second writer with a stale view would have written: ID 1 for another schema.
    let rogue = SchemaValue {
        subject: "t".into(),
        version: 1,
        id: 1,
        schema_type: SchemaType::Avro,
        references: vec![],
        schema: "\"string\"".into(),
        deleted: false,
    };
    let key = Key::Schema { subject: "t".into(), version: 1 }.encode();
    let err = log.store.apply(99, &key, Some(&rogue.encode())).unwrap_err();
    assert!(err.contains("ID 1 already names another schema"), "{err}");
    assert_eq!(log.store.schema(1).unwrap().schema, V1);
    assert!(log.store.subjects(true) == vec!["s".to_string()]);
    assert_eq!(log.store.next_offset(), 100);
}

#[test]
fn versions_parse_as_confluent_reads_them() {
    assert_eq!(VersionId::parse("latest").unwrap(), VersionId::Latest);
    assert_eq!(VersionId::parse(" LATEST ").unwrap(), VersionId::Latest);
    assert_eq!(VersionId::parse("-1").unwrap(), VersionId::Latest);
    assert_eq!(VersionId::parse("3").unwrap(), VersionId::Number(3));
    for bad in ["0", "-2", "x", "99999999999"] {
        assert_eq!(VersionId::parse(bad).unwrap_err().code(), 42202, "{bad}");
    }
}

fn json(subject: &str, schema: &str) -> Registration {
    Registration { schema_type: SchemaType::Json, ..req(subject, schema) }
}

const J1: &str =
    r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
/// J1 and an optional `b`: its closed content model lets a reader take it.
const J2: &str = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"}},"additionalProperties":false}"#;
/// J2 with `a` a number.
const J3: &str = r#"{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"additionalProperties":false}"#;

#[test]
fn json_schemas_evolve_by_confluents_rules() {
    let mut log = Log::default();
    assert_eq!(log.register_req(json("j", J1)).unwrap(), 1);
    // The same schema written otherwise: already registered, stored as compact JSON.
    let spaced = J1.replace(':', " : ").replace(',', ", ");
    assert_eq!(log.register_req(json("j", &spaced)).unwrap(), 1);
    assert_eq!(log.store.schema(1).unwrap().schema, J1);
    assert_eq!(log.store.schema(1).unwrap().schema_type, SchemaType::Json);
    assert_eq!(log.register_req(json("j", J2)).unwrap(), 2);

    // BACKWARD (the default): the new schema reads what the latest wrote.
    let err = log.register_req(json("j", J3)).unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.to_string(),
        format!(
            "Schema being registered is incompatible with an earlier schema for subject \"j\", details: [{}, {{oldSchemaVersion: 2}}, {{oldSchema: '{J2}'}}, {{validateFields: 'false', compatibility: 'BACKWARD'}}]",
            r#"{errorType:"TYPE_CHANGED", description:"A type at path '#/properties/a' is different between the new schema and the old schema'}"#
        )
    );

    // FORWARD: the latest reads what the new one writes. Dropping `b` is fine (J2 reads J1's
    // data); a property J2's closed model does not know is not.
    log.append(log.store.plan_config(Some("j"), level(Level::Forward)).unwrap().1);
    let j4 = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"number"},"c":{"type":"string"}},"additionalProperties":false}"#;
    let err = log.register_req(json("j", j4)).unwrap_err();
    assert!(err.to_string().contains(r#"[{errorType:"PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", description:"The old has a closed content model and is missing a property or item present at path '#/properties/c' in the new schema'}, {oldSchemaVersion: 2}"#), "{err}");
    let j1_described = J1.replace(r#""type":"object""#, r#""type":"object","description":"d""#);
    assert_eq!(log.register_req(json("j", &j1_described)).unwrap(), 3);
    assert_eq!(log.store.versions("j", false).unwrap(), vec![1, 2, 3]);
}

/// Confluent's REST test of an incompatible JSON schema at FULL: both directions fail,
/// forward's reasons first, the old version and text once, at the end.
#[test]
fn json_schemas_at_full_report_both_directions() {
    let mut log = Log::default();
    let schema = |t: &str| {
        format!(
            r#"{{"$schema":"http://json-schema.org/draft-07/schema#","$id":"https://acme.com/referrer.json","type":"object","properties":{{"myField1":{{"type":"string"}},"myField2":{{"type":"{t}"}}}},"additionalProperties":false}}"#
        )
    };
    log.append(log.store.plan_config(Some("s"), level(Level::Full)).unwrap().1);
    log.register_req(json("s", &schema("number"))).unwrap();
    let err = log.register_req(json("s", &schema("string"))).unwrap_err();
    let RegistryError::Incompatible { reasons, .. } = err else { panic!("{err}") };
    assert_eq!(
        reasons,
        vec![
            r#"{errorType:"TYPE_CHANGED", description:"A type at path '#/properties/myField2' is different between the old schema and the new schema'}"#.to_string(),
            r#"{errorType:"TYPE_CHANGED", description:"A type at path '#/properties/myField2' is different between the new schema and the old schema'}"#.to_string(),
            "{oldSchemaVersion: 1}".to_string(),
            format!("{{oldSchema: '{}'}}", schema("number")),
            "{validateFields: 'false', compatibility: 'FULL'}".to_string(),
        ]
    );
    // A change both can read: a description.
    let described =
        schema("number").replace(r#""type":"object""#, r#""type":"object","description":"d""#);
    assert_eq!(log.register_req(json("s", &described)).unwrap(), 2);
}

#[test]
fn json_references_resolve_by_name_and_types_do_not_mix() {
    let mut log = Log::default();
    let address = r#"{"type":"object","properties":{"city":{"type":"string"}},"definitions":{"Zip":{"type":"string"}}}"#;
    let user = r##"{"title":"User","type":"object","properties":{"home":{"$ref":"address.json"},"zip":{"$ref":"address.json#/definitions/Zip"}}}"##;
    log.register_req(json("address", address)).unwrap();
    assert_eq!(log.register_req(json("user", user)).unwrap_err().code(), 42201);
    let mut with_ref = json("user", user);
    with_ref.references =
        vec![Reference { name: "address.json".into(), subject: "address".into(), version: 1 }];
    let id = log.register_req(with_ref).unwrap();
    let stored = log.store.schema(id).unwrap();
    let parsed = log.store.parsed(&stored).unwrap();
    assert_eq!(parsed.record_name().as_deref(), Some("User"));
    assert_eq!(log.store.referenced_by("address", 1), vec![id]);

    // One schema reached under two names (directly, and through another reference).
    let zip = r#"{"type":"string","maxLength":10}"#;
    log.register_req(json("zip", zip)).unwrap();
    let place = r#"{"type":"object","properties":{"zip":{"$ref":"zip.json"}}}"#;
    let mut place_req = json("place", place);
    place_req.references =
        vec![Reference { name: "zip.json".into(), subject: "zip".into(), version: 1 }];
    log.register_req(place_req).unwrap();
    let both = r#"{"type":"object","properties":{"p":{"$ref":"place.json"},"z":{"$ref":"codes/zip.json"}}}"#;
    let mut both_req = json("both", both);
    both_req.references = vec![
        Reference { name: "place.json".into(), subject: "place".into(), version: 1 },
        Reference { name: "codes/zip.json".into(), subject: "zip".into(), version: 1 },
    ];
    log.register_req(both_req).unwrap();

    // Avro then JSON under one subject: Confluent's answer.
    log.register("mixed", V1).unwrap();
    let err = log.register_req(json("mixed", J1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("[Incompatible because of different schema type, {oldSchemaVersion: 1}"),
        "{err}"
    );
}

fn level(level: Level) -> Config {
    Config { level: Some(level), normalize: None }
}

/// `normalize` and the level are set apart: setting one keeps the other; a subject's
/// unset field falls back to the global one.
#[test]
fn settings_change_field_by_field_and_fall_back_to_the_global_ones() {
    let mut log = Log::default();
    log.append(log.store.plan_config(Some("s"), level(Level::Full)).unwrap().1);
    let (config, records) =
        log.store.plan_config(Some("s"), Config { level: None, normalize: Some(true) }).unwrap();
    assert_eq!(config, Config { level: Some(Level::Full), normalize: Some(true) });
    log.append(records);
    assert!(log.store.normalizes("s"));
    assert!(!log.store.normalizes("t"));
    log.append(
        log.store.plan_config(None, Config { level: None, normalize: Some(true) }).unwrap().1,
    );
    assert!(log.store.normalizes("t"));
    assert_eq!(log.store.effective_level("t"), Level::Backward);
    assert_eq!(
        log.store.effective_settings(None),
        Config { level: Some(Level::Backward), normalize: Some(true) }
    );
    let (previous, records) = log.store.plan_delete_config(Some("s")).unwrap();
    assert_eq!(previous, Config { level: Some(Level::Full), normalize: Some(true) });
    log.append(records);
    assert_eq!(log.store.settings(Some("s")), None);
}

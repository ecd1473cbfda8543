//! JSON Schema, as Confluent's registry serves it: the text must be JSON and a valid schema
//! of its draft (4, 6, 7, 2019-09 or 2020-12, from `$schema`; 7 when it names none or one
//! Confluent does not know), checked against the draft's meta-schema by the `jsonschema`
//! crate with every `$ref` resolved, offline, among the schema and its references (each
//! registered under its reference name). The canonical text is the compact JSON in the
//! order it was written, decimals as written (`canonical`). Compatibility is the port of
//! Confluent's `json/diff` (`diff`, `diff_combined`, `diff_object`, `difference`) over the
//! typed model (`model`) a schema is read into (`load`, `resolve`) as everit reads it.

mod canonical;
mod diff;
mod diff_combined;
mod diff_object;
mod difference;
mod java;
mod load;
mod model;
mod resolve;

use crate::json::Json;
use difference::Policy;
use resolve::{DEFAULT_BASE, Documents, join};

/// A JSON Schema draft, as Confluent's `SpecificationVersion` tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Draft {
    V4,
    V6,
    V7,
    V2019,
    V2020,
}

impl Draft {
    /// 2019-09 or later (Confluent loads those with json-sKema and its translator).
    pub(crate) fn modern(self) -> bool {
        matches!(self, Draft::V2019 | Draft::V2020)
    }

    /// The draft `$schema` names (Confluent's `getFromUrl`: an exact URL, a trailing `#`
    /// allowed), draft 7 otherwise.
    fn of(root: &Json) -> Draft {
        let Some(url) = root.get("$schema").and_then(Json::as_str) else {
            return Draft::V7;
        };
        let url = url.strip_suffix('#').unwrap_or(url);
        let url = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        match url {
            Some("json-schema.org/draft-04/schema" | "json-schema.org/schema") => Draft::V4,
            Some("json-schema.org/draft-06/schema") => Draft::V6,
            Some("json-schema.org/draft/2019-09/schema") => Draft::V2019,
            Some("json-schema.org/draft/2020-12/schema") => Draft::V2020,
            _ => Draft::V7,
        }
    }

    fn validator_draft(self) -> jsonschema::Draft {
        match self {
            Draft::V4 => jsonschema::Draft::Draft4,
            Draft::V6 => jsonschema::Draft::Draft6,
            Draft::V7 => jsonschema::Draft::Draft7,
            Draft::V2019 => jsonschema::Draft::Draft201909,
            Draft::V2020 => jsonschema::Draft::Draft202012,
        }
    }
}

/// A valid JSON Schema with its canonical text.
#[derive(Debug, Clone)]
pub(crate) struct JsonSchema {
    canonical: String,
    title: Option<String>,
    graph: model::Graph,
}

impl JsonSchema {
    /// Parses and validates `text`; `dependencies` are the schemas it may refer to, as
    /// (reference name, text), each resolvable by a `$ref` to its name. The error says what
    /// is wrong.
    pub(crate) fn parse(text: &str, dependencies: &[(&str, &str)]) -> Result<JsonSchema, String> {
        let json = Json::parse(text).map_err(|e| format!("invalid JSON: {e}"))?;
        if !matches!(json, Json::Object(_) | Json::Bool(_)) {
            return Err(format!("expected an object or boolean at the root, found {json}"));
        }
        let draft = Draft::of(&json);
        let id_key = if draft == Draft::V4 { "id" } else { "$id" };
        let root_base = match json.get(id_key).and_then(Json::as_str) {
            Some(id) if !id.starts_with('#') => join(DEFAULT_BASE, id)
                .map(|b| b.split('#').next().unwrap_or(&b).to_string())
                .map_err(|e| format!("invalid $id '{id}': {e}"))?,
            _ => DEFAULT_BASE.to_string(),
        };
        let mut deps = Vec::new();
        for (name, dep) in dependencies {
            let parsed = Json::parse(dep)
                .map_err(|e| format!("the reference '{name}' is not valid JSON: {e}"))?;
            let mut uris = vec![join(&root_base, name), join(DEFAULT_BASE, name)];
            uris.dedup();
            for uri in uris {
                let uri = uri.map_err(|e| format!("invalid reference name '{name}': {e}"))?;
                deps.push((uri, parsed.clone(), *dep));
            }
        }
        validate(draft, text, &deps)?;
        let mut documents = vec![(root_base, &json)];
        documents.extend(deps.iter().map(|(uri, json, _)| (uri.clone(), json)));
        let graph = on_deep_stack(|| {
            let docs = Documents::new(draft, &documents);
            load::Loader::load_graph(draft, &docs, &json)
        })?;
        let title = json.get("title").and_then(Json::as_str).map(str::to_string);
        Ok(JsonSchema { canonical: canonical::canonical(text)?, title, graph })
    }

    /// The text Confluent's registry stores: compact JSON, keys in document order, decimals
    /// exact (see `canonical`).
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The normalized text: the canonical text with every object's keys sorted.
    pub(crate) fn normalized(&self) -> String {
        canonical::normalized(&self.canonical).unwrap_or_else(|_| self.canonical.clone())
    }

    /// Its `title` (Confluent's `JsonSchema.name()`).
    pub(crate) fn title(&self) -> Option<String> {
        self.title.clone()
    }

    /// Confluent's `JsonSchema.isBackwardCompatible(previous)` under the STRICT policy:
    /// why `self`, reading, cannot read what `previous` wrote, one message per
    /// incompatible difference, `reader` and `writer` ("new"/"old") named in them.
    pub(crate) fn can_read(
        &self,
        previous: &JsonSchema,
        reader: &str,
        writer: &str,
    ) -> Vec<String> {
        let policy = Policy::Strict;
        on_deep_stack(|| diff::compare_graphs(policy, &previous.graph, &self.graph))
            .iter()
            .filter(|d| !policy.allows(d.kind))
            .map(|d| d.describe(reader, writer))
            .collect()
    }
}

/// The stack reserved for reading and comparing schemas, both recursive (address space
/// only: pages are used as the recursion reaches them).
const DEEP_STACK: usize = 64 << 20;

/// Runs `job` on a thread with a [`DEEP_STACK`] (here, when no thread can be started).
fn on_deep_stack<T: Send>(job: impl FnOnce() -> T + Send) -> T {
    let mut job = Some(job);
    let done = std::thread::scope(|scope| {
        let slot = &mut job;
        let thread = std::thread::Builder::new()
            .name("json-schema".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, move || slot.take().map(|job| job()));
        match thread.map(|t| t.join()) {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => None,
        }
    });
    match (done, job.take()) {
        (Some(result), _) => result,
        (None, Some(job)) => job(),
        (None, None) => unreachable!("the job ran and returned"),
    }
}

/// Checks `text` against its draft's meta-schema and resolves its references offline.
fn validate(draft: Draft, text: &str, deps: &[(String, Json, &str)]) -> Result<(), String> {
    let value =
        bridge_definitions(serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?);
    let mut registry = jsonschema::Registry::new().draft(draft.validator_draft());
    for (uri, _, dep) in deps {
        let dep: serde_json::Value = serde_json::from_str(dep).map_err(|e| e.to_string())?;
        registry = registry.add(uri, bridge_definitions(dep)).map_err(|e| e.to_string())?;
    }
    let registry = registry.prepare().map_err(|e| format!("in its references: {e}"))?;
    jsonschema::options()
        .offline()
        .with_draft(draft.validator_draft())
        .with_registry(&registry)
        .build(&value)
        .map(|_| ())
        .map_err(|e| match e.instance_path().as_str() {
            "" => e.to_string(),
            path => format!("{e} (at '{path}')"),
        })
}

/// Confluent's `mergeDefBuckets`: a document's top-level `definitions` copied into `$defs`
/// (which wins on a clash), so `#/$defs/X` finds a definition in either.
fn bridge_definitions(mut doc: serde_json::Value) -> serde_json::Value {
    let Some(root) = doc.as_object_mut() else { return doc };
    let Some(serde_json::Value::Object(definitions)) = root.get("definitions").cloned() else {
        return doc;
    };
    if definitions.is_empty() {
        return doc;
    }
    let defs = root.entry("$defs").or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let serde_json::Value::Object(defs) = defs {
        for (k, v) in definitions {
            defs.entry(k).or_insert(v);
        }
    }
    doc
}

#[cfg(test)]
mod tests;

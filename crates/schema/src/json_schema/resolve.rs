//! `$ref` resolution over the schema and the schemas it refers to, for the typed model
//! (validation resolves them again through the `jsonschema` crate's registry): the base URI
//! of every subschema (`$id`, `id` in draft 4), the resources and anchors they name, and
//! JSON pointers into them. A `#/$defs/...` pointer that misses at a document's root is
//! looked up in `definitions` too, as Confluent bridges the two.

use std::collections::HashMap;
use std::rc::Rc;

use jsonschema::uri;

use super::Draft;
use crate::json::Json;

/// The documents a schema's references may reach, indexed.
pub(crate) struct Documents<'a> {
    draft: Draft,
    /// The base URI in force at each object of the documents (by address).
    bases: HashMap<*const Json, Rc<str>>,
    /// Each resource by its absolute URI, without fragment.
    resources: HashMap<String, &'a Json>,
    /// Each plain-name fragment by its absolute URI (`base#name`).
    anchors: HashMap<String, &'a Json>,
    /// The documents' roots (where `$defs` and `definitions` are bridged).
    roots: Vec<*const Json>,
}

/// Where the registry puts a schema without `$id`, as the `jsonschema` crate does.
pub(crate) const DEFAULT_BASE: &str = "json-schema:///";

/// `reference` resolved against `base` (both URIs or URI references).
pub(crate) fn join(base: &str, reference: &str) -> Result<String, String> {
    let base = uri::from_str(base).map_err(|e| e.to_string())?;
    let joined = uri::resolve_against(&base.borrow(), reference).map_err(|e| e.to_string())?;
    Ok(joined.as_str().to_string())
}

fn strip_fragment(u: &str) -> &str {
    u.split_once('#').map_or(u, |(a, _)| a)
}

impl<'a> Documents<'a> {
    /// Indexes `documents`, each given with the URI it is registered under.
    pub(crate) fn new(draft: Draft, documents: &[(String, &'a Json)]) -> Documents<'a> {
        let mut d = Documents {
            draft,
            bases: HashMap::new(),
            resources: HashMap::new(),
            anchors: HashMap::new(),
            roots: Vec::new(),
        };
        for (uri, doc) in documents {
            let base: Rc<str> = Rc::from(strip_fragment(uri));
            d.resources.entry(base.to_string()).or_insert(doc);
            d.roots.push(*doc as *const Json);
            d.index(doc, base, 0);
        }
        d
    }

    fn index(&mut self, node: &'a Json, base: Rc<str>, depth: usize) {
        if depth > 512 {
            return;
        }
        match node {
            Json::Array(items) => {
                for item in items {
                    self.index(item, base.clone(), depth + 1);
                }
            }
            Json::Object(fields) => {
                let mut base = base;
                let id_key = if self.draft == Draft::V4 { "id" } else { "$id" };
                if let Some(id) = node.get(id_key).and_then(Json::as_str) {
                    match id.strip_prefix('#') {
                        // Drafts 4-7: an `$id` that is only a fragment names an anchor.
                        Some(name) if !self.draft.modern() && !name.is_empty() => {
                            self.anchors.insert(format!("{base}#{name}"), node);
                        }
                        _ => {
                            if let Ok(joined) = join(&base, id) {
                                let joined = strip_fragment(&joined).to_string();
                                self.resources.entry(joined.clone()).or_insert(node);
                                base = Rc::from(joined);
                            }
                        }
                    }
                }
                if self.draft.modern() {
                    for key in ["$anchor", "$dynamicAnchor"] {
                        if let Some(name) = node.get(key).and_then(Json::as_str) {
                            self.anchors.insert(format!("{base}#{name}"), node);
                        }
                    }
                }
                self.bases.insert(node as *const Json, base.clone());
                for (key, value) in fields {
                    if !matches!(key.as_str(), "enum" | "const" | "default" | "examples") {
                        self.index(value, base.clone(), depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// The subschema `reference` (a `$ref` found in `from`) points to.
    pub(crate) fn resolve(&self, from: &Json, reference: &str) -> Result<&'a Json, String> {
        let unresolved = || format!("unresolved $ref '{reference}'");
        let base = self.bases.get(&(from as *const Json)).map_or(DEFAULT_BASE, |b| b);
        let target = join(base, reference).map_err(|e| format!("{}: {e}", unresolved()))?;
        let (resource, fragment) = target.split_once('#').unwrap_or((&target, ""));
        let fragment = percent_decode(fragment);
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return self
                .anchors
                .get(&format!("{resource}#{fragment}"))
                .copied()
                .ok_or_else(unresolved);
        }
        let doc = *self.resources.get(resource).ok_or_else(unresolved)?;
        if let Some(found) = pointer(doc, &fragment) {
            return Ok(found);
        }
        // Confluent copies a document's top-level `definitions` into `$defs`.
        if let Some(rest) = fragment.strip_prefix("/$defs/")
            && self.roots.contains(&(doc as *const Json))
            && let Some(found) = pointer(doc, &format!("/definitions/{rest}"))
        {
            return Ok(found);
        }
        Err(unresolved())
    }
}

/// The value at a JSON pointer (RFC 6901) under `doc`.
fn pointer<'a>(doc: &'a Json, pointer: &str) -> Option<&'a Json> {
    if pointer.is_empty() {
        return Some(doc);
    }
    let mut node = doc;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Json::Object(_) => node.get(&token)?,
            Json::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

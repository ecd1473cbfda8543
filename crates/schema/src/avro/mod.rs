//! Avro: parsed and validated by apache-avro, read into a type graph (`model`), printed
//! as Java prints it (`print`), and checked for compatibility as Java checks it
//! (`compat`).

mod compat;
mod model;
mod print;

use crate::json::Json;

/// A valid Avro schema with its canonical text.
#[derive(Debug, Clone)]
pub(crate) struct AvroSchema {
    graph: model::Graph,
    canonical: String,
    /// apache-avro's reading of it and of its references, which decode data.
    codec: Box<(apache_avro::Schema, Vec<apache_avro::Schema>)>,
}

impl AvroSchema {
    /// Parses `text` with `references` (the texts of the named types it refers to, each
    /// before the ones that use it). The error is apache-avro's message, or ours.
    pub(crate) fn parse(text: &str, references: &[&str]) -> Result<AvroSchema, String> {
        let codec = apache_avro::Schema::parse_str_with_list(text, references.iter().copied())
            .map_err(|e| e.to_string())?;
        let mut reader = model::Reader::default();
        for r in references {
            let json = Json::parse(r).map_err(|e| format!("invalid JSON in a reference: {e}"))?;
            reader.read(&json)?;
        }
        let from_references = reader.named_ids();
        let json = Json::parse(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let root = reader.read(&json)?;
        let graph = reader.finish(root, from_references);
        let canonical = print::print(&graph);
        Ok(AvroSchema { graph, canonical, codec: Box::new(codec) })
    }

    /// The text Confluent's registry stores for it (Java's `Schema.toString()`).
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The full name of the root type when it is named (RecordNameStrategy's subject).
    pub(crate) fn record_name(&self) -> Option<String> {
        self.graph.node(self.graph.root).named().map(|n| n.name.full())
    }

    /// `data` (one datum, as Confluent's serializer writes it after the wire format's
    /// prefix) read with this schema, as JSON (a union's branch unwrapped, bytes as arrays
    /// of numbers). Every length it claims is bounded (`decode::MAX_ALLOCATION`); its depth
    /// is bounded by its length, which the caller bounds and gives stack for.
    pub(crate) fn decode(&self, data: &[u8]) -> Result<serde_json::Value, String> {
        apache_avro::util::max_allocation_bytes(crate::decode::MAX_ALLOCATION);
        let (schema, schemata) = &*self.codec;
        let mut rest = data;
        // The schema's own names resolve too (a recursive record refers to itself).
        let names: Vec<&apache_avro::Schema> = schemata.iter().chain([schema]).collect();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .writer_schemata(names)
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?
            .read_value(&mut rest)
            .map_err(|e| format!("not an Avro datum of this schema: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes left over after the Avro datum", rest.len()));
        }
        serde_json::Value::try_from(value).map_err(|e| e.to_string())
    }

    /// Whether it uses a named type by name (which a recursive type does): its data then
    /// nests as deep as it has bytes.
    pub(crate) fn may_recurse(&self) -> bool {
        use apache_avro::Schema;
        fn refers(s: &Schema) -> bool {
            match s {
                Schema::Ref { .. } => true,
                Schema::Record(r) => r.fields.iter().any(|f| refers(&f.schema)),
                Schema::Array(a) => refers(&a.items),
                Schema::Map(m) => refers(&m.types),
                Schema::Union(u) => u.variants().iter().any(refers),
                _ => false,
            }
        }
        let (schema, schemata) = &*self.codec;
        refers(schema) || schemata.iter().any(refers)
    }

    /// Confluent's `AvroSchema.isBackwardCompatible(previous)`: why `self`, reading, cannot
    /// read data `previous` wrote; messages with `%s`-free placeholders filled with
    /// `reader` and `writer` ("new"/"old").
    pub(crate) fn can_read(
        &self,
        previous: &AvroSchema,
        reader: &str,
        writer: &str,
    ) -> Vec<String> {
        compat::check(&self.graph, &previous.graph)
            .iter()
            .map(|i| i.describe(reader, writer))
            .collect()
    }
}

#[cfg(test)]
mod tests;

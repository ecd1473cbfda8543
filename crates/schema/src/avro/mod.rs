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
}

impl AvroSchema {
    /// Parses `text` with `references` (the texts of the named types it refers to, each
    /// before the ones that use it). The error is apache-avro's message, or ours.
    pub(crate) fn parse(text: &str, references: &[&str]) -> Result<AvroSchema, String> {
        apache_avro::Schema::parse_str_with_list(text, references.iter().copied())
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
        Ok(AvroSchema { graph, canonical })
    }

    /// The text Confluent's registry stores for it (Java's `Schema.toString()`).
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The full name of the root type when it is named (RecordNameStrategy's subject).
    pub(crate) fn record_name(&self) -> Option<String> {
        self.graph.node(self.graph.root).named().map(|n| n.name.full())
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

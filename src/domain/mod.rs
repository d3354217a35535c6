//! Parsed domain types: request bodies are parsed into these ("parse, don't validate").

//! Calico's label selector language. (Stub API: being implemented; signatures are the contract.)

use std::collections::{BTreeMap, HashMap};

/// A read-only view of a label map. Implemented for the std maps; policy-ir implements it for
/// layered endpoint labels (own labels over profile labels over implicit labels).
pub trait Labels {
    fn get(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }
}

impl Labels for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        HashMap::get(self, key).map(String::as_str)
    }
}

/// A parse error: byte offset into the selector and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// A parsed selector.
#[derive(Debug, Clone)]
pub struct Selector {
    canonical: String,
    uid: String,
}

/// Parses a selector (empty = `all()`).
pub fn parse(input: &str) -> Result<Selector, ParseError> {
    let _ = input;
    todo!("selector-lang is being implemented")
}

impl Selector {
    /// Calico's canonical string (`Selector.String()`).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
    /// `s:` + base64url(SHA-224("s:" + canonical)), unpadded.
    pub fn uid(&self) -> &str {
        &self.uid
    }
    /// Evaluates the selector against a label map.
    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let _ = labels;
        todo!()
    }
}

//! Reading the sections of the layered configuration, each into its raw type on its own, every
//! problem named by its key (`section.key: problem`) — and remembering which top-level keys
//! were read, with the keys each accepts: whatever else the file or the environment sets is
//! unknown, and refused.

use super::keys::{self, Shape};
use super::strict;
use figment::Figment;
use serde::de::DeserializeOwned;

/// The configuration being read, and the top-level keys read from it so far.
pub(super) struct Sections<'f> {
    figment: &'f Figment,
    known: Vec<(&'static str, Shape)>,
}

impl<'f> Sections<'f> {
    pub(super) fn new(figment: &'f Figment) -> Self {
        Self { figment, known: Vec::new() }
    }

    pub(super) fn figment(&self) -> &'f Figment {
        self.figment
    }

    /// Reads one section; absent means defaults. Values from the environment are strings, so
    /// numbers and booleans are read leniently. Unknown keys are refused, all of them.
    pub(super) fn read<T: DeserializeOwned + Default>(
        &mut self,
        name: &'static str,
        errors: &mut Vec<String>,
    ) -> Option<T> {
        let shape = keys::shape::<T>();
        let value = self.figment.find_value(name).ok();
        self.known.push((name, shape));
        let Some(value) = value else { return Some(T::default()) };
        let before = errors.len();
        let shape = &self.known.last().expect("just pushed").1;
        strict::refuse_unknown(self.figment, &mut vec![name.to_owned()], &value, shape, errors);
        if errors.len() > before {
            // serde would stop at the first of them: they are all reported already.
            return None;
        }
        match self.figment.extract_inner_lossy::<T>(name) {
            Ok(value) => Some(value),
            Err(e) => {
                errors.extend(e.into_iter().map(|e| describe(name, &e)));
                None
            }
        }
    }

    /// A top-level key read by its own code (the providers), with what it accepts.
    pub(super) fn claim(&mut self, name: &'static str, shape: Shape) {
        self.known.push((name, shape));
    }

    /// Refuses the top-level keys no section read (each section checked its own keys);
    /// returns what the configuration accepts.
    pub(super) fn finish(self, errors: &mut Vec<String>) -> Shape {
        let top = Shape::Table(self.known.iter().map(|(name, _)| (*name, Shape::Value)).collect());
        if let Ok(root) = self.figment.find_value("") {
            strict::refuse_unknown(self.figment, &mut Vec::new(), &root, &top, errors);
        }
        Shape::Table(self.known)
    }
}

/// `section.key: problem`, from a figment error.
fn describe(section: &str, error: &figment::Error) -> String {
    // figment 0.10's `extract_inner` appends the section's name to the error's path instead of
    // putting it first (`tls.server`): put it back in front.
    let mut path = error.path.clone();
    if path.last().is_some_and(|last| last == section) {
        path.pop();
    }
    path.insert(0, section.to_owned());
    format!("{}: {}", path.join("."), error.kind)
}

//! The keys a raw configuration type accepts, read from its serde derive: a probe deserializer
//! walks the type one key at a time and notes what each key holds — a table and its keys, a
//! choice of kinds (the providers), or a value. The strict check (`strict.rs`) and the test of
//! docs/configuration.md both use it, so no list of keys is kept by hand.

use serde::de::{self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess};
use serde::de::{SeqAccess, VariantAccess, Visitor};
use std::fmt;

/// What a key holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    /// A table and what each of its keys holds (an array of tables has its tables' shape).
    Table(Vec<(&'static str, Shape)>),
    /// An enum read from a table by its `kind`: each kind with its own keys.
    Kinds(Vec<(&'static str, Shape)>),
    /// A value (a string, number, duration, list of values…).
    Value,
}

impl Shape {
    /// The keys of a table (none for a value).
    pub(super) fn keys(&self) -> Vec<&'static str> {
        match self {
            Shape::Table(keys) | Shape::Kinds(keys) => keys.iter().map(|(key, _)| *key).collect(),
            Shape::Value => Vec::new(),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<&Shape> {
        match self {
            Shape::Table(keys) | Shape::Kinds(keys) => keys.iter().find(|(k, _)| *k == key).map(|(_, shape)| shape),
            Shape::Value => None,
        }
    }
}

/// The shape of `T`, as its `Deserialize` asks for it.
pub(super) fn shape<T: DeserializeOwned>() -> Shape {
    shape_at::<T>(&mut Vec::new())
}

fn shape_at<T: DeserializeOwned>(path: &mut Vec<&'static str>) -> Shape {
    let mut found = Found::Value;
    // The probe always ends in `Stop`, once it has seen what the key at `path` holds.
    let _ = T::deserialize(Probe { path, found: &mut found });
    let mut below = |names: &'static [&'static str]| -> Vec<(&'static str, Shape)> {
        names
            .iter()
            .map(|name| {
                path.push(name);
                let shape = shape_at::<T>(path);
                path.pop();
                (*name, shape)
            })
            .collect()
    };
    match found {
        Found::Fields(names) => Shape::Table(below(names)),
        Found::Variants(names) => {
            let kinds = below(names);
            // An enum of plain names (`"text" | "json"`) is a value.
            match kinds.iter().all(|(_, shape)| *shape == Shape::Value) {
                true => Shape::Value,
                false => Shape::Kinds(kinds),
            }
        }
        Found::Value => Shape::Value,
    }
}

enum Found {
    Fields(&'static [&'static str]),
    Variants(&'static [&'static str]),
    Value,
}

/// Hands a `Deserialize` the one key of `path` at each level, until the path is used up; then
/// notes what is asked for there and stops.
struct Probe<'p> {
    path: &'p [&'static str],
    found: &'p mut Found,
}

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    /// An array of tables is probed through one element.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(One(Some(self)))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.found = Found::Fields(fields);
                Err(Stop)
            }
            Some((key, path)) => visitor.visit_map(Key(Some((key, Probe { path, found: self.found })))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.found = Found::Variants(variants);
                Err(Stop)
            }
            Some((key, path)) => visitor.visit_enum(Variant(key, Probe { path, found: self.found })),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct tuple tuple_struct map identifier ignored_any
    }
}

/// A table with the one key of the path.
struct Key<'p>(Option<(&'static str, Probe<'p>)>);

impl<'de> MapAccess<'de> for Key<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Stop> {
        match &self.0 {
            Some((key, _)) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let (_, probe) = self.0.take().ok_or(Stop)?;
        seed.deserialize(probe)
    }
}

/// An array with one element.
struct One<'p>(Option<Probe<'p>>);

impl<'de> SeqAccess<'de> for One<'_> {
    type Error = Stop;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Stop> {
        self.0.take().map(|probe| seed.deserialize(probe)).transpose()
    }
}

/// The kind the path names.
struct Variant<'p>(&'static str, Probe<'p>);

impl<'de, 'p> EnumAccess<'de> for Variant<'p> {
    type Error = Stop;
    type Variant = Probe<'p>;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Probe<'p>), Stop> {
        Ok((seed.deserialize(self.0.into_deserializer())?, self.1))
    }
}

impl<'de> VariantAccess<'de> for Probe<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Stop> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Stop> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{Shape, shape};
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        plain: u32,
        #[serde(with = "humantime_serde")]
        wait: std::time::Duration,
        inner: Option<Inner>,
        many: Vec<Inner>,
        kind: Kind,
        format: Format,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    struct Inner {
        a: String,
        b: Option<Vec<u16>>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        One(Inner),
        Two { c: bool },
    }

    #[allow(dead_code)]
    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Text,
        Json,
    }

    #[test]
    fn the_probe_reads_every_key_at_every_depth() {
        let inner = Shape::Table(vec![("a", Shape::Value), ("b", Shape::Value)]);
        assert_eq!(
            shape::<Outer>(),
            Shape::Table(vec![
                ("plain", Shape::Value),
                ("wait", Shape::Value),
                ("inner", inner.clone()),
                ("many", inner.clone()),
                ("kind", Shape::Kinds(vec![("one", inner), ("two", Shape::Table(vec![("c", Shape::Value)]))])),
                ("format", Shape::Value),
            ])
        );
    }
}

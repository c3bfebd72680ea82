//! serde `SeqAccess`/`MapAccess`/`EnumAccess` over [`Node`] children: each child gets its own key path
//! (`prefix.key`, `prefix[3]`) and errors are tagged with the child's (or key's) location.

use serde::de::{self, DeserializeSeed, Visitor};

use super::{DeError, NodeDeserializer, expected};
use crate::error::join_path;
use crate::node::Node;

pub(super) struct SeqAccessor<'de, 'p> {
    pub(super) iter: std::iter::Enumerate<std::slice::Iter<'de, Node>>,
    pub(super) prefix: &'p str,
}

impl<'de> de::SeqAccess<'de> for SeqAccessor<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some((index, node)) = self.iter.next() else {
            return Ok(None);
        };
        let path = format!("{}[{index}]", self.prefix);
        seed.deserialize(NodeDeserializer::new(node, path.clone()))
            .map(Some)
            .map_err(|e| e.at(&node.location, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

pub(super) struct MapAccessor<'de, 'p> {
    iter: std::slice::Iter<'de, (Node, Node)>,
    pub(super) prefix: &'p str,
    pending: Option<(&'de Node, String)>,
}

impl<'de, 'p> MapAccessor<'de, 'p> {
    pub(super) fn new(entries: &'de [(Node, Node)], prefix: &'p str) -> Self {
        MapAccessor {
            iter: entries.iter(),
            prefix,
            pending: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccessor<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = join_path(self.prefix, key.as_str().unwrap_or_default());
        let deserializer = NodeDeserializer {
            node: key,
            path: path.clone(),
            is_key: true,
        };
        let result = seed
            .deserialize(deserializer)
            .map_err(|e| e.at(&key.location, &path))?;
        self.pending = Some((value, path));
        Ok(Some(result))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((node, path)) = self.pending.take() else {
            return Err(DeError::msg(
                "internal error: mapping value requested before its key",
            ));
        };
        seed.deserialize(NodeDeserializer::new(node, path.clone()))
            .map_err(|e| e.at(&node.location, &path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

pub(super) struct EnumAccessor<'de> {
    pub(super) variant: &'de Node,
    pub(super) content: Option<&'de Node>,
    pub(super) path: String,
}

impl<'de> de::EnumAccess<'de> for EnumAccessor<'de> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), DeError> {
        let deserializer = NodeDeserializer {
            node: self.variant,
            path: self.path.clone(),
            is_key: true,
        };
        let value = seed
            .deserialize(deserializer)
            .map_err(|e| e.at(&self.variant.location, &self.path))?;
        Ok((value, self))
    }
}

impl<'de> EnumAccessor<'de> {
    fn content(&self) -> Result<&'de Node, DeError> {
        self.content.ok_or_else(|| {
            DeError::msg(format!(
                "variant `{}` needs a value: write it as a mapping `{}: ...`",
                self.variant.as_str().unwrap_or_default(),
                self.variant.as_str().unwrap_or_default()
            ))
            .at(&self.variant.location, &self.path)
        })
    }
}

impl<'de> de::VariantAccess<'de> for EnumAccessor<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        match self.content {
            Some(node) if !node.is_null() => {
                Err(expected("nothing after a unit variant", node).at(&node.location, &self.path))
            }
            _ => Ok(()),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        let node = self.content()?;
        seed.deserialize(NodeDeserializer::new(node, self.path.clone()))
            .map_err(|e| e.at(&node.location, &self.path))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        let node = self.content()?;
        de::Deserializer::deserialize_seq(NodeDeserializer::new(node, self.path.clone()), visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.content()?;
        de::Deserializer::deserialize_map(NodeDeserializer::new(node, self.path.clone()), visitor)
    }
}

//! Turns YAML text into a [`Node`] tree using `saphyr-parser`'s event stream, resolving anchors, aliases and
//! merge keys, and rejecting duplicate keys, non-scalar keys, alias bombs and absurd nesting.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::error::{ConfigError, Location};
use crate::node::{Node, Value};

/// Maximum number of nodes in one document, counting every alias expansion (defeats "billion laughs").
pub(crate) const MAX_NODES: usize = 100_000;
/// Maximum scalar bytes produced by alias expansion (defeats aliasing one huge string many times).
const MAX_ALIAS_BYTES: usize = 16 << 20;
/// Maximum nesting of sequences/mappings (keeps every recursive walk over the tree far from stack overflow).
pub(crate) const MAX_DEPTH: usize = 128;

/// Parse one YAML document. `file` names the source in locations. Empty document → empty Map.
pub fn load_str(file: &str, text: &str) -> Result<Node, ConfigError> {
    let file: Arc<str> = file.into();
    let loader = Loader {
        file: file.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        alias_bytes: 0,
    };
    // saphyr-parser is not supposed to panic, but it has internal `unwrap`s; a configuration loader must turn any
    // input into an error rather than abort the process.
    std::panic::catch_unwind(AssertUnwindSafe(|| loader.run(text))).unwrap_or_else(|_| {
        Err(ConfigError::new(
            Location::new(file, 1, 1),
            "",
            "the YAML parser failed on this input",
        ))
    })
}

struct Loader {
    file: Arc<str>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    alias_bytes: usize,
}

enum Frame {
    Seq {
        anchor: usize,
        location: Location,
        items: Vec<Node>,
    },
    Map(MapFrame),
}

struct MapFrame {
    anchor: usize,
    location: Location,
    entries: Vec<(Node, Node)>,
    /// The key read but whose value has not been seen yet.
    key: Option<Node>,
    /// Keys already present, with where they were first written.
    seen: HashMap<String, Location>,
    /// Values of `<<` merge keys, applied when the mapping ends.
    merges: Vec<Node>,
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, quoted: false } if text == "<<")
}

fn is_str_tag(tag: Option<&Tag>) -> bool {
    tag.is_some_and(|t| t.suffix == "str" && (t.handle == "!!" || t.is_yaml_core_schema()))
}

impl Loader {
    fn location(&self, span: Span) -> Location {
        Location::new(
            self.file.clone(),
            span.start.line().max(1),
            span.start.col() + 1,
        )
    }

    fn error(&self, location: Location, message: impl Into<String>) -> ConfigError {
        ConfigError::new(location, "", message)
    }

    fn run(mut self, text: &str) -> Result<Node, ConfigError> {
        let mut parser = Parser::new_from_str(text);
        let mut root: Option<Node> = None;
        let mut documents = 0usize;
        while let Some(next) = parser.next_event() {
            let (event, span) = next.map_err(|e| {
                let m = e.marker();
                let loc = Location::new(self.file.clone(), m.line().max(1), m.col() + 1);
                self.error(loc, format!("YAML syntax error: {}", e.info()))
            })?;
            let location = self.location(span);
            match event {
                Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => break,
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(self.error(
                            location,
                            "multiple YAML documents in one file are not supported",
                        ));
                    }
                }
                Event::Alias(id) => {
                    let Some(target) = self.anchors.get(&id) else {
                        return Err(
                            self.error(location, "alias refers to an unknown or unfinished anchor")
                        );
                    };
                    self.nodes = self.nodes.saturating_add(target.count());
                    self.alias_bytes = self.alias_bytes.saturating_add(target.text_bytes());
                    if self.nodes > MAX_NODES || self.alias_bytes > MAX_ALIAS_BYTES {
                        return Err(self.error(
                            location,
                            format!("document too large after expanding aliases (limit {MAX_NODES} nodes)"),
                        ));
                    }
                    let node = target.clone();
                    self.complete(node, 0, &mut root)?;
                }
                Event::Scalar(text, style, anchor, tag) => {
                    self.count_node(&location)?;
                    let quoted = style != ScalarStyle::Plain || is_str_tag(tag.as_deref());
                    let value = if !quoted && text.is_empty() {
                        Value::Null
                    } else {
                        Value::Scalar {
                            text: text.into_owned(),
                            quoted,
                        }
                    };
                    self.complete(Node::new(value, location), anchor, &mut root)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(&location)?;
                    self.stack.push(Frame::Seq {
                        anchor,
                        location,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.open(&location)?;
                    self.stack.push(Frame::Map(MapFrame {
                        anchor,
                        location,
                        entries: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                        merges: Vec::new(),
                    }));
                }
                Event::SequenceEnd => match self.stack.pop() {
                    Some(Frame::Seq {
                        anchor,
                        location,
                        items,
                    }) => {
                        self.complete(Node::new(Value::Seq(items), location), anchor, &mut root)?;
                    }
                    _ => return Err(self.error(location, "unbalanced sequence end")),
                },
                Event::MappingEnd => match self.stack.pop() {
                    Some(Frame::Map(frame)) => {
                        let anchor = frame.anchor;
                        let node = finish_map(frame);
                        self.complete(node, anchor, &mut root)?;
                    }
                    _ => return Err(self.error(location, "unbalanced mapping end")),
                },
            }
        }
        if !self.stack.is_empty() {
            return Err(self.error(
                Location::new(self.file.clone(), 1, 1),
                "unexpected end of YAML input",
            ));
        }
        Ok(root.unwrap_or_else(|| {
            Node::new(
                Value::Map(Vec::new()),
                Location::new(self.file.clone(), 1, 1),
            )
        }))
    }

    fn count_node(&mut self, location: &Location) -> Result<(), ConfigError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error(
                location.clone(),
                format!("document too large (limit {MAX_NODES} nodes)"),
            ));
        }
        Ok(())
    }

    fn open(&mut self, location: &Location) -> Result<(), ConfigError> {
        self.count_node(location)?;
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(
                location.clone(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn complete(
        &mut self,
        node: Node,
        anchor: usize,
        root: &mut Option<Node>,
    ) -> Result<(), ConfigError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let err = |location: Location, message: String| ConfigError::new(location, "", message);
        match self.stack.last_mut() {
            None => {
                if root.is_some() {
                    return Err(err(node.location, "unexpected second root value".into()));
                }
                *root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map(frame)) => match frame.key.take() {
                None => {
                    let key = match node.value {
                        Value::Scalar { .. } => node,
                        Value::Null => Node::plain("", node.location),
                        _ => return Err(err(node.location, "mapping keys must be scalars".into())),
                    };
                    if !is_merge_key(&key) {
                        let text = key.as_str().unwrap_or_default().to_owned();
                        if let Some(first) = frame.seen.get(&text) {
                            return Err(ConfigError::new(
                                key.location.clone(),
                                text.clone(),
                                format!("duplicate key `{text}` (first defined at {first})"),
                            ));
                        }
                        frame.seen.insert(text, key.location.clone());
                    }
                    frame.key = Some(key);
                }
                Some(key) if is_merge_key(&key) => {
                    let ok = match &node.value {
                        Value::Map(_) => true,
                        Value::Seq(items) => items.iter().all(|i| matches!(i.value, Value::Map(_))),
                        _ => false,
                    };
                    if !ok {
                        return Err(err(
                            node.location,
                            "a `<<` merge key needs a mapping or a list of mappings".into(),
                        ));
                    }
                    frame.merges.push(node);
                }
                Some(key) => frame.entries.push((key, node)),
            },
        }
        Ok(())
    }
}

/// Builds the mapping node, adding entries from `<<` merge keys that the mapping does not set itself.
fn finish_map(frame: MapFrame) -> Node {
    let MapFrame {
        location,
        mut entries,
        mut seen,
        merges,
        ..
    } = frame;
    for source in merges {
        let maps = match source.value {
            Value::Seq(items) => items,
            other => vec![Node::new(other, source.location)],
        };
        for map in maps {
            if let Value::Map(merged) = map.value {
                for (k, v) in merged {
                    let text = k.as_str().unwrap_or_default().to_owned();
                    if let std::collections::hash_map::Entry::Vacant(slot) = seen.entry(text) {
                        slot.insert(k.location.clone());
                        entries.push((k, v));
                    }
                }
            }
        }
    }
    Node::new(Value::Map(entries), location)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

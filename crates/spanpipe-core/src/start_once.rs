//! The client an exporter builds in `start` (not at config time, so `validate` opens nothing) and uses in every
//! export: built once, and an export before `start` is a permanent error rather than a panic.

use std::sync::OnceLock;

use crate::{ComponentError, ExportError};

/// A value built by the first successful `start`.
#[derive(Debug)]
pub struct StartOnce<T>(OnceLock<T>);

impl<T> Default for StartOnce<T> {
    fn default() -> Self {
        StartOnce(OnceLock::new())
    }
}

impl<T> StartOnce<T> {
    /// Builds the value unless a previous start did; a build error names component `id`.
    pub fn start(
        &self,
        id: &str,
        make: impl FnOnce() -> Result<T, String>,
    ) -> Result<(), ComponentError> {
        if self.0.get().is_none() {
            let value = make().map_err(|m| ComponentError::new(id, m))?;
            let _ = self.0.set(value);
        }
        Ok(())
    }

    /// The value, or the error an export before `start` gets.
    pub fn get(&self) -> Result<&T, ExportError> {
        self.0
            .get()
            .ok_or_else(|| ExportError::permanent("exporter not started"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_once_and_refuses_use_before_start() {
        let s = StartOnce::<u32>::default();
        assert!(s.get().is_err());
        assert!(s.start("x", || Err("no".into())).is_err());
        assert!(s.get().is_err());
        s.start("x", || Ok(1)).unwrap();
        s.start("x", || Ok(2)).unwrap();
        assert_eq!(s.get().ok(), Some(&1));
    }
}

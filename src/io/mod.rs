//! Files: model weights in safetensors, tensors in `.npy`, and atomic writes.

pub mod model_file;
pub mod npy;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under a temporary name beside its destination; [`PendingFile::commit`]
/// renames it into place, dropping it uncommitted removes it. So an error or an interruption
/// never leaves a half-written file at the destination.
#[derive(Debug)]
pub struct PendingFile {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Writes `bytes` to a temporary file next to `dest`.
    pub fn write(dest: &Path, bytes: &[u8]) -> Result<Self> {
        let name = dest
            .file_name()
            .ok_or_else(|| Error::io(dest, "not a file name"))?
            .to_string_lossy();
        let temp = dest.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let pending = PendingFile {
            temp,
            dest: dest.to_path_buf(),
            committed: false,
        };
        let mut f = File::create(&pending.temp).map_err(|e| Error::io(dest, e))?;
        f.write_all(bytes).map_err(|e| Error::io(dest, e))?;
        f.sync_all().map_err(|e| Error::io(dest, e))?;
        Ok(pending)
    }

    /// Moves the file into place.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` atomically (temporary file, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    PendingFile::write(dest, bytes)?.commit()
}

//! Files: model weights in safetensors, ONNX models, tensors in `.npy`, and atomic writes.

pub mod model_file;
pub mod npy;
pub mod onnx;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A file being written under a unique temporary name beside its destination (so that two
/// writers, even two threads of one process, never share one); [`PendingFile::commit`] renames
/// it into place, dropping it uncommitted removes it. So an error or an interruption never
/// leaves a half-written file at the destination.
#[derive(Debug)]
pub struct PendingFile {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl PendingFile {
    /// Writes `bytes` to a temporary file next to `dest`.
    pub fn write(dest: &Path, bytes: &[u8]) -> Result<Self> {
        let name = dest.file_name().ok_or_else(|| {
            Error::io(
                dest,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // Outputs are ordinary files (readable by others), not private temporary ones.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let mut temp = builder.tempfile_in(dir).map_err(|e| Error::io(dest, e))?;
        temp.write_all(bytes).map_err(|e| Error::io(dest, e))?;
        temp.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
        Ok(PendingFile {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// Moves the file into place.
    pub fn commit(self) -> Result<()> {
        self.temp
            .persist(&self.dest)
            .map_err(|e| Error::io(&self.dest, e.error))?;
        Ok(())
    }
}

/// Writes `bytes` to `dest` atomically (temporary file, then rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    PendingFile::write(dest, bytes)?.commit()
}

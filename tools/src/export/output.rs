//! The output file of an export, written under a temporary name in the same directory and
//! renamed to its real name only once it is complete, so that a failed or interrupted export
//! never leaves a file that looks finished.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::error::ExportError;

/// A temporary file that becomes `target` on [`TempOutput::commit`] and is removed when dropped
/// before that.
#[derive(Debug)]
pub(crate) struct TempOutput {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl TempOutput {
    /// Creates `.NAME.PID.tmp` next to `target` and returns it open for writing. Fails when the
    /// directory does not exist or cannot be written, or when `target` names a directory.
    pub(crate) fn create(target: &Path) -> Result<(TempOutput, File), ExportError> {
        let create_error = |source| ExportError::CreateOutput { path: target.to_owned(), source };
        let Some(name) = target.file_name() else {
            return Err(create_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the output path has no file name",
            )));
        };
        if target.is_dir() {
            return Err(create_error(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "the output path is a directory",
            )));
        }
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = directory.join(temp_name);
        let file = OpenOptions::new().write(true).create_new(true).open(&temp).map_err(create_error)?;
        let output = TempOutput { temp, target: target.to_owned(), committed: false };
        Ok((output, file))
    }

    /// Returns the temporary path being written.
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes `file` to disk and renames the temporary file to the target, replacing any file
    /// of that name.
    pub(crate) fn commit(mut self, file: File) -> Result<(), ExportError> {
        file.sync_all().map_err(|source| ExportError::Write { path: self.temp.clone(), source })?;
        drop(file);
        std::fs::rename(&self.temp, &self.target).map_err(|source| ExportError::Rename {
            from: self.temp.clone(),
            to: self.target.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.committed {
            // The file may be gone already; there is nothing else to clean up.
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mdfh-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn dropped_output_is_removed() {
        let dir = test_dir("dropped");
        let target = dir.join("out.csv");
        let Ok((output, mut file)) = TempOutput::create(&target) else { panic!("cannot create the output") };
        assert!(file.write_all(b"half a file").is_ok());
        assert_eq!(entries(&dir), [format!(".out.csv.{}.tmp", std::process::id())]);
        drop(output);
        assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    }

    #[test]
    fn committed_output_replaces_the_target() {
        let dir = test_dir("committed");
        let target = dir.join("out.csv");
        assert!(std::fs::write(&target, b"old").is_ok());
        let Ok((output, mut file)) = TempOutput::create(&target) else { panic!("cannot create the output") };
        assert!(file.write_all(b"new").is_ok());
        assert!(output.commit(file).is_ok());
        assert_eq!(std::fs::read(&target).ok(), Some(b"new".to_vec()));
        assert_eq!(entries(&dir), ["out.csv"]);
    }
}

//! The reject file, `<output>.rejects.jsonl`: one JSON object per row that could not be
//! scored (row number, raw text, field, reason), committed together with the output so that
//! a resumed run neither loses nor repeats a rejection.

use super::row::RejectedRow;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Appends rejections; the file is created on the first one.
pub struct RejectFile {
    path: PathBuf,
    file: Option<File>,
    bytes: u64,
    count: u64,
    buffer: Vec<u8>,
}

impl RejectFile {
    /// Opens the reject file for a run that resumes after `committed_bytes` and
    /// `committed_count` rejections (0 and 0 for a fresh run, which removes an old file).
    pub fn open(path: &Path, committed_bytes: u64, committed_count: u64) -> std::io::Result<Self> {
        let mut file = None;
        if committed_bytes == 0 {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        } else {
            let mut existing = OpenOptions::new().write(true).open(path)?;
            let actual = existing.metadata()?.len();
            if actual < committed_bytes {
                return Err(std::io::Error::other(format!(
                    "reject file is {actual} bytes, shorter than the {committed_bytes} bytes \
                     committed; it was changed since the checkpoint"
                )));
            }
            existing.set_len(committed_bytes)?;
            existing.seek(SeekFrom::End(0))?;
            file = Some(existing);
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            bytes: committed_bytes,
            count: committed_count,
            buffer: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rejections written so far (committed or not), including earlier runs'.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Byte length written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends rejections.
    pub fn write(&mut self, rejections: &[RejectedRow]) -> std::io::Result<()> {
        if rejections.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for rejection in rejections {
            serde_json::to_writer(&mut self.buffer, rejection)?;
            self.buffer.push(b'\n');
        }
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(&self.buffer)?;
        self.bytes += self.buffer.len() as u64;
        self.count += rejections.len() as u64;
        Ok(())
    }

    /// Syncs the file when `durable`.
    pub fn commit(&mut self, durable: bool) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(file) if durable => file.sync_data(),
            _ => Ok(()),
        }
    }
}

/// Reads a reject file back (for tests and tools).
pub fn read(path: &Path) -> std::io::Result<Vec<RejectedRow>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(std::io::Error::other))
        .collect()
}

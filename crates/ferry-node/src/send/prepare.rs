//! The sender's side of an offer: the files and folders named on the command line, walked
//! (symlinks refused) and chunked into the offer's file list.

use super::*;

// ---------------------------------------------------------------------------------------------
// Sender: building the offer

/// One path given to `ferry send`, walked: files and folders with their names in the send.
pub(crate) fn collect(arg: &Path, files: &mut Vec<(RelPath, PathBuf)>, dirs: &mut Vec<RelPath>) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(arg).map_err(|e| format!("{}: {e}", arg.display()))?;
    let name = arg
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: cannot send a path without a UTF-8 file name", arg.display()))?;
    let rel = RelPath::new(name).map_err(|e| format!("{}: cannot send this name: {e}", arg.display()))?;
    walk(arg, &meta, rel, files, dirs)
}

fn walk(
    path: &Path,
    meta: &std::fs::Metadata,
    rel: RelPath,
    files: &mut Vec<(RelPath, PathBuf)>,
    dirs: &mut Vec<RelPath>,
) -> Result<(), String> {
    let ft = meta.file_type();
    if ft.is_file() {
        files.push((rel, path.to_path_buf()));
    } else if ft.is_dir() {
        dirs.push(rel.clone());
        if files.len() > MAX_SEND_FILES || dirs.len() > MAX_SEND_DIRS {
            return Err(format!("more than {MAX_SEND_FILES} files or folders; send fewer at a time"));
        }
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_str().ok_or_else(|| format!("{}: the name is not UTF-8", p.display()))?;
            let child = RelPath::new(format!("{rel}/{name}"))
                .map_err(|err| format!("{}: cannot send this name: {err}", p.display()))?;
            let m = std::fs::symlink_metadata(&p).map_err(|err| format!("{}: {err}", p.display()))?;
            walk(&p, &m, child, files, dirs)?;
        }
    } else if ft.is_symlink() {
        return Err(format!("{} is a symbolic link; sends carry regular files and folders only", path.display()));
    } else {
        return Err(format!("{} is not a regular file or folder", path.display()));
    }
    Ok(())
}

/// Chunks the files (blocking): size, mtime, hash and chunks, checking nothing changed while
/// it was read.
pub(crate) fn describe_files(list: &[(RelPath, PathBuf)]) -> Result<Vec<SendFile>, String> {
    let mut out = Vec::with_capacity(list.len());
    let mut total = 0u64;
    for (rel, path) in list {
        let before = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        total = total.saturating_add(before.len());
        if total > MAX_SEND_BYTES {
            return Err(format!("the files add up to more than {MAX_SEND_BYTES} bytes; send fewer at a time"));
        }
        let c = ferry_fs::chunk_file(path).map_err(|e| e.to_string())?;
        let after = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (m0, m1) = (mtime_ns(&before), mtime_ns(&after));
        if c.size != after.len() || before.len() != after.len() || m0 != m1 {
            return Err(format!("{} changed while it was being read; try again", path.display()));
        }
        out.push(SendFile {
            path: rel.clone(),
            size: c.size,
            mtime_ns: m1,
            executable: after.permissions().mode() & 0o111 != 0,
            hash: c.hash,
            chunks: c.chunks,
        });
    }
    Ok(out)
}

pub(crate) fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())
}

// ---------------------------------------------------------------------------------------------
// Receiver: checking an offer

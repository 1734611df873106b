//! Things a share can hold that Ferry cannot sync, made the way a user's programs make them: a
//! FIFO, a name that is not UTF-8, a file Ferry may not read (as root too, see
//! [`without_dac_override`]), and a watch that tells whether anyone opened a file.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::inotify;

/// Makes a FIFO (named pipe) at `path`, without opening it.
pub fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(0o644)).expect("mkfifo");
}

/// `dir` joined with a name of raw bytes (not necessarily UTF-8).
pub fn raw_name(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// Drops `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH` from the calling thread's effective
/// capabilities (kept as permitted), so file modes apply to it even as root (CI runs as root):
/// a file of mode 000 is then unreadable. Capabilities are per thread and inherited by the
/// threads it starts: call this first in a plain `#[test]` and build the runtime after it (see
/// [`runtime`]). A no-op for a user without them.
pub fn without_dac_override() {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    let mut caps = capabilities(None).expect("capget");
    caps.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
    set_capabilities(None, caps).expect("capset");
}

/// A multi-threaded runtime whose threads are started by (and inherit the capabilities of) the
/// calling thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime")
}

/// Tells whether anyone opened (or read) one file since the watch began (inotify `IN_OPEN`,
/// `IN_ACCESS` on the file itself: it sees every opener, this process's included).
pub struct OpenWatch {
    fd: OwnedFd,
}

impl OpenWatch {
    pub fn new(path: &Path) -> OpenWatch {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).expect("inotify");
        inotify::add_watch(&fd, path, inotify::WatchFlags::OPEN | inotify::WatchFlags::ACCESS).expect("watch");
        OpenWatch { fd }
    }

    /// True once an open or a read has happened (events are consumed).
    pub fn opened(&self) -> bool {
        let mut buf = [0u8; 4096];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(n) => n > 0,
            Err(rustix::io::Errno::AGAIN) => false,
            Err(e) => panic!("reading inotify events: {e}"),
        }
    }
}

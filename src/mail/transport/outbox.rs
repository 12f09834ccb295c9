//! The `file://` outbox: each message written whole to a hidden file, then renamed into place.

use super::{SendFailure, Trouble};
use std::path::PathBuf;

/// Writes the message whole to a hidden file, then renames it into place: a crash never
/// leaves half a message in the outbox.
pub(super) async fn write_to_outbox(
    dir: &PathBuf,
    name: &str,
    message: &[u8],
) -> Result<String, SendFailure> {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    let written = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&partial, message).await?;
        tokio::fs::rename(&partial, &path).await
    };
    match written.await {
        Ok(()) => Ok(format!("written to {}", path.display())),
        // A full disk or a missing permission: nothing to gain from retrying each message; the
        // campaign pauses and the admins are told.
        Err(e) => Err(SendFailure::Unavailable {
            reason: format!("writing {}: {e}", path.display()),
            trouble: Trouble::Outbox,
        }),
    }
}

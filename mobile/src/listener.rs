//! Callbacks implemented by the app: [`ChangeListener`] (what changed after an edit or a
//! sync) and [`SyncProgressListener`] (where a sync is).
//!
//! The bindings call them synchronously on the thread doing the work — the caller's thread
//! for a local edit, a background thread for a sync — and never while holding a lock of
//! the replica, so a listener may query the replica. A listener should return quickly (post
//! to the UI thread and return). An exception thrown by a listener is contained and reported
//! as one line on stderr: it cannot undo an edit that is already committed, and must not
//! break the sync.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use crate::sync::SyncProgress;
use crate::types::ChangeSet;

/// Told what changed after every committed local edit and every sync round that changed
/// something, to refresh the screens showing it.
#[uniffi::export(foreign)]
pub trait ChangeListener: Send + Sync {
    /// `changes` lists the accounts that changed or were removed from the device, and
    /// whether tasks, the catalog or the outbox changed.
    fn on_change(&self, changes: ChangeSet);
}

/// Told where a sync is: once per attempt, retry, applied round and at the end.
#[uniffi::export(foreign)]
pub trait SyncProgressListener: Send + Sync {
    fn on_progress(&self, progress: SyncProgress);
}

thread_local! {
    /// Set while this thread runs a foreign callback through [`call_quietly`].
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs a foreign callback, containing a failure so that it cannot break the caller's
/// operation. (An exception thrown by the app's listener reaches Rust as a panic of the
/// generated glue: "Callback interface failure".)
///
/// The first call wraps the process's panic hook once: panics inside a callback are reported
/// as one line on stderr instead of a full panic report; every other panic goes to the
/// previous hook unchanged.
pub(crate) fn call_quietly(f: impl FnOnce()) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CALLBACK.with(Cell::get) {
                let payload = info
                    .payload()
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| info.payload().downcast_ref::<&str>().copied())
                    .unwrap_or("unknown failure");
                // The foreign exception's type and message, not its stack trace (which the
                // glue quotes with escaped line breaks).
                let first = payload
                    .split(['\n', '\r'])
                    .next()
                    .and_then(|l| l.split("\\n").next())
                    .unwrap_or_default();
                let first: String = first.chars().take(300).collect();
                eprintln!("fieldline-mobile: a listener failed and was ignored: {first}");
            } else {
                previous(info);
            }
        }));
    });
    let was = IN_CALLBACK.with(|c| c.replace(true));
    // The closure only calls into the app; nothing of ours can be left half-updated.
    let _ = catch_unwind(AssertUnwindSafe(f));
    IN_CALLBACK.with(|c| c.set(was));
}

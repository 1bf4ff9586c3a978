//! The round loop shared by HTTP and the WebSocket: prepare → exchange → apply, until the
//! server has nothing more and the replica has nothing more to send.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fieldline_client_core::sync::SyncReport;
use fieldline_client_core::{ChangeSet, Replica};
use fieldline_protocol::wire::{ReviewNotice, SyncRequest, SyncResponse};

use crate::cancel::{CancelToken, cancellable};
use crate::{ClientConfig, TransportError};

/// Where a sync is, for progress displays.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncProgress {
    /// The current round, from 1.
    pub round: u32,
    pub phase: SyncPhase,
    /// Changes sent so far, including the current round's.
    pub uploaded_changes: usize,
    /// Documents received and applied so far.
    pub documents_received: usize,
    /// The server's latest estimate of documents still to come (0 before its first answer).
    pub remaining_estimate: u64,
}

/// The step a round is at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncPhase {
    /// The round's request is being sent (attempt 1, 2, … of this round).
    Sending { attempt: u32 },
    /// The last attempt failed with a retryable error (`code`); the next starts after `delay`.
    Retrying {
        attempt: u32,
        delay: Duration,
        code: String,
    },
    /// The server's answer arrived and is being applied to the replica.
    Applying,
    /// The round's answer is applied (the counters include it).
    Applied,
    /// The sync is over.
    Done,
}

/// What a whole sync (all its rounds) did: the rounds' [`SyncReport`]s added up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncSummary {
    pub rounds: u32,
    /// Changes uploaded (each counted once per round that carried it).
    pub uploaded: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Edits replayed after a refusal that are still allowed.
    pub replayed: usize,
    /// Edits that could not be replayed and wait for a manager's review.
    pub parked: usize,
    pub purged: usize,
    pub documents_received: usize,
    /// Request bytes sent, counting every attempt.
    pub bytes_sent: u64,
    /// Answer bytes received for the applied rounds.
    pub bytes_received: u64,
    /// Attempts that failed and were retried.
    pub retries: u32,
    /// True when the sync ended because the server had nothing more and the replica had
    /// nothing more to send; false when it stopped early (a round made no progress, or
    /// [`ClientConfig::max_rounds`] was reached). Either way every applied round is kept.
    pub complete: bool,
    /// What changed on the device, for refreshing screens.
    pub changes: ChangeSet,
    /// Review decisions on this user's refused writes.
    pub reviews: Vec<ReviewNotice>,
}

impl SyncSummary {
    fn absorb(&mut self, report: SyncReport) {
        self.uploaded += report.uploaded;
        self.accepted += report.accepted;
        self.rejected += report.rejected;
        self.replayed += report.replayed;
        self.parked += report.parked;
        self.purged += report.purged;
        self.documents_received += report.documents_received;
        self.changes.merge(report.changes);
        self.reviews.extend(report.reviews);
    }
}

/// Where progress goes.
pub(crate) type ProgressSink<'a> = &'a (dyn Fn(SyncProgress) + Send + Sync);

/// The round loop's progress state, handed to the transport so it can report attempts.
pub(crate) struct Progress<'a> {
    sink: ProgressSink<'a>,
    snapshot: SyncProgress,
}

impl Progress<'_> {
    pub(crate) fn emit(&self, phase: SyncPhase) {
        let mut p = self.snapshot.clone();
        p.phase = phase;
        (self.sink)(p);
    }
}

/// One round's answer and what it cost.
pub(crate) struct Exchanged {
    pub response: SyncResponse,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retries: u32,
}

/// Moves one prepared request to the server and brings back its answer.
pub(crate) trait Exchange {
    fn exchange(
        &mut self,
        request: &SyncRequest,
        progress: &Progress<'_>,
    ) -> impl Future<Output = Result<Exchanged, TransportError>> + Send;
}

/// Whether the replica has something the server should hear about.
pub(crate) fn has_work(request: &SyncRequest) -> bool {
    !request.uploads.is_empty() || !request.want_full.is_empty()
}

fn upload_count(request: &SyncRequest) -> usize {
    request.uploads.iter().map(|u| u.changes.len()).sum()
}

/// Runs rounds until done (see the crate docs). A failed round ends the sync with its error;
/// the rounds applied before it stay applied.
pub(crate) async fn run_rounds<E: Exchange>(
    replica: &Arc<Replica>,
    config: &ClientConfig,
    transport: &mut E,
    sink: ProgressSink<'_>,
    cancel: Option<&CancelToken>,
) -> Result<SyncSummary, TransportError> {
    let max = config.max_upload_bytes;
    let mut summary = SyncSummary::default();
    let mut progress = Progress {
        sink,
        snapshot: SyncProgress {
            round: 0,
            phase: SyncPhase::Done,
            uploaded_changes: 0,
            documents_received: 0,
            remaining_estimate: 0,
        },
    };
    let mut request =
        cancellable(cancel, blocking(replica, move |r| r.prepare_sync(max))).await??;
    loop {
        if summary.rounds >= config.max_rounds {
            tracing::warn!(
                rounds = summary.rounds,
                "sync stopped after the maximum number of rounds; the next sync continues"
            );
            break;
        }
        summary.rounds += 1;
        progress.snapshot.round = summary.rounds;
        progress.snapshot.uploaded_changes += upload_count(&request);

        let exchanged = transport.exchange(&request, &progress).await?;
        summary.bytes_sent += exchanged.bytes_sent;
        summary.bytes_received += exchanged.bytes_received;
        summary.retries += exchanged.retries;
        progress.emit(SyncPhase::Applying);

        // Apply, then prepare the next request in the same blocking call. Not cancellable:
        // once the answer is here, applying it (atomically) is cheaper than fetching it again.
        let response = exchanged.response;
        let (sent, report, next) = blocking(replica, move |r| {
            let report = r.apply_sync(&request, response)?;
            let next = r.prepare_sync(max)?;
            Ok((request, report, next))
        })
        .await?;
        let more = report.more;
        let received = report.documents_received
            + report.purged
            + report.accepted
            + report.rejected
            + report.reviews.len();
        progress.snapshot.documents_received += report.documents_received;
        progress.snapshot.remaining_estimate = report.remaining;
        summary.absorb(report);
        progress.emit(SyncPhase::Applied);

        if !more && !has_work(&next) {
            summary.complete = true;
            break;
        }
        if next == sent && received == 0 {
            // Nothing arrived and the next request would be identical: the server is not
            // moving (a bug on either side); looping would only burn battery.
            tracing::warn!(
                round = summary.rounds,
                more,
                "sync stopped: the last round changed nothing on this device"
            );
            break;
        }
        request = next;
    }
    progress.emit(SyncPhase::Done);
    Ok(summary)
}

/// Runs blocking replica work (SQLite, automerge) off the async runtime.
pub(crate) async fn blocking<T, F>(replica: &Arc<Replica>, f: F) -> Result<T, TransportError>
where
    T: Send + 'static,
    F: FnOnce(&Replica) -> fieldline_client_core::Result<T> + Send + 'static,
{
    let replica = Arc::clone(replica);
    match tokio::task::spawn_blocking(move || f(&replica)).await {
        Ok(result) => result.map_err(TransportError::Replica),
        // A panic in the replica is a bug: let it surface as one.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down.
        Err(_) => Err(TransportError::Cancelled),
    }
}

//! Group commit: concurrent client writes on the leader are coalesced into one log entry.
//!
//! Every Raft entry costs a log append, a replication message slot, an apply and a response
//! on every replica, whatever its size. Under load many requests arrive while earlier ones are
//! still being committed; instead of proposing each alone, the batcher waits for one of
//! [`MAX_IN_FLIGHT`] proposal slots and then takes everything queued meanwhile (up to
//! [`MAX_WEIGHT`] tasks) as one `Command::Many`. A lone request is proposed at once and as
//! itself, so sequential latency does not change: when nothing is queued and a slot is free,
//! the caller's own task proposes it, without the two task hops through the loop (each a
//! cross-thread wakeup, which on a busy host costs tens of microseconds).
//!
//! Each request still has its own response: `apply` answers `Response::Many` in order. A
//! request that is itself a `Many` (the calendar loop's fires) is spliced in, since apply
//! refuses a nested `Many`, and gets its own part of the answers back as a `Many`. A failed
//! proposal fails every request of the batch the same way (definite or not).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::task::Context;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Raft;
use super::WriteError;
use super::map_write_error;
use crate::scheduler::Command;
use crate::scheduler::Response;
use crate::scheduler::format::LogCommand;

/// Proposals outstanding at once. Every entry costs each replica a log flush (an fsync, which
/// on a VM's virtual disk is also CPU), so fewer, fuller entries win once the host is busy: with
/// one in flight, `bench e2e` peaked at 13.0–13.8k tasks/s against 11.4–12.6k with two, and
/// single-submit latency stayed the same (a lone request still goes out at once).
pub const MAX_IN_FLIGHT: usize = 1;
/// Most tasks (or other commands) coalesced into one entry, bounding the entry size.
pub const MAX_WEIGHT: usize = 4096;
/// Requests waiting for a slot; beyond that, callers wait to enqueue (backpressure).
const QUEUE: usize = 65_536;

type Reply = oneshot::Sender<Result<Response, WriteError>>;

struct Pending {
    cmd: Command,
    reply: Reply,
}

/// Handle to the coalescing loop.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    slots: Arc<Semaphore>,
    /// Requests handed to the loop that are not in a proposal yet: while any wait, a new request
    /// joins them rather than taking the next slot alone.
    queued: Arc<AtomicUsize>,
    raft: Raft,
    proposal_timeout: Duration,
    shutdown: CancellationToken,
}

/// Cost of a command toward [`MAX_WEIGHT`]: one per task, plus one per KiB of checkpoint,
/// so that coalesced checkpoints cannot build a huge log entry.
fn weight(cmd: &Command) -> usize {
    match cmd {
        Command::Many { commands } => commands.iter().map(weight).sum::<usize>().max(1),
        Command::SubmitBatch { specs, .. } => specs.len().max(1),
        Command::Checkpoint { data, .. } => 1 + data.len() / 1024,
        _ => 1,
    }
}

impl Batcher {
    /// Starts the loop; it ends with `shutdown`. `proposal_timeout` bounds one proposal so a
    /// leader that lost its quorum does not hold the slots forever.
    pub fn start(raft: Raft, proposal_timeout: Duration, shutdown: CancellationToken) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(raft.clone(), rx, slots.clone(), queued.clone(), proposal_timeout, shutdown.clone()));
        Self { tx, slots, queued, raft, proposal_timeout, shutdown }
    }

    /// Proposes `cmd` (possibly together with others) and waits for its own response.
    pub async fn propose(&self, cmd: Command) -> Result<Response, WriteError> {
        if self.shutdown.is_cancelled() {
            return Err(WriteError::Stopped("shutting down".into()));
        }
        // Idle leader: propose from this task. The semaphore is fair, so a free permit means no
        // batch of the loop is waiting for one either.
        if self.queued.load(Ordering::Acquire) == 0
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            let (raft, timeout) = (self.raft.clone(), self.proposal_timeout);
            let proposal = Box::pin(async move { propose_one(&raft, cmd, timeout).await });
            return Direct { proposal: Some((proposal, slot)) }.await;
        }
        // The slot in the queue first: counted and sent with no await in between, so a caller
        // that stops waiting cannot leave the count up (which would turn the fast path off).
        let permit = self.tx.reserve().await.map_err(|_| WriteError::Stopped("shutting down".into()))?;
        self.queued.fetch_add(1, Ordering::AcqRel);
        let (reply, rx) = oneshot::channel();
        permit.send(Pending { cmd, reply });
        rx.await.unwrap_or_else(|_| Err(WriteError::Unknown("the proposal was dropped".into())))
    }
}

type Proposal = Pin<Box<dyn Future<Output = Result<Response, WriteError>> + Send>>;

/// A proposal made from the caller's task, holding the proposal slot. If the caller stops
/// waiting (its deadline, a closed connection), the proposal runs to its end on a task of its
/// own, still holding the slot: openraft goes on with the entry either way, and the slot must
/// go on counting it.
struct Direct {
    proposal: Option<(Proposal, OwnedSemaphorePermit)>,
}

impl Future for Direct {
    type Output = Result<Response, WriteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some((proposal, _slot)) = self.proposal.as_mut() else {
            return Poll::Ready(Err(WriteError::Unknown("the proposal was polled after it ended".into())));
        };
        let result = std::task::ready!(proposal.as_mut().poll(cx));
        self.proposal = None;
        Poll::Ready(result)
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        if let Some((proposal, slot)) = self.proposal.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = proposal.await;
                drop(slot);
            });
        }
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    proposal_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => tokio::select! {
                _ = shutdown.cancelled() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            },
        };
        // Wait for a slot first: whatever queues up meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut load = weight(&first.cmd);
        let mut batch = vec![first];
        let mut taken = 1;
        while load < MAX_WEIGHT {
            match rx.try_recv() {
                // The caller gave up (deadline): do not write what nobody waits for.
                Ok(p) if p.reply.is_closed() => taken += 1,
                Ok(p) if load + weight(&p.cmd) > MAX_WEIGHT => {
                    carried = Some(p);
                    break;
                }
                Ok(p) => {
                    taken += 1;
                    load += weight(&p.cmd);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        queued.fetch_sub(taken, Ordering::AcqRel);
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch, proposal_timeout).await;
            drop(slot);
        });
    }
}

async fn propose(raft: &Raft, mut batch: Vec<Pending>, timeout: Duration) {
    if batch.len() == 1 {
        let p = batch.pop().expect("one pending write");
        let _ = p.reply.send(propose_one(raft, p.cmd, timeout).await);
        return;
    }
    let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let (commands, shapes) = splice(cmds);
    let n = commands.len();
    let result = match tokio::time::timeout(timeout, raft.client_write(LogCommand(Command::Many { commands }))).await {
        Ok(r) => r.map(|resp| resp.data).map_err(map_write_error),
        Err(_) => Err(WriteError::Unknown("the proposal did not commit in time".into())),
    };
    match result {
        Ok(Response::Many { responses }) if responses.len() == n => {
            for (reply, response) in replies.into_iter().zip(unsplice(responses, &shapes)) {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(other) => {
            let e = WriteError::Unknown(format!("unexpected answer to a coalesced write: {other:?}"));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Proposes one request as itself.
async fn propose_one(raft: &Raft, cmd: Command, timeout: Duration) -> Result<Response, WriteError> {
    match tokio::time::timeout(timeout, raft.client_write(LogCommand(cmd))).await {
        Ok(r) => r.map(|resp| resp.data).map_err(map_write_error),
        Err(_) => Err(WriteError::Unknown("the proposal did not commit in time".into())),
    }
}

/// How one request sits in a coalesced entry: one command, or a `Many` of that many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    One,
    Spliced(usize),
}

/// The commands of one entry for `requests`, in order, with each request's [`Shape`]: a request
/// that is a `Many` is spliced in, because apply refuses a nested `Many`.
fn splice(requests: Vec<Command>) -> (Vec<Command>, Vec<Shape>) {
    let mut commands = Vec::with_capacity(requests.len());
    let mut shapes = Vec::with_capacity(requests.len());
    for cmd in requests {
        match cmd {
            Command::Many { commands: inner } => {
                shapes.push(Shape::Spliced(inner.len()));
                commands.extend(inner);
            }
            cmd => {
                shapes.push(Shape::One);
                commands.push(cmd);
            }
        }
    }
    (commands, shapes)
}

/// Each request's answer from the entry's answers (as many as [`splice`] made commands).
fn unsplice(responses: Vec<Response>, shapes: &[Shape]) -> Vec<Response> {
    let mut responses = responses.into_iter();
    shapes
        .iter()
        .map(|shape| match *shape {
            Shape::One => responses.next().unwrap_or(Response::Noop),
            Shape::Spliced(k) => Response::Many { responses: responses.by_ref().take(k).collect() },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::RejectCode;
    use crate::scheduler::Rejection;

    fn cancel(task_id: u64) -> Command {
        Command::Cancel { request_id: None, now_ms: 0, task_id, reason: None }
    }

    #[test]
    fn a_many_request_is_spliced_into_the_entry_and_gets_its_own_answers_back() {
        let requests = vec![cancel(1), Command::Many { commands: vec![cancel(2), cancel(3)] }, cancel(4)];
        let (commands, shapes) = splice(requests);
        assert_eq!(commands, vec![cancel(1), cancel(2), cancel(3), cancel(4)], "no nested Many reaches apply");
        assert_eq!(shapes, vec![Shape::One, Shape::Spliced(2), Shape::One]);
        let answers: Vec<Response> =
            (1..=4).map(|i| Response::Rejected(Rejection::new(RejectCode::NotFound, i.to_string()))).collect();
        let back = unsplice(answers.clone(), &shapes);
        assert_eq!(
            back,
            vec![
                answers[0].clone(),
                Response::Many { responses: vec![answers[1].clone(), answers[2].clone()] },
                answers[3].clone()
            ]
        );
        assert_eq!(weight(&Command::Many { commands: vec![cancel(1), cancel(2)] }), 2);
    }
}

//! Batches the worker's attempt reports: many `started` / `complete` reports per request.
//!
//! Under load a worker finishes attempts faster than one HTTP round trip each would allow;
//! reports queue here and go out together ([`Client::reports`]; the leader commits each
//! request as one log entry), at most
//! [`MAX_IN_FLIGHT`] requests at a time, and each caller gets its own verdict back.
//!
//! Requests in flight together travel on separate connections and may be applied in either
//! order. So an attempt's completion never leaves while a request carrying its start report is
//! unanswered: it is held back until that answer, then sent first. Otherwise a short task's
//! completion could be applied before its start, which is then refused as "already ended", and
//! the attempt would keep no start time (about 0.1 % of tasks at half of `bench e2e`'s peak).
//! A start and a completion in the same request are applied in order.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::client::Client;
use crate::client::ClientError;
use crate::proto::workers::AttemptReport as Report;
use crate::proto::workers::ReportResult;
use crate::proto::workers::ReportResults;
use crate::proto::workers::Reports;
use crate::scheduler::AttemptEvent;
use crate::scheduler::AttemptId;

/// Report requests outstanding at once.
pub const MAX_IN_FLIGHT: usize = 4;
/// Most reports this worker sends per request (the server takes up to
/// [`crate::proto::MAX_REPORTS`]).
pub const REPORTS_PER_REQUEST: usize = 512;
const _: () = assert!(REPORTS_PER_REQUEST <= crate::proto::MAX_REPORTS);

type Reply = oneshot::Sender<Result<ReportResult, String>>;

/// Handle to the batching loop.
#[derive(Clone)]
pub struct Reporter {
    /// Each message is queued as a whole: [`Reporter::enqueue_many`]'s reports reach the loop
    /// together, so they normally leave in one request when a slot is free.
    tx: mpsc::Sender<Vec<(Report, Reply)>>,
}

/// The cluster's verdict on one queued report, once its request is answered: `Ok` as
/// [`Reporter::send`] describes, `Err` a transient failure.
pub struct Verdict(oneshot::Receiver<Result<ReportResult, String>>);

impl Future for Verdict {
    type Output = Result<ReportResult, String>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err("reporter dropped the report".into())))
    }
}

impl Reporter {
    /// Starts the loop for worker `id`; it ends when every handle is dropped.
    pub fn start(client: Arc<Client>, id: &str) -> Self {
        // 4 096 messages: each is one report, or the start reports of one inbox answer.
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(client, id.to_string(), rx));
        Self { tx }
    }

    /// Sends one report; `Ok` carries the cluster's verdict (accepted, or refused with a code),
    /// `Err` a transient failure (the report may be retried).
    pub async fn send(&self, report: Report) -> Result<ReportResult, String> {
        self.enqueue(report).await?.await
    }

    /// Queues one report and returns its verdict, without waiting for it; waits for room when
    /// the queue is full. `Err` only if the loop has stopped. Reports leave in the order they
    /// were queued (requests may still overlap, see [`MAX_IN_FLIGHT`]).
    pub async fn enqueue(&self, report: Report) -> Result<Verdict, String> {
        let mut verdicts = self.enqueue_many(vec![report]).await?;
        verdicts.pop().ok_or_else(|| "reporter stopped".to_string())
    }

    /// Queues `reports` at once, like [`Reporter::enqueue`]: they reach the loop together, so
    /// they leave in the next request with a free slot (after any reports queued before them,
    /// and cut at [`REPORTS_PER_REQUEST`]) rather than spread over the requests in flight.
    pub async fn enqueue_many(&self, reports: Vec<Report>) -> Result<Vec<Verdict>, String> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let (items, verdicts): (Vec<(Report, Reply)>, Vec<Verdict>) = reports
            .into_iter()
            .map(|report| {
                let (reply, rx) = oneshot::channel();
                ((report, reply), Verdict(rx))
            })
            .unzip();
        self.tx.send(items).await.map_err(|_| "reporter stopped".to_string())?;
        Ok(verdicts)
    }
}

/// Attempts whose start report is in a request not answered yet, with how many such reports.
type Starting = Arc<Mutex<HashMap<AttemptId, usize>>>;

async fn run(client: Arc<Client>, worker_id: String, mut rx: mpsc::Receiver<Vec<(Report, Reply)>>) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let starting: Starting = Arc::default();
    let answered = Arc::new(Notify::new());
    let mut queue: VecDeque<(Report, Reply)> = VecDeque::new();
    let mut held: Vec<(Report, Reply)> = Vec::new();
    let mut open = true;
    loop {
        release(&mut held, &mut queue, &lock(&starting));
        if queue.is_empty() {
            if !open && held.is_empty() {
                return;
            }
            tokio::select! {
                items = rx.recv(), if open => match items {
                    Some(items) => queue.extend(items),
                    None => open = false,
                },
                _ = answered.notified(), if !held.is_empty() => {}
            }
            continue;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        // Whatever queued while waiting for the slot joins this request.
        while queue.len() < REPORTS_PER_REQUEST {
            match rx.try_recv() {
                Ok(items) => queue.extend(items),
                Err(_) => break,
            }
        }
        release(&mut held, &mut queue, &lock(&starting));
        let batch = {
            let mut starting = lock(&starting);
            let batch = take_batch(&mut queue, &mut held, &starting);
            for (report, _) in &batch {
                if report.event == AttemptEvent::Started {
                    *starting.entry(report.attempt).or_default() += 1;
                }
            }
            batch
        };
        if batch.is_empty() {
            continue;
        }
        let (client, worker_id, starting, answered) =
            (client.clone(), worker_id.clone(), starting.clone(), answered.clone());
        tokio::spawn(async move {
            let (reports, replies): (Vec<Report>, Vec<Reply>) = batch.into_iter().unzip();
            let started: Vec<AttemptId> =
                reports.iter().filter(|r| r.event == AttemptEvent::Started).map(|r| r.attempt).collect();
            let done = Answered { started, starting, answered };
            let result = send_split(&client, &worker_id, reports).await;
            drop(done);
            match result {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

fn lock(starting: &Starting) -> std::sync::MutexGuard<'_, HashMap<AttemptId, usize>> {
    // Every critical section is a few map operations; a poisoned lock still holds a sound map.
    starting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The start reports of one request. When the request's task ends (answered, failed for good,
/// or even panicked), they stop counting and the loop is woken: completions held for them may
/// leave. A drop guard, so that nothing can keep a completion held for ever.
struct Answered {
    started: Vec<AttemptId>,
    starting: Starting,
    answered: Arc<Notify>,
}

impl Drop for Answered {
    fn drop(&mut self) {
        {
            let mut starting = lock(&self.starting);
            for attempt in &self.started {
                if let Some(n) = starting.get_mut(attempt) {
                    *n -= 1;
                    if *n == 0 {
                        starting.remove(attempt);
                    }
                }
            }
        }
        self.answered.notify_one();
    }
}

/// The next request's reports, taken in order off the front of `queue` (at most
/// [`REPORTS_PER_REQUEST`]). A completion whose attempt has a start report in a request not yet
/// answered (`starting`) goes to `held` instead; one whose start is in this very request stays.
fn take_batch<T: AsReport>(queue: &mut VecDeque<T>, held: &mut Vec<T>, starting: &HashMap<AttemptId, usize>) -> Vec<T> {
    let mut batch = Vec::new();
    while batch.len() < REPORTS_PER_REQUEST {
        let Some(item) = queue.pop_front() else { break };
        let report = item.report();
        if report.event != AttemptEvent::Started && starting.contains_key(&report.attempt) {
            held.push(item);
        } else {
            batch.push(item);
        }
    }
    batch
}

/// Puts the held completions whose start has been answered back at the front of `queue`, in
/// their order: they were queued before anything still there.
fn release<T: AsReport>(held: &mut Vec<T>, queue: &mut VecDeque<T>, starting: &HashMap<AttemptId, usize>) {
    if held.is_empty() {
        return;
    }
    let (free, still): (Vec<T>, Vec<T>) =
        std::mem::take(held).into_iter().partition(|item| !starting.contains_key(&item.report().attempt));
    *held = still;
    for item in free.into_iter().rev() {
        queue.push_front(item);
    }
}

/// What the queue holds: a report, and (in the loop) its reply.
trait AsReport {
    fn report(&self) -> &Report;
}

impl AsReport for (Report, Reply) {
    fn report(&self) -> &Report {
        &self.0
    }
}

/// Sends `reports`, one verdict per report in order. A batch over the server's body limit (413:
/// chatty completions carry up to 128 KiB of output each) is split in halves until it fits; a
/// single report that cannot fit is refused for good. Any other failure is transient (`Err`):
/// the callers retry, and apply answers a retried report `duplicate`, never a second effect.
async fn send_split(client: &Client, worker_id: &str, reports: Vec<Report>) -> Result<Vec<ReportResult>, String> {
    let mut pending = vec![reports];
    let mut done: Vec<Vec<ReportResult>> = Vec::new();
    // Depth-first, left to right, so the verdicts come back in the reports' order.
    while let Some(batch) = pending.pop() {
        let n = batch.len();
        match client.reports(worker_id, &Reports { reports: batch.clone() }).await {
            Ok(ReportResults { results }) if results.len() == n => done.push(results),
            Ok(other) => return Err(format!("the cluster answered {} results for {n} reports", other.results.len())),
            Err(ClientError::Api { status: 413, code, message }) if n == 1 => {
                done.push(vec![ReportResult { status: None, code: Some(code), message: Some(message) }]);
            }
            Err(ClientError::Api { status: 413, .. }) => {
                let mut left = batch;
                let right = left.split_off(n / 2);
                pending.push(right);
                pending.push(left);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(done.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AsReport for Report {
        fn report(&self) -> &Report {
            self
        }
    }

    fn attempt(task_id: u64) -> AttemptId {
        AttemptId { task_id, token: 100 + task_id }
    }

    fn started(task_id: u64) -> Report {
        Report { attempt: attempt(task_id), event: AttemptEvent::Started }
    }

    fn ended(task_id: u64) -> Report {
        let event = AttemptEvent::Ended {
            outcome: crate::scheduler::AttemptOutcome::Succeeded,
            exit_code: Some(0),
            output_tail: String::new(),
            error: None,
            result: None,
        };
        Report { attempt: attempt(task_id), event }
    }

    fn ids(reports: &[Report]) -> Vec<(u64, bool)> {
        reports.iter().map(|r| (r.attempt.task_id, r.event == AttemptEvent::Started)).collect()
    }

    #[test]
    fn a_completion_waits_for_the_answer_to_its_start_and_then_leaves_first() {
        // Task 1 started in a request still in flight; task 2 starts and ends in this one.
        let mut starting = HashMap::from([(attempt(1), 1)]);
        let mut queue = VecDeque::from([ended(1), started(2), ended(2), started(3)]);
        let mut held = Vec::new();
        let first = take_batch(&mut queue, &mut held, &starting);
        assert_eq!(ids(&first), vec![(2, true), (2, false), (3, true)], "1's completion is held back");
        assert_eq!(ids(&held), vec![(1, false)]);

        // Nothing is released while the start is unanswered.
        queue.push_back(ended(3));
        release(&mut held, &mut queue, &starting);
        assert_eq!(held.len(), 1);

        // Answered: it goes back in front of what queued after it.
        starting.remove(&attempt(1));
        starting.insert(attempt(3), 1);
        release(&mut held, &mut queue, &starting);
        assert!(held.is_empty());
        let second = take_batch(&mut queue, &mut held, &starting);
        assert_eq!(ids(&second), vec![(1, false)], "3's completion now waits for its own start");
        assert_eq!(ids(&held), vec![(3, false)]);
    }

    #[test]
    fn released_completions_go_back_in_front_in_their_order() {
        let mut starting = HashMap::from([(attempt(1), 1), (attempt(2), 1)]);
        let mut queue = VecDeque::from([ended(1), ended(2), started(5)]);
        let mut held = Vec::new();
        assert_eq!(ids(&take_batch(&mut queue, &mut held, &starting)), vec![(5, true)]);
        queue.extend([started(6), ended(6)]);
        starting.clear();
        release(&mut held, &mut queue, &starting);
        let order: Vec<(u64, bool)> = ids(&Vec::from(queue));
        assert_eq!(order, vec![(1, false), (2, false), (6, true), (6, false)]);
    }

    #[tokio::test]
    async fn a_finished_request_frees_its_starts_and_wakes_the_loop_even_if_it_panicked() {
        let starting: Starting = Arc::new(Mutex::new(HashMap::from([(attempt(1), 2), (attempt(2), 1)])));
        let answered = Arc::new(Notify::new());
        let guard =
            Answered { started: vec![attempt(1), attempt(2)], starting: starting.clone(), answered: answered.clone() };
        let task = tokio::spawn(async move {
            let _guard = guard;
            panic!("the request's task failed");
        });
        assert!(task.await.is_err());
        assert_eq!(*lock(&starting), HashMap::from([(attempt(1), 1)]), "one start of 1 is still in flight");
        tokio::time::timeout(std::time::Duration::from_secs(5), answered.notified()).await.expect("the loop was woken");
    }

    /// A worker API on a free loopback port that accepts every report and records how many
    /// each request carried.
    async fn recording_server(sizes: Arc<Mutex<Vec<usize>>>) -> String {
        use axum::Json;
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/v1/workers/{id}/reports",
            post(move |Json(batch): Json<Reports>| async move {
                sizes.lock().unwrap().push(batch.reports.len());
                let accepted = ReportResult { status: None, code: None, message: None };
                Json(ReportResults { results: vec![accepted; batch.reports.len()] })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr.to_string()
    }

    // One thread: the loop runs whenever the test yields, so reports queued one by one (with a
    // yield between, as separate attempt tasks would) would leave in several requests.
    #[tokio::test]
    async fn reports_queued_at_once_leave_in_one_request_each_with_its_own_verdict() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let client = Arc::new(Client::new(vec![recording_server(sizes.clone()).await]).unwrap());
        let reporter = Reporter::start(client, "w1");
        // One inbox answer's start reports, then a lone completion.
        let verdicts = reporter.enqueue_many((1..=40).map(started).collect()).await.unwrap();
        assert_eq!(verdicts.len(), 40);
        // Nothing has yielded to the loop yet: the 40 are one message in its queue.
        assert_eq!(reporter.tx.max_capacity() - reporter.tx.capacity(), 1, "one message for the 40 reports");
        for verdict in verdicts {
            let result = tokio::time::timeout(std::time::Duration::from_secs(10), verdict).await.expect("answered");
            assert!(result.expect("accepted").code.is_none());
        }
        assert_eq!(*sizes.lock().unwrap(), vec![40], "all 40 starts in one request");
        reporter.send(ended(1)).await.expect("accepted");
        assert_eq!(*sizes.lock().unwrap(), vec![40, 1]);
        assert!(reporter.enqueue_many(Vec::new()).await.unwrap().is_empty(), "nothing queued, nothing sent");
        assert_eq!(sizes.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_request_takes_at_most_its_share_in_order() {
        let mut queue: VecDeque<Report> = (0..REPORTS_PER_REQUEST as u64 + 3).map(started).collect();
        let batch = take_batch(&mut queue, &mut Vec::new(), &HashMap::new());
        assert_eq!(batch.len(), REPORTS_PER_REQUEST);
        assert_eq!(batch[0].attempt.task_id, 0);
        assert_eq!(queue.front().map(|r| r.attempt.task_id), Some(REPORTS_PER_REQUEST as u64));
    }
}

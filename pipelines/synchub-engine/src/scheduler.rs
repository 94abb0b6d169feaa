//! When a pipeline runs: once at start, then on its schedule and whenever
//! it is woken (a verified webhook). Runs never overlap; wakes that arrive
//! during a run, however many, trigger exactly one more run after it (a
//! burst collapses into one run, nothing is lost). A complete read (with
//! delete reconciliation) is asked for when its own period is due.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What one scheduled run is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// A complete read is due: ignore the cursors and reconcile deletes.
    pub full_refresh: bool,
}

/// The timing loop of one pipeline.
#[derive(Debug)]
pub struct Scheduler {
    every: Option<Duration>,
    full_every: Option<Duration>,
    last_full: Mutex<Instant>,
    wake: Notify,
}

impl Scheduler {
    /// Runs every `every` (only at start and on wakes when `None`), with a
    /// complete read every `full_every` (counted from the scheduler's
    /// creation).
    pub fn new(every: Option<Duration>, full_every: Option<Duration>) -> Scheduler {
        Scheduler {
            every,
            full_every,
            last_full: Mutex::new(Instant::now()),
            wake: Notify::new(),
        }
    }

    /// The schedule's period.
    pub fn every(&self) -> Option<Duration> {
        self.every
    }

    /// Asks for a run as soon as the current one (if any) ends. Wakes
    /// before that run starts collapse into it.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The next run's tick: a complete read when its period has passed.
    fn tick(&self) -> Tick {
        let full = match (self.full_every, self.last_full.lock()) {
            (Some(every), Ok(mut last)) if last.elapsed() >= every => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        Tick { full_refresh: full }
    }

    /// Calls `run` at start, then on the schedule and on wakes, one call at
    /// a time, until `stop` is cancelled (a run in progress is awaited: it
    /// watches `stop` itself to end between pages).
    pub async fn drive<F, Fut>(&self, stop: &CancellationToken, mut run: F)
    where
        F: FnMut(Tick) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            if stop.is_cancelled() {
                return;
            }
            run(self.tick()).await;
            let sleep = async {
                match self.every {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;

    /// Drives a scheduler in the background, counting runs; each run takes
    /// `run_time` of (paused) time.
    fn spawn(
        s: Arc<Scheduler>,
        stop: CancellationToken,
        run_time: Duration,
    ) -> (Arc<Mutex<Vec<Tick>>>, tokio::task::JoinHandle<()>) {
        let ticks = Arc::new(Mutex::new(Vec::new()));
        let t = ticks.clone();
        let task = tokio::spawn(async move {
            s.drive(&stop, |tick| {
                t.lock().unwrap().push(tick);
                tokio::time::sleep(run_time)
            })
            .await;
        });
        (ticks, task)
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_start_and_on_the_schedule() {
        let s = Arc::new(Scheduler::new(Some(Duration::from_secs(60)), None));
        let stop = CancellationToken::new();
        let (ticks, task) = spawn(s, stop.clone(), Duration::from_secs(1));
        settle().await;
        assert_eq!(ticks.lock().unwrap().len(), 1);
        // GIVEN a 60 s schedule and runs of 1 s: 61 s after the first run's
        // start the second one starts, not before
        tokio::time::sleep(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(ticks.lock().unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        settle().await;
        assert_eq!(ticks.lock().unwrap().len(), 2);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_wakes_during_a_run_makes_one_more_run() {
        let s = Arc::new(Scheduler::new(None, None));
        let stop = CancellationToken::new();
        let (ticks, task) = spawn(s.clone(), stop.clone(), Duration::from_secs(5));
        settle().await;
        assert_eq!(ticks.lock().unwrap().len(), 1);
        // WHEN ten webhooks arrive while the first run is going
        for _ in 0..10 {
            s.wake();
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        settle().await;
        // THEN exactly one more run follows, and no more without a wake
        assert_eq!(ticks.lock().unwrap().len(), 2);
        s.wake();
        settle().await;
        assert_eq!(ticks.lock().unwrap().len(), 3);
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_read_is_asked_for_when_due() {
        let s = Arc::new(Scheduler::new(
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(25)),
        ));
        let stop = CancellationToken::new();
        let (ticks, task) = spawn(s, stop.clone(), Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(55)).await;
        settle().await;
        stop.cancel();
        task.await.unwrap();
        let full: Vec<bool> = ticks
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.full_refresh)
            .collect();
        // Runs at 0, 10, …, 50 s: complete at 30 s (25 s passed) and at
        // 50 s (20 s after that is not yet 25: no), so only one.
        assert_eq!(full, [false, false, false, true, false, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_loop_between_runs() {
        let s = Arc::new(Scheduler::new(Some(Duration::from_secs(3600)), None));
        let stop = CancellationToken::new();
        let (ticks, task) = spawn(s, stop.clone(), Duration::from_secs(1));
        settle().await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop ends on stop")
            .unwrap();
        assert_eq!(ticks.lock().unwrap().len(), 1);
    }
}

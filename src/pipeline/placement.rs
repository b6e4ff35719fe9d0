//! Where the pipeline's threads run: optionally, a core of its own for the inference thread
//! (`model.reserve_inference_core`).
//!
//! Why: the inference thread is the worker's bottleneck, and a dozen other threads (intake,
//! publishing, librdkafka's, the delivery reports', tokio's) share the cores with it. The
//! scheduler spreads threads by load, not by importance: in the worker bench draining a
//! backlog on two cores, the inference thread waited for a core 2-5 µs per record on top of
//! its 10-12 µs of CPU (its run-queue wait, from `/proc/self/task/<tid>/schedstat`). With a
//! core reserved, the other threads share the remaining cores and the inference thread runs
//! alone on its own, unless other processes take it: the wait fell under 1 µs per record and
//! the rate from the backlog rose.
//!
//! Under a live feed (38,000 records/s) the bench's p99 showed no difference either way
//! through the machine's noise: the inference thread then has time to spare, and other
//! processes (the broker, the feeder) still use its core.
//!
//! Off by default: a pinned thread cannot move away from a core that other processes crowd,
//! so it suits a worker that has its cores to itself (a container with a cpuset, Kubernetes'
//! static CPU manager), such as one catching up on a backlog.
//!
//! How: a thread starts with the affinity of the thread that starts it. Before the pipeline's
//! threads start, every thread of the process is moved off the reserved core, so the threads
//! started later (the pipeline's, librdkafka's broker threads, tokio's blocking pool) stay off
//! it too; the inference thread then moves itself onto the reserved core alone. When the
//! reservation is dropped, every thread of the process may use all the original cores again.

use nix::errno::Errno;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Why a core could not be reserved or entered.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("model.reserve_inference_core needs at least 2 cores; this process may use {0}")]
    TooFewCores(usize),
    #[error("cannot read or set the CPU affinity of thread {thread}: {source}")]
    Affinity {
        thread: String,
        #[source]
        source: Errno,
    },
    #[error("cannot list this process's threads in /proc/self/task: {0}")]
    Threads(#[source] std::io::Error),
}

/// The calling thread, for the affinity calls.
pub const CALLING_THREAD: i32 = 0;

/// A core reserved for the inference thread; dropping it lets every thread of the process
/// run on all the original cores again.
#[derive(Debug)]
pub struct CoreReservation {
    /// The cores the process could run on before the reservation, ascending.
    original: Vec<usize>,
    reserved: usize,
}

impl CoreReservation {
    /// Reserves the last core the calling thread may run on and moves every thread of the
    /// process off it. Call it before starting the threads that must stay off the core.
    pub fn reserve() -> Result<Self, PlacementError> {
        let original = cores_of(CALLING_THREAD)?;
        let (reserved, others) = split(&original)?;
        let reservation = Self { original, reserved };
        // On failure, dropping the reservation restores the threads already moved.
        set_every_thread(&others)?;
        Ok(reservation)
    }

    /// The reserved core, for [`run_calling_thread_on`] on the inference thread.
    pub fn core(&self) -> usize {
        self.reserved
    }
}

impl Drop for CoreReservation {
    fn drop(&mut self) {
        if let Err(error) = set_every_thread(&self.original) {
            tracing::warn!(%error, "cannot give the worker's threads their cores back");
        }
    }
}

/// The last of `cores` reserved, and the rest for everything else.
fn split(cores: &[usize]) -> Result<(usize, Vec<usize>), PlacementError> {
    match cores {
        [others @ .., reserved] if !others.is_empty() => Ok((*reserved, others.to_vec())),
        _ => Err(PlacementError::TooFewCores(cores.len())),
    }
}

/// Runs the calling thread on `core` alone.
pub fn run_calling_thread_on(core: usize) -> Result<(), PlacementError> {
    sched_setaffinity(Pid::from_raw(CALLING_THREAD), &mask_of(&[core])?)
        .map_err(|source| affinity("self", source))
}

/// The cores thread `tid` may run on, ascending ([`CALLING_THREAD`]: the calling thread).
pub fn cores_of(tid: i32) -> Result<Vec<usize>, PlacementError> {
    let mask = sched_getaffinity(Pid::from_raw(tid)).map_err(|source| {
        let thread = if tid == CALLING_THREAD {
            "self".to_owned()
        } else {
            tid.to_string()
        };
        affinity(&thread, source)
    })?;
    Ok((0..CpuSet::count())
        .filter(|&core| mask.is_set(core).unwrap_or(false))
        .collect())
}

/// The ids of this process's threads, from /proc/self/task (a thread may end meanwhile).
pub fn thread_ids() -> Result<Vec<i32>, PlacementError> {
    let mut tids = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").map_err(PlacementError::Threads)? {
        let task = task.map_err(PlacementError::Threads)?;
        if let Some(tid) = task.file_name().to_str().and_then(|name| name.parse().ok()) {
            tids.push(tid);
        }
    }
    Ok(tids)
}

/// Sets the affinity of every thread of this process to `cores`. A thread that ends
/// meanwhile is skipped.
fn set_every_thread(cores: &[usize]) -> Result<(), PlacementError> {
    let mask = mask_of(cores)?;
    for tid in thread_ids()? {
        match sched_setaffinity(Pid::from_raw(tid), &mask) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(source) => return Err(affinity(&tid.to_string(), source)),
        }
    }
    Ok(())
}

fn mask_of(cores: &[usize]) -> Result<CpuSet, PlacementError> {
    let mut mask = CpuSet::new();
    for &core in cores {
        mask.set(core)
            .map_err(|source| affinity(&format!("(core {core})"), source))?;
    }
    Ok(mask)
}

fn affinity(thread: &str, source: Errno) -> PlacementError {
    PlacementError::Affinity {
        thread: thread.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::gettid;
    use std::sync::mpsc;

    #[test]
    fn the_last_core_is_reserved_and_one_core_is_refused() {
        assert_eq!(split(&[0, 2, 5]).unwrap(), (5, vec![0, 2]));
        assert_eq!(split(&[0, 1]).unwrap(), (1, vec![0]));
        assert!(matches!(split(&[3]), Err(PlacementError::TooFewCores(1))));
        assert!(matches!(split(&[]), Err(PlacementError::TooFewCores(0))));
    }

    #[test]
    fn reserving_moves_every_thread_off_the_core_until_the_reservation_is_dropped() {
        let original = cores_of(CALLING_THREAD).unwrap();
        if original.len() < 2 {
            assert!(matches!(
                CoreReservation::reserve(),
                Err(PlacementError::TooFewCores(_))
            ));
            return;
        }
        // A thread already running when the core is reserved.
        let (tid_tx, tid_rx) = mpsc::channel();
        let (end_tx, end_rx) = mpsc::channel::<()>();
        let running = std::thread::spawn(move || {
            tid_tx.send(gettid().as_raw()).unwrap();
            let _ = end_rx.recv();
        });
        let running_tid = tid_rx.recv().unwrap();

        let reservation = CoreReservation::reserve().unwrap();
        let core = reservation.core();
        let others: Vec<usize> = original.iter().copied().filter(|&c| c != core).collect();
        assert_eq!(
            cores_of(running_tid).unwrap(),
            others,
            "a running thread moved off"
        );
        assert_eq!(
            cores_of(CALLING_THREAD).unwrap(),
            others,
            "the reserving thread moved off"
        );
        // A thread started now inherits the others; the inference thread moves onto the core.
        let (inherited, entered) = std::thread::spawn(move || {
            let inherited = cores_of(CALLING_THREAD).unwrap();
            run_calling_thread_on(core).unwrap();
            (inherited, cores_of(CALLING_THREAD).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(inherited, others);
        assert_eq!(entered, vec![core]);

        drop(reservation);
        assert_eq!(cores_of(running_tid).unwrap(), original, "restored on drop");
        assert_eq!(cores_of(CALLING_THREAD).unwrap(), original);
        end_tx.send(()).unwrap();
        running.join().unwrap();
    }
}

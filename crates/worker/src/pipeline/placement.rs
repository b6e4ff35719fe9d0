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
//! threads start, every thread of the process is moved off the reserved core (pass after pass
//! until none is left on it, as librdkafka may start threads meanwhile), so the threads
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
    #[error("threads kept starting on other cores through {0} passes over this process's threads")]
    Unsettled(usize),
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
    pub(crate) fn reserve() -> Result<Self, PlacementError> {
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
pub(crate) fn run_calling_thread_on(core: usize) -> Result<(), PlacementError> {
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

/// Sets the affinity of every thread of this process to `cores`, pass after pass, until two
/// passes [`SETTLE`] apart find every thread there already. A thread that ends meanwhile is
/// skipped.
///
/// Why more than one pass: threads start at any time (librdkafka starts a broker thread when
/// it learns of a broker), and a thread takes the affinity its starter had when it was
/// created. One started after the listing by a thread not yet moved kept the old cores (seen
/// in CI: an `rdk:broker1` thread left on the reserved core). Such a thread shows up in the
/// next listing; one still being created during a whole pass is caught by the pass after
/// the pause.
fn set_every_thread(cores: &[usize]) -> Result<(), PlacementError> {
    let mask = mask_of(cores)?;
    let mut clean_passes = 0;
    for _ in 0..MAX_PASSES {
        if move_threads_not_on(&mask)? > 0 {
            clean_passes = 0;
        } else {
            clean_passes += 1;
            if clean_passes == 2 {
                return Ok(());
            }
            std::thread::sleep(SETTLE);
        }
    }
    Err(PlacementError::Unsettled(MAX_PASSES))
}

/// Passes of [`set_every_thread`] before it gives up: each one only repeats for threads
/// started meanwhile, so a process that is not starting threads without end settles in two
/// or three.
const MAX_PASSES: usize = 100;
/// The pause before [`set_every_thread`]'s confirming pass: far longer than creating a thread
/// takes.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(1);

/// Moves every thread of this process that is not on `mask` onto it; how many it moved.
fn move_threads_not_on(mask: &CpuSet) -> Result<usize, PlacementError> {
    let mut moved = 0;
    for tid in thread_ids()? {
        let pid = Pid::from_raw(tid);
        match sched_getaffinity(pid) {
            Ok(current) if current == *mask => continue,
            Ok(_) => {}
            Err(Errno::ESRCH) => continue,
            Err(source) => return Err(affinity(&tid.to_string(), source)),
        }
        match sched_setaffinity(pid, mask) {
            Ok(()) => moved += 1,
            Err(Errno::ESRCH) => {}
            Err(source) => return Err(affinity(&tid.to_string(), source)),
        }
    }
    Ok(moved)
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError, RwLock};

    /// A reservation moves every thread of the process, this test binary's included: two at
    /// once would each see the other's cores.
    fn one_reservation_at_a_time() -> MutexGuard<'static, ()> {
        static RESERVATIONS: Mutex<()> = Mutex::new(());
        RESERVATIONS.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn the_last_core_is_reserved_and_one_core_is_refused() {
        assert_eq!(split(&[0, 2, 5]).unwrap(), (5, vec![0, 2]));
        assert_eq!(split(&[0, 1]).unwrap(), (1, vec![0]));
        assert!(matches!(split(&[3]), Err(PlacementError::TooFewCores(1))));
        assert!(matches!(split(&[]), Err(PlacementError::TooFewCores(0))));
    }

    #[test]
    fn reserving_moves_every_thread_off_the_core_until_the_reservation_is_dropped() {
        let _one = one_reservation_at_a_time();
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

    /// librdkafka starts its broker threads whenever it learns of a broker, so threads may
    /// start while the core is being reserved. A thread started by one not yet moved inherits
    /// the reserved core; listing the threads once missed it (seen in CI: an `rdk:broker1`
    /// thread left on both cores).
    #[test]
    fn threads_started_while_the_core_is_being_reserved_stay_off_it() {
        let _one = one_reservation_at_a_time();
        let original = cores_of(CALLING_THREAD).unwrap();
        if original.len() < 2 {
            return;
        }
        // The children wait on the gate, so that they are all alive when the cores are read.
        let gate = Arc::new(RwLock::new(()));
        let closed = gate.write().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let spawner = {
            let (gate, stop) = (Arc::clone(&gate), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut children = Vec::new();
                while !stop.load(Ordering::Relaxed) && children.len() < 3000 {
                    let gate = Arc::clone(&gate);
                    let child = std::thread::Builder::new()
                        .stack_size(64 * 1024)
                        .spawn(move || drop(gate.read()))
                        .unwrap();
                    children.push(child);
                    if children.len() == 20 {
                        started_tx.send(()).unwrap();
                    }
                }
                children
            })
        };
        started_rx.recv().unwrap();

        // Reserved and released a few times while the spawner runs: each time is a chance
        // for a thread to start between the listing and its starter's move.
        let mut on_the_core = Vec::new();
        for _ in 0..10 {
            let reservation = CoreReservation::reserve().unwrap();
            let core = reservation.core();
            let others: Vec<usize> = original.iter().copied().filter(|&c| c != core).collect();
            on_the_core.extend(
                thread_ids()
                    .unwrap()
                    .into_iter()
                    .filter(|&tid| cores_of(tid).is_ok_and(|cores| cores != others)),
            );
        }
        stop.store(true, Ordering::Relaxed);
        let children = spawner.join().unwrap();
        drop(closed);
        for child in children {
            child.join().unwrap();
        }
        assert!(
            on_the_core.is_empty(),
            "threads {on_the_core:?} could use the reserved core"
        );
    }
}

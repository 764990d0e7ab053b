//! Running independent per-segment jobs (build, write, rewrite) on all cores.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Applies `f` to every job on up to one thread per core, keeping the jobs' order. Threads
/// take the next job as they finish one, so a few large segments among many small ones do
/// not leave a core idle. A job that panics yields `on_panic()` instead of taking the caller
/// down.
pub(crate) fn map_on_cores<J: Sync, R: Send>(
    jobs: &[J],
    f: impl Fn(&J) -> R + Sync,
    on_panic: impl Fn() -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let finished: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            break;
                        };
                        if let Ok(r) = catch_unwind(AssertUnwindSafe(|| f(job))) {
                            done.push((i, r));
                        }
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut out: Vec<Option<R>> = (0..jobs.len()).map(|_| None).collect();
    for (i, r) in finished {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(&on_panic))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_survives_a_panicking_job() {
        let jobs: Vec<u32> = (0..37).collect();
        let out = super::map_on_cores(&jobs, |j| Some(j * 2), || None);
        assert_eq!(out, jobs.iter().map(|j| Some(j * 2)).collect::<Vec<_>>());
        let out = super::map_on_cores(
            &[1u32, 2, 3, 4],
            |j| {
                assert!(*j != 3, "boom");
                Some(*j)
            },
            || None,
        );
        assert_eq!(out.len(), 4);
        assert!(out.contains(&None));
    }
}

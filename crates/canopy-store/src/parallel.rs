//! Running independent per-segment jobs (build, write, rewrite) on all cores.

/// Applies `f` to every job on up to one thread per core, keeping the jobs' order. A worker
/// that panics yields `on_panic()` for each of its jobs instead of taking the caller down.
pub(crate) fn map_on_cores<J: Sync, R: Send>(
    jobs: &[J],
    f: impl Fn(&J) -> R + Sync,
    on_panic: impl Fn() -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len().max(1));
    let per_thread = jobs.len().div_ceil(threads.max(1)).max(1);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per_thread)
            .map(|chunk| {
                (
                    chunk.len(),
                    scope.spawn(move || chunk.iter().map(f).collect()),
                )
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|(n, h)| {
                h.join()
                    .unwrap_or_else(|_| (0..n).map(|_| on_panic()).collect::<Vec<R>>())
            })
            .collect()
    })
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

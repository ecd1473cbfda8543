//! The append path allocates nothing in steady state: the test binary's allocator counts
//! the allocations each thread makes, and appends to many journaled logs (one record
//! each, as a request to 100 partitions makes them) are counted on the appending thread.
//! Allocations per append were a measurable share of the broker's CPU at 1,000 partitions
//! (`docs/benchmarks.md`, issue 54).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use super::power_loss_tests::batch;
use super::*;
use shale_core::clock::ManualClock;
use shale_core::disk::{SimDisk, SimOptions};

/// The system allocator, counting each thread's allocations and reallocations.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread's last allocations may come after its locals are gone.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed to `System` unchanged; counting touches no memory it hands
// out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations this thread has made so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_steady_append_to_many_journaled_logs_allocates_nothing() {
    const LOGS: usize = 100;
    const T0: i64 = 1_700_000_000_000;
    let disk = SimDisk::new(SimOptions { seed: 11, ..Default::default() });
    let (resources, _) = super::journal_tests::try_journaled(&disk, 8 << 20).expect("journal");
    let logs: Vec<PartitionLog> = (0..LOGS)
        .map(|i| {
            let clock = Arc::new(ManualClock::new(T0));
            let dir = Path::new("/data").join(format!("t-{i}"));
            PartitionLog::open(dir, LogConfig::default(), clock, resources.clone()).expect("open")
        })
        .collect();
    // Built beforehand: the producer's bytes are the request's, not the append's.
    let mut batches: Vec<Vec<u8>> = (0..LOGS * 9).map(|i| batch(1, 1000, T0, i as u64)).collect();
    let mut next = batches.iter_mut();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    // One request's appends, then (not counted) the wait for their round, as a broker
    // acknowledges them: the allocations the appends made.
    let mut round = |logs: &[PartitionLog]| {
        let before = allocations();
        let ends = deferring_journal_kicks(|| {
            let mut ends = [0i64; LOGS];
            for (log, end) in logs.iter().zip(&mut ends) {
                *end = log.append(next.next().expect("a batch"), 0).expect("append").log_end_offset;
            }
            ends
        });
        let made = allocations() - before;
        rt.block_on(async {
            let acked = futures::future::try_join_all(
                logs.iter().zip(&ends).map(|(log, end)| log.flush_until(*end)),
            );
            tokio::time::timeout(std::time::Duration::from_secs(20), acked)
                .await
                .expect("20 s for the round's acknowledgements")
                .expect("acknowledged");
        });
        made
    };
    // The first appends bind the journal's streams, take buffers from the pool, size the
    // journal's lists and start each segment's sparse index (which grows by doubling: an
    // allocation per doubling, not per append).
    for _ in 0..5 {
        round(&logs);
    }
    let made: u64 = (0..4).map(|_| round(&logs)).sum();
    assert_eq!(made, 0, "{made} allocations in {} appends", LOGS * 4);
}

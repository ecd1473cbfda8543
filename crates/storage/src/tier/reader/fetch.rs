//! Fetching chunks: the cache, the held read-ahead chunks and the GETs in flight, looked
//! up together so that one GET per chunk range is ever in flight; the read-ahead window
//! refilled a whole GET at a time; chunks warmed from the disk tier ahead of a sequential
//! reader.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use object_store::path::Path as ObjectPath;

use super::{Cursor, RemoteReader, closed};
use crate::tier::catalog::PartitionRef;
use crate::tier::manifest::Manifest;
use shale_core::error::Error;

/// A chunk's bytes, shared by every reader waiting for the GET that brings it.
pub(super) type ChunkFuture = Shared<BoxFuture<'static, Result<Bytes, Error>>>;

/// How long a chunk read ahead is held for its reader, who may have gone.
const HELD_FOR: std::time::Duration = std::time::Duration::from_secs(30);

impl RemoteReader {
    /// Starts the GETs of the chunks `needed` of the cursor's segment that are missing,
    /// and keeps the `window` chunks after them (continuing into the next segment if it
    /// starts below `upper_bound`) cached or in flight, a whole GET at a time: it starts
    /// GETs only once at least `get_max_bytes` of the window (or the whole window, when
    /// smaller) is missing, or the missing part reaches the end of an object. Needed chunks
    /// that are missing go in the same GETs as the window's.
    pub(super) fn read_ahead(
        &self,
        p: &PartitionRef,
        manifest: &Manifest,
        cursor: &Cursor<'_>,
        needed: Range<u64>,
        window: u64,
        upper_bound: i64,
    ) {
        let cb = self.inner.chunk_bytes;
        let size = cursor.segment.size_bytes;
        let chunks = size.div_ceil(cb);
        // A whole GET at a time, or the whole window when it is smaller than a GET.
        let run = self.inner.run_chunks.min(window);
        // A window that would stop less than a whole GET short of an object's end takes the
        // end too, rather than leave a short GET for later (a small object is one GET).
        let whole = self.inner.run_chunks;
        let stretch = |to: u64, chunks: u64| if to + whole > chunks { chunks } else { to };
        let waiting = needed.clone().any(|i| !self.present(&chunk_key(&cursor.path, i)));
        // A reader waiting on chunks it needs gets them and the rest of its window in whole
        // GETs from the first; otherwise the window after the read is refilled.
        let (from, to) = match waiting {
            true => (needed.start, needed.end.max(needed.start + window)),
            false => (needed.end, needed.end + window),
        };
        if from < chunks {
            let range = from..stretch(to, chunks).min(chunks);
            let (min_missing, needed_until) = match waiting {
                true => (1, needed.end),
                false => (run, 0),
            };
            self.ensure(&cursor.path, size, range, min_missing, needed_until);
        }
        if to > chunks {
            // Not past what this reader may read now.
            let next = manifest.find(cursor.segment.next_offset);
            if let Some(next) = next.filter(|next| next.base_offset < upper_bound) {
                let path = self.cursor(p, next).path;
                let n = next.size_bytes.div_ceil(cb);
                let range = from.saturating_sub(chunks)..stretch(to - chunks, n).min(n);
                self.ensure(&path, next.size_bytes, range, run, 0);
            }
        }
    }

    /// Starts GETs for the chunks of `range` of the object at `path` (`size` bytes) that are
    /// neither cached, held nor in flight, when there are at least `min_missing` of them or
    /// they reach the object's end; adjacent ones go in one GET of up to `get_max_bytes`.
    /// Chunks from `needed_until` on are read ahead: a GET of only such chunks waits for
    /// room in the read-ahead budget (it is not started now if there is none).
    pub(super) fn ensure(
        &self,
        path: &ObjectPath,
        size: u64,
        range: Range<u64>,
        min_missing: u64,
        needed_until: u64,
    ) {
        let inner = &self.inner;
        let last = size.div_ceil(inner.chunk_bytes);
        // Under the in-flight lock from the check to the GETs' start: two readers that both
        // find a chunk missing do not both fetch it.
        let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<u64> =
            range.filter(|&i| i < last && !self.present_in(&map, &chunk_key(path, i))).collect();
        let reaches_end = missing.last().is_some_and(|&i| i + 1 == last);
        if missing.is_empty() || (missing.len() as u64) < min_missing && !reaches_end {
            return;
        }
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in &missing {
            match runs.last_mut() {
                Some(run) if i == run.end && run.end - run.start < inner.run_chunks => run.end += 1,
                _ => runs.push(i..i + 1),
            }
        }
        for run in runs {
            let ahead = run.start.max(needed_until)..run.end.max(needed_until);
            let ahead_bytes = self.span_bytes(size, ahead.clone());
            if run.start >= needed_until {
                let used = inner.ahead_bytes.load(Ordering::Relaxed);
                if used + ahead_bytes > inner.ahead_budget {
                    return;
                }
            }
            inner.ahead_bytes.fetch_add(ahead_bytes, Ordering::Relaxed);
            self.start_get(&mut map, path, size, run, ahead);
        }
    }

    /// Loads the chunks of `range` that only the disk tier holds into the memory tier, in
    /// the background: a sequential reader then finds its next chunk in memory instead of
    /// waiting for the disk in series with its reads. Chunks in memory or not on disk (in
    /// flight or held ones are not: `ensure` GETs only what the cache lacks) are left alone.
    pub(super) fn warm(&self, path: &ObjectPath, range: Range<u64>) {
        let inner = &self.inner;
        for i in range {
            let key = chunk_key(path, i);
            if inner.chunks.get().memory().contains(&key)
                || !inner.chunks.get().storage().may_contains(&key)
            {
                continue;
            }
            if !inner.warming.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone()) {
                continue;
            }
            let inner = inner.clone();
            // Ends by itself: one read of the disk tier (which puts the chunk in memory).
            self.inner.runtime.handle().spawn(async move {
                match inner.chunks.get().get(&key).await {
                    Ok(Some(_)) => {
                        inner.stats.chunk_disk_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "the chunk cache's disk tier failed a read")
                    }
                }
                inner.warming.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            });
        }
    }

    /// Bytes of chunks `run` of an object of `size` bytes.
    pub(super) fn span_bytes(&self, size: u64, run: Range<u64>) -> u64 {
        let cb = self.inner.chunk_bytes;
        (run.end * cb).min(size).saturating_sub(run.start * cb)
    }

    /// Whether the chunk `key` is cached, held or in flight.
    pub(super) fn present(&self, key: &String) -> bool {
        self.present_in(&self.inner.in_flight.lock().unwrap_or_else(|e| e.into_inner()), key)
    }

    /// [`Self::present`] for a caller holding the in-flight lock (`in_flight`).
    pub(super) fn present_in(
        &self,
        in_flight: &HashMap<String, ChunkFuture>,
        key: &String,
    ) -> bool {
        let inner = &self.inner;
        in_flight.contains_key(key)
            || inner.held.lock().unwrap_or_else(|e| e.into_inner()).contains_key(key)
            || inner.chunks.get().contains(key)
    }

    /// Drops the read-ahead chunks held longer than [`HELD_FOR`]: their readers went away.
    pub(super) fn drop_stale_held(&self) {
        let inner = &self.inner;
        let now = shale_core::clock::monotonic_now();
        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
        held.retain(|_, (chunk, at)| {
            let keep = now.duration_since(*at) < HELD_FOR;
            if !keep {
                inner.ahead_bytes.fetch_sub(chunk.len() as u64, Ordering::Relaxed);
            }
            keep
        });
    }

    /// The held read-ahead chunk `key`, now read: it moves to the cache.
    pub(super) fn take_held(&self, key: &str) -> Option<Bytes> {
        let inner = &self.inner;
        let (chunk, _) = inner.held.lock().unwrap_or_else(|e| e.into_inner()).remove(key)?;
        inner.ahead_bytes.fetch_sub(chunk.len() as u64, Ordering::Relaxed);
        inner.chunks.get().insert(key.to_string(), chunk.clone());
        Some(chunk)
    }

    /// One ranged GET for chunks `run` of the object at `path`, on the cold-read runtime;
    /// each chunk is in `in_flight` (the caller holds its lock) until it is in the cache,
    /// or, for the chunks of `ahead` (read ahead, counted in `ahead_bytes`), held.
    pub(super) fn start_get(
        &self,
        in_flight: &mut HashMap<String, ChunkFuture>,
        path: &ObjectPath,
        size: u64,
        run: Range<u64>,
        ahead: Range<u64>,
    ) {
        self.drop_stale_held();
        let ahead_bytes = self.span_bytes(size, ahead.clone());
        let first = run.start;
        let cb = self.inner.chunk_bytes;
        let bytes = run.start * cb..(run.end * cb).min(size);
        let keys: Vec<String> = run.map(|i| chunk_key(path, i)).collect();
        let task = {
            let inner = self.inner.clone();
            let (path, keys) = (path.clone(), keys.clone());
            async move {
                let got = async {
                    let _permit = inner.permits.acquire().await.map_err(|_| closed())?;
                    let sent = shale_core::clock::monotonic_now();
                    let got = inner.catalog.bucket().get_range(&path, bytes).await?;
                    Ok::<_, Error>((got, sent.elapsed()))
                }
                .await;
                let got = got.map(|(all, took)| {
                    let byte_ms = all.len() as u128 * took.as_millis();
                    let s = &inner.stats;
                    s.chunk_get_byte_ms.fetch_add(byte_ms as u64, Ordering::Relaxed);
                    all
                });
                match &got {
                    Ok(all) => {
                        let s = &inner.stats;
                        s.chunk_gets.fetch_add(1, Ordering::Relaxed);
                        s.chunk_get_bytes.fetch_add(all.len() as u64, Ordering::Relaxed);
                        let n = ahead.end - ahead.start;
                        s.chunks_read_ahead.fetch_add(n, Ordering::Relaxed);
                        let now = shale_core::clock::monotonic_now();
                        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
                        for (j, key) in keys.iter().enumerate() {
                            let chunk = slice_chunk(all, j, cb);
                            if ahead.contains(&(first + j as u64)) {
                                // Counted once: a chunk held already (it cannot be, as
                                // `ensure` checks under the lock) is replaced, not added.
                                if let Some((old, _)) = held.insert(key.clone(), (chunk, now)) {
                                    let old = old.len() as u64;
                                    inner.ahead_bytes.fetch_sub(old, Ordering::Relaxed);
                                }
                            } else {
                                inner.chunks.get().insert(key.clone(), chunk);
                            }
                        }
                    }
                    Err(_) => drop(inner.ahead_bytes.fetch_sub(ahead_bytes, Ordering::Relaxed)),
                }
                // After the cache (or `held`) has them, so a reader finds each chunk there or
                // here.
                let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                for key in &keys {
                    map.remove(key);
                }
                got
            }
        };
        // Ends by itself: one GET under the bucket's timeout and retries. Awaited through
        // the shared futures below by every reader of these chunks.
        let handle = self.inner.runtime.handle().spawn(task);
        let all = async move {
            handle.await.unwrap_or_else(|e| Err(Error::unavailable(format!("cold read: {e}"))))
        }
        .boxed()
        .shared();
        for (j, key) in keys.into_iter().enumerate() {
            let all = all.clone();
            let chunk = async move { all.await.map(|all| slice_chunk(&all, j, cb)) };
            in_flight.insert(key, chunk.boxed().shared());
        }
    }

    /// Chunk `i` of the cursor's segment: from the memory tier, the disk tier, or the GET
    /// bringing it (started here if none is).
    pub(super) async fn chunk(&self, cursor: &Cursor<'_>, i: u64) -> Result<Bytes, Error> {
        let last = cursor.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((_, chunk)) = last.filter(|(j, _)| *j == i) {
            return Ok(chunk);
        }
        let chunk = self.lookup(cursor, i).await?;
        *cursor.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((i, chunk.clone()));
        Ok(chunk)
    }

    /// [`Self::chunk`] without the cursor's memo.
    pub(super) async fn lookup(&self, cursor: &Cursor<'_>, i: u64) -> Result<Bytes, Error> {
        let inner = &self.inner;
        let key = chunk_key(&cursor.path, i);
        let mut refetch = false;
        loop {
            let pending = {
                let mut map = inner.in_flight.lock().unwrap_or_else(|e| e.into_inner());
                if !map.contains_key(&key) {
                    if let Some(chunk) = self.take_held(&key) {
                        inner.stats.chunk_hits.fetch_add(1, Ordering::Relaxed);
                        return Ok(chunk);
                    }
                    if refetch || !inner.chunks.get().contains(&key) {
                        let size = cursor.segment.size_bytes;
                        self.start_get(&mut map, &cursor.path, size, i..i + 1, 0..0);
                    }
                }
                map.get(&key).cloned()
            };
            if let Some(pending) = pending {
                cursor.waited.store(true, Ordering::Relaxed);
                inner.stats.chunk_misses.fetch_add(1, Ordering::Relaxed);
                let chunk = pending.await?;
                // A chunk read ahead is held for its reader: this is it.
                self.take_held(&key);
                return Ok(chunk);
            }
            // A chunk being warmed from the disk tier is counted there (as a disk hit).
            let in_memory = inner.chunks.get().memory().contains(&key)
                || inner.warming.lock().unwrap_or_else(|e| e.into_inner()).contains(&key);
            match inner.chunks.get().get(&key).await {
                Ok(Some(entry)) => {
                    let s = &inner.stats;
                    let counter = if in_memory { &s.chunk_hits } else { &s.chunk_disk_hits };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return Ok(entry.value().clone());
                }
                // Evicted since, or the disk tier failed: GET it.
                Ok(None) => refetch = true,
                Err(e) => {
                    tracing::debug!(error = %e, "the chunk cache's disk tier failed a read");
                    refetch = true;
                }
            }
        }
    }
}

/// The cache key of chunk `i` of the object at `path`.
pub(super) fn chunk_key(path: &ObjectPath, i: u64) -> String {
    format!("{path}#{i}")
}

/// Chunk `j` of the bytes `all` of a GET that started at a chunk boundary.
fn slice_chunk(all: &Bytes, j: usize, chunk_bytes: u64) -> Bytes {
    let from = (j as u64 * chunk_bytes).min(all.len() as u64) as usize;
    let to = (from as u64 + chunk_bytes).min(all.len() as u64) as usize;
    all.slice(from..to)
}

//! Giving memory back after a burst.
//!
//! A full sync of many networks runs on several threads at once; glibc keeps
//! what they freed in per-thread arenas, so the agent's resident size after a
//! sync stays near its peak although the cache is small. Trimming once the
//! sync is done returns those pages (measured: see README, memory rows).

/// Returns free heap pages to the kernel (glibc's `malloc_trim`; nothing on
/// other C libraries).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Logs glibc's heap figures at debug level: how much of the heap is in
/// use and how much is free but kept (fragmentation), after `when`.
pub fn log_heap(when: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let m = unsafe { libc::mallinfo2() };
        tracing::debug!(
            in_use_kib = m.uordblks / 1024,
            free_kib = m.fordblks / 1024,
            from_system_kib = m.arena / 1024,
            mmapped_kib = m.hblkhd / 1024,
            "heap {when}"
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = when;
}

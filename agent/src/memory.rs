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

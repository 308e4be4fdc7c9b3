//! The global allocator of floe's binaries (the broker and the fuzz
//! targets).
//!
//! Why: the Kafka request decoder (the `kafka-protocol` crate) sizes an
//! array's `Vec` by the count the client sent, before it has seen the
//! elements (`Vec::with_capacity(n)` in its `Array` and `CompactArray`
//! decoders). A 23-byte frame claiming 2^31-1 topics asked the system
//! allocator for tens of gigabytes, which fails, and Rust aborts the whole
//! process on a failed allocation: one client could stop the broker. The
//! decoder then fails as soon as the frame's bytes run out, so what it
//! actually fills is bounded by the frame.
//!
//! What: allocations of [`HUGE`] bytes or more are served by an anonymous
//! `mmap` with `MAP_NORESERVE`: address space is reserved, memory is used
//! only for the pages written. A count-sized buffer that the decoder never
//! fills costs nothing, and the decoder's error frees it. Smaller
//! allocations go to the system allocator unchanged. (With
//! `vm.overcommit_memory=2` the kernel refuses such reservations and the
//! old failure returns; floe's default deployment keeps the kernel's
//! default, 0.)

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations from this size on reserve address space instead of memory.
pub const HUGE: usize = 1 << 30;

/// The allocator. Install it with
/// `#[global_allocator] static A: floe_alloc::LazyHuge = floe_alloc::LazyHuge;`.
pub struct LazyHuge;

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= page()
}

/// Reserves `size` bytes of zeroed, lazily committed memory.
unsafe fn reserve(size: usize) -> *mut u8 {
    let p = libc::mmap(
        std::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
        0,
    );
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: huge blocks come from mmap (page-aligned, which covers every
// alignment `is_huge` admits) and go back to munmap with the size they
// were made with; everything else is the system allocator's.
unsafe impl GlobalAlloc for LazyHuge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            reserve(layout.size())
        } else {
            System.alloc(layout)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Anonymous mappings are zeroed.
            reserve(layout.size())
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_huge(&layout), is_huge(&new_layout)) {
            (false, false) => System.realloc(ptr, layout, new_size),
            (true, true) => {
                let p = libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE);
                if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

/// Below this size, glibc's malloc serves blocks from its heaps (see
/// [`keep_freed_memory`]).
pub const HEAP_BLOCKS_BELOW: usize = 256 << 20;

/// Makes the system allocator keep and reuse memory it was given instead
/// of handing it back to the kernel at once: blocks under
/// [`HEAP_BLOCKS_BELOW`] come from its heaps (not one `mmap` each), and
/// free memory at the top of a heap is kept up to that much. By default
/// glibc maps every block above a threshold that adapts up to 32 MiB and
/// trims its heaps down to 128 KiB, so the broker's per-flush buffers (a
/// few MiB each, allocated, grown and freed every flush) took fresh pages
/// from the kernel each time, and a page's first touch (fault and zeroing)
/// cost more than the data written to it: measured a third of the
/// broker's CPU at 1 000 partitions on a virtual machine, where first
/// touch is slower still. What is kept stays bounded by what the broker's
/// memory budget lets it hold at once. Call once, at start, before other
/// threads allocate.
pub fn keep_freed_memory() {
    let bytes = HEAP_BLOCKS_BELOW as libc::c_int;
    // SAFETY: mallopt only changes the allocator's parameters; it is called
    // before other threads run.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, bytes);
        libc::mallopt(libc::M_TRIM_THRESHOLD, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static A: LazyHuge = LazyHuge;

    #[test]
    fn a_count_sized_buffer_costs_address_space_not_memory() {
        // 64 GiB, more than the machine has: reserved, never committed.
        let mut v: Vec<u64> = Vec::with_capacity(8 << 30);
        assert!(v.capacity() >= 8 << 30);
        v.extend(0..1000);
        assert_eq!(v[999], 999);
        drop(v);
        // Growing across the threshold and back keeps the contents.
        let mut v: Vec<u8> = vec![7; HUGE - 1];
        v.reserve(2);
        v.push(1);
        v.push(2);
        assert_eq!(v[HUGE - 2], 7);
        assert_eq!(v[HUGE], 2);
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v, vec![7; 10]);
    }
}

//! C allocation symbols for `wasm32-unknown-unknown`.
//!
//! JPEG 2000 decoding goes through `openjp2`, a Rust port of OpenJPEG that
//! still calls `malloc`, `calloc`, `realloc`, `free` and `strcpy` through
//! `extern "C"`. The wasm32-unknown-unknown target has no C library, so those
//! calls become imports from a module named `env` that no browser provides
//! ("Cannot find module 'env'"). This crate defines them, for wasm32 only,
//! over Rust's global allocator: every block carries a small header in front
//! of it holding its size, so that `free` and `realloc` can rebuild the
//! [`Layout`](std::alloc::Layout) Rust needs. `free(NULL)` is a no-op, as C
//! requires.
//!
//! openjp2 also hands null pointers to Rust's `dealloc` (a code block that
//! never received decoded data is freed with `dealloc(null, layout)`). With
//! the system allocator of native targets that is `free(NULL)` and harmless;
//! wasm32's dlmalloc traps on it ("memory access out of bounds"). So this
//! crate also installs the global allocator for wasm32: the system allocator
//! with `dealloc(null, _)` as a no-op.
//!
//! Link it by naming it once in any crate of the final binary, e.g.
//! `use ct_triage_wasm_libc as _;` — an unused dependency is not linked.
//! On other targets the crate is empty.

#![no_std]

#[cfg(target_arch = "wasm32")]
extern crate alloc;
#[cfg(target_arch = "wasm32")]
extern crate std;

#[cfg(target_arch = "wasm32")]
mod global {
    use alloc::alloc::{GlobalAlloc, Layout};
    use core::ptr::null_mut;
    use std::alloc as std_alloc;

    /// The system allocator (dlmalloc on wasm32), tolerating `dealloc(null)`.
    struct NullTolerant;

    // SAFETY: every call forwards to the system allocator with the caller's
    // arguments, except `dealloc` of a null pointer, which owns no memory.
    unsafe impl GlobalAlloc for NullTolerant {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded contract.
            unsafe { std_alloc::System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded contract.
            unsafe { std_alloc::System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if ptr.is_null() {
                return;
            }
            // SAFETY: forwarded contract.
            unsafe { std_alloc::System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if ptr.is_null() {
                return match Layout::from_size_align(new_size, layout.align()) {
                    // SAFETY: a fresh allocation of the requested size.
                    Ok(l) if new_size > 0 => unsafe { std_alloc::System.alloc(l) },
                    _ => null_mut(),
                };
            }
            // SAFETY: forwarded contract.
            unsafe { std_alloc::System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: NullTolerant = NullTolerant;
}

#[cfg(target_arch = "wasm32")]
mod shim {
    use alloc::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc as rust_realloc};
    use core::ffi::{c_char, c_void};
    use core::ptr::null_mut;

    /// Bytes in front of each block: the requested size, padded to the alignment.
    const HEADER: usize = 16;
    /// Alignment of every block (C's `max_align_t` is 8 on wasm32; 16 is safe for SIMD).
    const ALIGN: usize = 16;

    fn layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size.checked_add(HEADER)?, ALIGN).ok()
    }

    /// Allocate `size` bytes behind a header; null when the size cannot be represented.
    unsafe fn block(size: usize, zeroed: bool) -> *mut c_void {
        let Some(l) = layout(size) else {
            return null_mut();
        };
        // SAFETY: `l` has a non-zero size (it includes the header).
        let base = unsafe { if zeroed { alloc_zeroed(l) } else { alloc(l) } };
        if base.is_null() {
            return null_mut();
        }
        // SAFETY: `base` is valid for `HEADER` bytes and aligned to 16.
        unsafe {
            base.cast::<usize>().write(size);
            base.add(HEADER).cast()
        }
    }

    /// The header and layout of a block returned by [`block`].
    unsafe fn header(ptr: *mut c_void) -> (*mut u8, Layout) {
        // SAFETY: the caller passes a pointer returned by `block`, so the
        // header is right in front of it and holds a size that made a valid layout.
        unsafe {
            let base = ptr.cast::<u8>().sub(HEADER);
            let size = base.cast::<usize>().read();
            (
                base,
                Layout::from_size_align_unchecked(size + HEADER, ALIGN),
            )
        }
    }

    /// C `malloc`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
        // SAFETY: see `block`.
        unsafe { block(size, false) }
    }

    /// C `calloc`: zeroed, null on overflow of `n * size`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
        match n.checked_mul(size) {
            // SAFETY: see `block`.
            Some(total) => unsafe { block(total, true) },
            None => null_mut(),
        }
    }

    /// C `free`; `free(NULL)` does nothing.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn free(ptr: *mut c_void) {
        if ptr.is_null() {
            return;
        }
        // SAFETY: non-null pointers passed to `free` come from this allocator.
        unsafe {
            let (base, l) = header(ptr);
            dealloc(base, l);
        }
    }

    /// C `realloc`: `realloc(NULL, n)` is `malloc(n)`; contents are kept up to the smaller size.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
        if ptr.is_null() {
            // SAFETY: see `block`.
            return unsafe { block(size, false) };
        }
        let Some(new) = layout(size) else {
            return null_mut();
        };
        // SAFETY: `ptr` comes from this allocator; the new size is non-zero
        // and was checked to make a valid layout with the same alignment.
        unsafe {
            let (base, old) = header(ptr);
            let moved = rust_realloc(base, old, new.size());
            if moved.is_null() {
                return null_mut();
            }
            moved.cast::<usize>().write(size);
            moved.add(HEADER).cast()
        }
    }

    /// C `strcpy`: copies up to and including the terminating NUL.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn strcpy(dst: *mut c_char, src: *const c_char) -> *mut c_char {
        let mut i = 0;
        // SAFETY: C contract: `src` is NUL-terminated and `dst` is large enough.
        unsafe {
            loop {
                let c = *src.add(i);
                *dst.add(i) = c;
                if c == 0 {
                    break;
                }
                i += 1;
            }
        }
        dst
    }
}

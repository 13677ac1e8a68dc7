use std::process::ExitCode;

use clap::Parser;
use marquee::cli::{run, Cli};

/// Replays and pages of events allocate and free millions of small values across threads, where
/// glibc's allocator spent more time than the work itself (bench/README.md, replay).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (the option after
/// `mi_option_eager_commit_delay`); libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Gives freed pages back to the system at once rather than after a delay (mimalloc's default:
/// 10 ms, ten times that for arena memory), unless the environment sets `MIMALLOC_PURGE_DELAY`.
/// Under the soak's steady load the delayed purges kept the arena 20-30 MiB higher, swinging by
/// 30 MiB (README, Soak).
fn purge_freed_pages_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: stores one of mimalloc's option values, which it reads whenever it purges.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    purge_freed_pages_at_once();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("marquee: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> std::ffi::c_long {
        // SAFETY: reads one of mimalloc's option values.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[test]
    fn the_purge_delay_is_the_option_set_to_zero() {
        assert!(
            std::env::var_os("MIMALLOC_PURGE_DELAY").is_none(),
            "run without MIMALLOC_PURGE_DELAY: it overrides what this test checks"
        );
        // mimalloc's default of 10 (ms) tells the option apart from its neighbours (1 and 0).
        assert_eq!(purge_delay(), 10);
        purge_freed_pages_at_once();
        assert_eq!(purge_delay(), 0);
    }
}

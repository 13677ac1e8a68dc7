//! What the benchmark programs share: the driver (timing window, warm-up, percentiles), the
//! contenders that append one new movie each, including the raw-insert baseline, and the probe
//! of the machine the figures came from, and the release `marquee serve` as a child process.

pub mod contenders;
pub mod driver;
pub mod machine;
pub mod server;

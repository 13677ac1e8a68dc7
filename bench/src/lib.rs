//! What the benchmark programs share: the driver (timing window, warm-up, percentiles), the
//! contenders that append one new movie each, including the raw-insert baseline, and the probe
//! of the machine the figures came from.

pub mod contenders;
pub mod driver;
pub mod machine;

//! Glue for running hyper 1.x on glommio: an I/O adapter, a shard-local executor and a
//! timer. hyper is runtime-agnostic but needs all three from somewhere; tokio's would pull
//! in a second reactor.

mod deadlines;
mod exec;
mod io;
mod timer;

pub use exec::LocalExec;
pub use io::HyperIo;
pub use timer::{GlommioSleep, GlommioTimer};

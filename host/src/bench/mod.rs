//! Benchmarks that train many runs and write a Markdown table: `tinykd bench methods` compares
//! every distillation method on the same teacher, student and schedule.

pub mod methods;

pub use methods::{run_methods_bench, BenchRow, MethodsBenchOptions};

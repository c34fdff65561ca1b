//! The `tinykd` command line. All the work is in the library ([`tinykd::cli`]); `anyhow` is used
//! here only, to print the error chain.

use clap::Parser;

fn main() {
    let cli = tinykd::cli::Cli::parse();
    if let Err(e) = cli.command.run().map_err(anyhow::Error::from) {
        // `{:#}` prints the whole chain on one line, without a backtrace: these are the user's
        // errors (bad files, bad flags), not tinykd's.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

//! The `tinykd` command line. All the work is in the library ([`tinykd::cli`]); `anyhow` is used
//! here only, to print the error chain.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = tinykd::cli::Cli::parse();
    cli.command.run()?;
    Ok(())
}

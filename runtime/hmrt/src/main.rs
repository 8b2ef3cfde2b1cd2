use clap::Parser;

fn main() -> std::process::ExitCode {
    hmrt::cli::main(hmrt::cli::Args::parse())
}

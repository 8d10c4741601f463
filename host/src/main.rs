//! The `podrun` command: parses the command line, runs it, prints the error
//! chain and sets the exit code (see the README's table).

fn main() -> std::process::ExitCode {
    podrun::cli::main()
}

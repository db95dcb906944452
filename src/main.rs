fn main() -> std::process::ExitCode {
    kiss_auth::cli::run()
}

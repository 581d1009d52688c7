//! `profilis-json-exporter`: polls a JSON status endpoint and serves it as Prometheus metrics.
//! SKELETON: to be written.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::FAILURE
}

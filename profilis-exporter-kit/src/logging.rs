//! Logging: tracing-subscriber's fmt subscriber on stderr at the `-L/--log-level` level.

use crate::LogLevel;

/// Installs the fmt subscriber at `level` as the global one, writing to stderr. If the
/// program (or an earlier start in the same process) already set a global subscriber, that one
/// stays and keeps its own level. Colours only on a terminal.
pub(crate) fn init(level: LogLevel) {
    use std::io::IsTerminal;
    let _already_set = tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level.tracing_level())
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

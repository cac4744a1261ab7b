//! Progress bars (indicatif) for the transfers the command makes: drawn on stderr with rate and
//! ETA, and only when both stdout and stderr are terminals (in a pipe or a log they are noise).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar for a transfer of `total` bytes, or `None` when output is not a terminal or is JSON.
pub fn bar(total: u64, label: &str, json: bool) -> Option<ProgressBar> {
    if json || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .expect("a valid template"),
    );
    bar.set_message(label.to_owned());
    Some(bar)
}

/// A bar for a transfer whose total is unknown (a streamed answer): bytes so far and rate, under
/// the same conditions as [`bar`].
pub fn stream_bar(label: &str, json: bool) -> Option<ProgressBar> {
    if json || !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::no_length();
    bar.set_style(
        ProgressStyle::with_template("{msg} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}")
            .expect("a valid template"),
    );
    bar.set_message(label.to_owned());
    Some(bar)
}

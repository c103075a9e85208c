//! The benchmark's progress bars.

/// A progress bar (hidden with --quiet).
pub fn bar(quiet: bool, len: u64, msg: &str) -> indicatif::ProgressBar {
    let b = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(len)
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg:>12} [{bar:32}] {pos}/{len} {per_sec} eta {eta}",
    ) {
        b.set_style(style);
    }
    b.set_message(msg.to_string());
    b
}

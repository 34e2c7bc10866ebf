//! The one progress-bar builder of the command-line tools (`alexpipe`, `build-shards`, `train`,
//! `alexpipe-viz`): the same look everywhere, hidden when the user asked for quiet.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items named `unit` ("images", "steps"); a `prefix` set on it (an epoch, a
/// phase) and a `message` (a running loss) show beside it. Hidden unless `visible`.
pub fn bar(len: u64, unit: &str, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let template =
        format!("{{prefix}}[{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}  {{per_sec}}  ETA {{eta}}");
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A spinner counting `unit`s when the total is not known in advance. Hidden unless `visible`.
pub fn spinner(unit: &str, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template(&format!("{{spinner}} {{pos}} {unit}  {{per_sec}}"))
    {
        bar.set_style(style);
    }
    bar
}

/// A [`bar`] over `len` items when the total is known, else a [`spinner`].
pub fn bar_or_spinner(len: Option<u64>, unit: &str, visible: bool) -> ProgressBar {
    match len {
        Some(len) => bar(len, unit, visible),
        None => spinner(unit, visible),
    }
}

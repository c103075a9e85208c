//! `vosbench eval`: the official SA-V J&F of a prediction folder.

use crate::eval::{evaluate_dirs, EvalOptions};
use std::path::PathBuf;

/// Score predicted masks against ground truth with the official SA-V evaluator's rules
/// (facebookresearch/sam2 `sav_dataset/sav_evaluator.py`): J, boundary F with a disk tolerance
/// of 0.8% of the image diagonal, first and last annotated frames skipped, objects pooled.
///
/// Layouts: SA-V (`<video>/<obj>/<frame>.png`, binary masks) or DAVIS-style
/// (`<video>/<frame>.png` with object ids as palette indices), detected per video. Writes
/// results.csv (official format) and results.json (full precision) into the prediction folder,
/// or into --out.
///
/// Without --strict, a missing prediction PNG is scored as an empty mask and listed, and
/// ground-truth videos with no prediction folder are left out and listed (the official
/// non-strict rule). With --strict both are errors.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ground-truth masks: `<split>/Annotations_6fps` (or the split folder itself).
    #[arg(long, value_name = "DIR")]
    pub gt_root: PathBuf,
    /// Predicted masks, same layout as the ground truth.
    #[arg(long, value_name = "DIR")]
    pub pred_root: PathBuf,
    /// Also score each object's first and last annotated frames (not the SA-V protocol).
    #[arg(long)]
    pub no_skip_first_last: bool,
    /// Fail on any missing or broken prediction and on video-set mismatches.
    #[arg(long)]
    pub strict: bool,
    /// Where to write results.csv and results.json (default: the prediction folder).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print only the global score line.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: Args) -> crate::Result<()> {
    let opts = EvalOptions {
        skip_first_and_last: !args.no_skip_first_last,
        strict: args.strict,
        threads: args.threads,
    };
    let start = std::time::Instant::now();
    let report = evaluate_dirs(&args.gt_root, &args.pred_root, &opts)?;
    let out_dir = args.out.clone().unwrap_or_else(|| args.pred_root.clone());
    let (csv_path, json_path) = report.write(&out_dir)?;
    let (jf, j, f) = report
        .global()
        .ok_or_else(|| crate::Error::Input("no object could be scored".into()))?;

    if !args.quiet {
        if opts.skip_first_and_last {
            println!("Skipping each object's first and last annotated frame (SA-V protocol).");
        } else {
            println!(
                "Scoring every annotated frame, first and last included (NOT the SA-V protocol)."
            );
        }
        print!("{}", report.results_csv()?.replace(',', " "));
        println!();
        for v in &report.videos_without_predictions {
            eprintln!("warning: video {v} has no prediction folder; left out");
        }
        for p in &report.missing_predictions {
            eprintln!(
                "warning: {}: prediction PNG not found; scored as an empty mask",
                p.display()
            );
        }
        for u in &report.unscored {
            eprintln!("warning: {u}");
        }
        for p in &report.problems {
            eprintln!("warning: {p}");
        }
        println!(
            "{} object(s) in {} video(s), {:.2}s; wrote {} and {}",
            report.objects.len(),
            report.sequences.len(),
            start.elapsed().as_secs_f64(),
            csv_path.display(),
            json_path.display()
        );
    } else {
        let issues = report.videos_without_predictions.len()
            + report.missing_predictions.len()
            + report.unscored.len()
            + report.problems.len();
        if issues > 0 {
            eprintln!(
                "warning: {issues} data issue(s); see {}",
                json_path.display()
            );
        }
    }
    println!("Global score: J&F: {jf:.1} J: {j:.1} F: {f:.1}");
    Ok(())
}

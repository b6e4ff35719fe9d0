//! SVG plots of training progress and ROC curves.
//!
//! Why SVG: it needs no fonts or image libraries at build time (plotters is built with only
//! its SVG backend), the files are small text that can be diffed and kept next to a model
//! report, and every browser opens them.
//!
//! Non-finite values (a diverged epoch's `NaN` loss, say) are left out of the lines rather
//! than failing the plot: a plot is most needed exactly when training went wrong.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Size of the learning-curve figure: two panels side by side.
const LEARNING_CURVE_SIZE: (u32, u32) = (1200, 500);
/// Size of the ROC figure: square, so that the diagonal is at 45°.
const ROC_SIZE: (u32, u32) = (650, 650);

/// Per-epoch metrics recorded by the trainer, all vectors indexed alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    pub epoch: Vec<usize>,
    pub train_loss: Vec<f64>,
    pub validation_loss: Vec<f64>,
    pub train_auc: Vec<f64>,
    pub validation_auc: Vec<f64>,
    /// The epoch whose weights were kept (early stopping), marked on the plot.
    pub best_epoch: Option<usize>,
}

/// Why a plot could not be written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PlotError {
    /// An error from plotters or from writing the file, kept as text because plotters' error
    /// type is generic over the backend and not `Clone`.
    #[error("drawing failed: {0}")]
    Drawing(String),
    /// The series must line up with the epochs, or points would be plotted at wrong epochs.
    #[error(
        "learning curve series lengths differ: {epochs} epochs, {train_loss} train loss, \
         {validation_loss} validation loss, {train_auc} train AUC, {validation_auc} \
         validation AUC"
    )]
    InconsistentLengths {
        epochs: usize,
        train_loss: usize,
        validation_loss: usize,
        train_auc: usize,
        validation_auc: usize,
    },
    /// There is nothing to draw.
    #[error("the learning curve has no epochs")]
    NoEpochs,
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for PlotError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        PlotError::Drawing(error.to_string())
    }
}

/// Writes an SVG with two panels side by side, loss and AUC over epochs, each with train and
/// validation lines and a dashed vertical marker at `best_epoch`.
///
/// Seeing both panels together shows whether the validation loss turned up (overfitting)
/// while the AUC still improved, which is what early stopping on one of them decides.
pub(crate) fn plot_learning_curve(
    curve: &LearningCurve,
    path: &Path,
    title: &str,
) -> Result<(), PlotError> {
    let n = curve.epoch.len();
    let lengths = [
        curve.train_loss.len(),
        curve.validation_loss.len(),
        curve.train_auc.len(),
        curve.validation_auc.len(),
    ];
    if lengths.iter().any(|&len| len != n) {
        return Err(PlotError::InconsistentLengths {
            epochs: n,
            train_loss: lengths[0],
            validation_loss: lengths[1],
            train_auc: lengths[2],
            validation_auc: lengths[3],
        });
    }
    let (Some(&first), Some(&last)) = (curve.epoch.iter().min(), curve.epoch.iter().max()) else {
        return Err(PlotError::NoEpochs);
    };
    // A single epoch still needs an x axis of positive width.
    let epochs = first..last.max(first + 1);

    let root = SVGBackend::new(path, LEARNING_CURVE_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(title, ("sans-serif", 24))?;
    let panels = body.split_evenly((1, 2));
    let panel_specs = [
        Panel {
            caption: "Loss",
            y_desc: "log loss",
            train: &curve.train_loss,
            validation: &curve.validation_loss,
            bounds: (Some(0.0), None),
            legend: SeriesLabelPosition::UpperRight,
        },
        Panel {
            caption: "ROC AUC",
            y_desc: "AUC",
            train: &curve.train_auc,
            validation: &curve.validation_auc,
            bounds: (Some(0.0), Some(1.0)),
            legend: SeriesLabelPosition::LowerRight,
        },
    ];
    for (area, spec) in panels.iter().zip(&panel_specs) {
        draw_panel(area, spec, &curve.epoch, epochs.clone(), curve.best_epoch)?;
    }
    root.present()?;
    Ok(())
}

/// Writes an SVG with one labelled ROC curve per entry, (false-positive rate, true-positive
/// rate) points as returned by `metrics::roc_curve`, plus the diagonal of a model that
/// guesses, so that several models (or train, validation and test) compare at a glance.
pub(crate) fn plot_roc(
    curves: &[(String, Vec<(f64, f64)>)],
    path: &Path,
    title: &str,
) -> Result<(), PlotError> {
    let square = UnitSquare {
        caption_size: 24,
        x_desc: "false-positive rate (good applicants flagged bad)",
        y_desc: "true-positive rate (bad applicants flagged)",
        diagonal: "chance",
        markers: false,
        legend: SeriesLabelPosition::LowerRight,
    };
    plot_unit_square(curves, path, title, square)
}

/// Reliability curves (mean predicted probability against observed bad rate per bin, one
/// marked line per labelled series) with the diagonal a calibrated model lies on.
pub(crate) fn plot_reliability_curves(
    curves: &[(String, Vec<(f64, f64)>)],
    path: &Path,
    title: &str,
) -> Result<(), PlotError> {
    let square = UnitSquare {
        caption_size: 20,
        x_desc: "mean predicted probability of bad (per bin)",
        y_desc: "observed bad rate (per bin)",
        diagonal: "perfectly calibrated",
        markers: true,
        legend: SeriesLabelPosition::UpperLeft,
    };
    plot_unit_square(curves, path, title, square)
}

/// What differs between the plots of curves on [0, 1] x [0, 1] with a dashed diagonal.
struct UnitSquare<'a> {
    caption_size: u32,
    x_desc: &'a str,
    y_desc: &'a str,
    /// The legend entry of the diagonal.
    diagonal: &'a str,
    /// A dot on every point, for curves of a few bins.
    markers: bool,
    legend: SeriesLabelPosition,
}

/// One labelled line per curve (non-finite points left out) over the dashed diagonal.
fn plot_unit_square(
    curves: &[(String, Vec<(f64, f64)>)],
    path: &Path,
    title: &str,
    square: UnitSquare<'_>,
) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, ROC_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", square.caption_size))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc(square.x_desc)
        .y_desc(square.y_desc)
        .draw()?;
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            8,
            6,
            BLACK.mix(0.5).stroke_width(1),
        ))?
        .label(square.diagonal)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.5)));
    for (i, (label, points)) in curves.iter().enumerate() {
        let style = Palette99::pick(i).stroke_width(2);
        let finite: Vec<(f64, f64)> = points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(finite.iter().copied(), style))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        if square.markers {
            chart.draw_series(
                finite
                    .into_iter()
                    .map(|point| Circle::new(point, 4, style.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(square.legend)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    root.present()?;
    Ok(())
}

/// What differs between the learning-curve panels.
struct Panel<'a> {
    caption: &'a str,
    y_desc: &'a str,
    train: &'a [f64],
    validation: &'a [f64],
    /// Hard limits of the metric (loss ≥ 0, 0 ≤ AUC ≤ 1), so padding never leaves them.
    bounds: (Option<f64>, Option<f64>),
    legend: SeriesLabelPosition,
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    spec: &Panel<'_>,
    epochs: &[usize],
    x_range: Range<usize>,
    best_epoch: Option<usize>,
) -> Result<(), PlotError> {
    let y_range = padded_range(spec.train.iter().chain(spec.validation), spec.bounds);
    let mut chart = ChartBuilder::on(area)
        .caption(spec.caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.clone(), y_range.clone())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(spec.y_desc)
        .draw()?;

    for (name, values, colour) in [
        ("train", spec.train, BLUE),
        ("validation", spec.validation, RED),
    ] {
        let points = epochs
            .iter()
            .copied()
            .zip(values.iter().copied())
            .filter(|(_, v)| v.is_finite());
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }

    if let Some(best) = best_epoch.filter(|e| x_range.contains(e) || *e == x_range.end) {
        let style = BLACK.stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(
                [(best, y_range.start), (best, y_range.end)],
                6,
                4,
                style,
            ))?
            .label(format!("best epoch {best}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    }

    chart
        .configure_series_labels()
        .position(spec.legend.clone())
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()?;
    Ok(())
}

/// The range of the finite values with 5% padding on each side, kept within `bounds`; a
/// constant series gets a band around its value, and no finite values give `0..1`.
fn padded_range<'a>(
    values: impl Iterator<Item = &'a f64>,
    bounds: (Option<f64>, Option<f64>),
) -> Range<f64> {
    let (low, high) = values
        .copied()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return 0.0..1.0;
    }
    let pad = if high > low {
        (high - low) * 0.05
    } else {
        low.abs().max(1.0) * 0.05
    };
    let start = bounds.0.map_or(low - pad, |floor| (low - pad).max(floor));
    let end = bounds
        .1
        .map_or(high + pad, |ceiling| (high + pad).min(ceiling));
    if end > start {
        start..end
    } else {
        // Only possible when the values sit outside the bounds; show them unclamped.
        (low - pad)..(high + pad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contents of every `<text>` element, trimmed (plotters puts them on their own line).
    fn texts(svg: &str) -> Vec<&str> {
        svg.split("<text")
            .skip(1)
            .filter_map(|chunk| {
                let start = chunk.find('>')? + 1;
                let end = chunk.find("</text>")?;
                Some(chunk[start..end].trim())
            })
            .collect()
    }

    fn curve() -> LearningCurve {
        LearningCurve {
            epoch: vec![1, 2, 3, 4],
            train_loss: vec![0.69, 0.55, 0.48, 0.44],
            validation_loss: vec![0.68, 0.58, 0.54, 0.57],
            train_auc: vec![0.60, 0.72, 0.80, 0.84],
            validation_auc: vec![0.58, 0.70, 0.76, 0.75],
            best_epoch: Some(3),
        }
    }

    #[test]
    fn learning_curve_svg_has_title_panels_series_and_marker() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.svg");
        plot_learning_curve(&curve(), &path, "LSTM training run 42").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "not an SVG");
        let texts = texts(&svg);
        for text in ["LSTM training run 42", "Loss", "ROC AUC", "log loss", "AUC"] {
            assert!(texts.contains(&text), "missing {text:?} in {texts:?}");
        }
        // Both panels have an x axis description and the same three legend entries.
        for text in ["epoch", "train", "validation", "best epoch 3"] {
            let count = texts.iter().filter(|&&t| t == text).count();
            assert_eq!(count, 2, "{text:?} appears {count} times in {texts:?}");
        }
    }

    #[test]
    fn learning_curve_without_best_epoch_has_no_marker_and_survives_nan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.svg");
        let mut c = curve();
        c.best_epoch = None;
        c.validation_loss[3] = f64::NAN;
        plot_learning_curve(&c, &path, "diverged").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(!texts(&svg).iter().any(|t| t.starts_with("best epoch")));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn learning_curve_with_one_epoch_still_plots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.svg");
        let c = LearningCurve {
            epoch: vec![0],
            train_loss: vec![0.7],
            validation_loss: vec![0.7],
            train_auc: vec![0.5],
            validation_auc: vec![0.5],
            best_epoch: Some(0),
        };
        plot_learning_curve(&c, &path, "one epoch").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(texts(&svg).contains(&"best epoch 0"));
    }

    #[test]
    fn learning_curve_rejects_misaligned_or_empty_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.svg");
        let mut c = curve();
        c.train_auc.pop();
        assert_eq!(
            plot_learning_curve(&c, &path, "t"),
            Err(PlotError::InconsistentLengths {
                epochs: 4,
                train_loss: 4,
                validation_loss: 4,
                train_auc: 3,
                validation_auc: 4,
            })
        );
        assert_eq!(
            plot_learning_curve(&LearningCurve::default(), &path, "t"),
            Err(PlotError::NoEpochs)
        );
        assert!(!path.exists());
    }

    #[test]
    fn learning_curve_reports_unwritable_paths_as_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-directory").join("curve.svg");
        assert!(matches!(
            plot_learning_curve(&curve(), &path, "t"),
            Err(PlotError::Drawing(_))
        ));
    }

    #[test]
    fn roc_svg_has_title_every_label_and_the_diagonal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.svg");
        let curves = vec![
            (
                "validation".to_string(),
                vec![(0.0, 0.0), (0.1, 0.5), (0.4, 0.8), (1.0, 1.0)],
            ),
            ("test".to_string(), vec![(0.0, 0.0), (0.2, 0.4), (1.0, 1.0)]),
        ];
        plot_roc(&curves, &path, "ROC & friends").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        // Text is XML-escaped in the file.
        for text in [
            "ROC &amp; friends",
            "validation",
            "test",
            "chance",
            "false-positive rate (good applicants flagged bad)",
            "true-positive rate (bad applicants flagged)",
        ] {
            assert!(texts.contains(&text), "missing {text:?} in {texts:?}");
        }
        // The two curves and their two legend swatches are polylines.
        assert!(svg.matches("<polyline").count() >= 4);
    }

    #[test]
    fn reliability_svg_has_its_axes_every_series_and_the_diagonal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reliability.svg");
        let curves = vec![(
            "calibrated".to_string(),
            vec![(0.05, 0.04), (0.3, 0.33), (0.7, 0.65)],
        )];
        plot_reliability_curves(&curves, &path, "Reliability").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        for text in [
            "Reliability",
            "calibrated",
            "perfectly calibrated",
            "observed bad rate (per bin)",
        ] {
            assert!(texts.contains(&text), "missing {text:?} in {texts:?}");
        }
        assert!(svg.matches("<circle").count() >= 3);
    }

    #[test]
    fn roc_with_no_curves_still_draws_the_diagonal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        plot_roc(&[], &path, "nothing yet").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let texts = texts(&svg);
        assert!(texts.contains(&"nothing yet") && texts.contains(&"chance"));
    }

    #[test]
    fn padded_range_pads_clamps_and_handles_degenerate_input() {
        let r = padded_range([0.2, 0.4].iter(), (None, None));
        assert!((r.start - 0.19).abs() < 1e-12 && (r.end - 0.41).abs() < 1e-12);
        let r = padded_range([0.0, 1.0].iter(), (Some(0.0), Some(1.0)));
        assert_eq!(r, 0.0..1.0);
        let r = padded_range([2.0, 2.0].iter(), (None, None));
        assert!((r.start - 1.9).abs() < 1e-12 && (r.end - 2.1).abs() < 1e-12);
        assert_eq!(padded_range([f64::NAN].iter(), (None, None)), 0.0..1.0);
    }
}

//! The reports' bar chart: inline SVG with its geometry worked out here, rendered by
//! `templates/reports_chart.html` (no script, no CDN).

use std::fmt;

/// A length in SVG user units, printed with one decimal.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Px(pub f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

/// One bucket's values for a two-series bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartBucket {
    /// Names the bucket in tooltips: `2026-03-29 03:00 CEST`.
    pub label: String,
    /// Shown under the axis when present (thinned out when there are many).
    pub axis_label: Option<String>,
    pub values: [i64; 2],
}

/// A data series: its CSS class (colour) and its name in the legend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    pub class: &'static str,
    pub name: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub class: &'static str,
    pub x: Px,
    pub y: Px,
    pub width: Px,
    pub height: Px,
    pub tooltip: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub x: Px,
    pub y: Px,
    pub label: String,
}

/// A grouped bar chart with its geometry worked out, so the template only places elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Prefix of the element ids that tie the `<svg>` to its title and description.
    pub id: String,
    pub title: String,
    pub description: String,
    pub width: u32,
    pub height: u32,
    pub plot_left: Px,
    pub plot_right: Px,
    pub baseline: Px,
    pub bars: Vec<Bar>,
    pub y_ticks: Vec<Tick>,
    pub x_labels: Vec<Tick>,
    pub series: [Series; 2],
}

const CHART_WIDTH: u32 = 800;
const CHART_HEIGHT: u32 = 260;
const MARGIN_LEFT: f64 = 48.0;
const MARGIN_RIGHT: f64 = 8.0;
const MARGIN_TOP: f64 = 12.0;
const MARGIN_BOTTOM: f64 = 28.0;
/// More labels than this under the axis overlap on a phone.
const MAX_AXIS_LABELS: usize = 16;
/// Grid lines above the baseline.
const Y_TICKS: i64 = 4;

/// The smallest "round" step (1, 2, 2.5 or 5 times a power of ten, never a fraction) such that `Y_TICKS` steps
/// reach `max`: axis labels then read 0, 250, 500, 750, 1000 rather than 0, 233, 466.
fn nice_step(max: i64) -> i64 {
    let raw = (max.max(1) + Y_TICKS - 1) / Y_TICKS;
    let mut magnitude = 1;
    while magnitude * 10 <= raw {
        magnitude *= 10;
    }
    let mut candidates = vec![magnitude, 2 * magnitude];
    if magnitude >= 10 {
        candidates.push(5 * magnitude / 2);
    }
    candidates.extend([5 * magnitude, 10 * magnitude]);
    candidates.into_iter().find(|c| *c >= raw).unwrap_or(10 * magnitude)
}

impl Chart {
    /// Two bars per bucket, side by side, scaled to the largest value.
    pub fn bars(
        id: impl Into<String>,
        title: String,
        description: String,
        series: [Series; 2],
        buckets: &[ChartBucket],
    ) -> Chart {
        let (width, height) = (f64::from(CHART_WIDTH), f64::from(CHART_HEIGHT));
        let plot_width = width - MARGIN_LEFT - MARGIN_RIGHT;
        let plot_height = height - MARGIN_TOP - MARGIN_BOTTOM;
        let baseline = MARGIN_TOP + plot_height;
        let max = buckets.iter().flat_map(|b| b.values).max().unwrap_or(0);
        let step = nice_step(max);
        let top = (step * Y_TICKS) as f64;
        let slot = plot_width / buckets.len().max(1) as f64;
        let bar_width = slot * 0.4;

        let mut bars = Vec::with_capacity(buckets.len() * 2);
        for (i, bucket) in buckets.iter().enumerate() {
            let left = MARGIN_LEFT + i as f64 * slot + slot * 0.1;
            for (k, (value, series)) in bucket.values.iter().zip(series).enumerate() {
                let bar_height = *value as f64 / top * plot_height;
                bars.push(Bar {
                    class: series.class,
                    x: Px(left + k as f64 * bar_width),
                    y: Px(baseline - bar_height),
                    width: Px(bar_width),
                    height: Px(bar_height),
                    tooltip: format!("{}: {value} {}", bucket.label, series.name),
                });
            }
        }
        let y_ticks = (0..=Y_TICKS)
            .map(|k| Tick {
                x: Px(MARGIN_LEFT - 6.0),
                y: Px(baseline - k as f64 / Y_TICKS as f64 * plot_height),
                label: (k * step).to_string(),
            })
            .collect();
        let labelled: Vec<(usize, &str)> = buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.axis_label.as_deref().map(|l| (i, l)))
            .collect();
        let every = labelled.len().div_ceil(MAX_AXIS_LABELS).max(1);
        let x_labels = labelled
            .into_iter()
            .step_by(every)
            .map(|(i, label)| Tick {
                x: Px(MARGIN_LEFT + (i as f64 + 0.5) * slot),
                y: Px(baseline + 18.0),
                label: label.to_owned(),
            })
            .collect();
        Chart {
            id: id.into(),
            title,
            description,
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            plot_left: Px(MARGIN_LEFT),
            plot_right: Px(width - MARGIN_RIGHT),
            baseline: Px(baseline),
            bars,
            y_ticks,
            x_labels,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;

    fn bucket(values: [i64; 2], axis_label: Option<&str>) -> ChartBucket {
        ChartBucket {
            label: "2026-03-01".into(),
            axis_label: axis_label.map(str::to_owned),
            values,
        }
    }

    const SERIES: [Series; 2] = [
        Series {
            class: "bar-a",
            name: "in",
        },
        Series {
            class: "bar-b",
            name: "out",
        },
    ];

    #[test]
    fn axis_steps_are_round_numbers_that_reach_the_largest_value() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(4), 1);
        assert_eq!(nice_step(7), 2);
        assert_eq!(nice_step(17), 5);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(1000), 250);
        assert_eq!(nice_step(1001), 500);
    }

    #[test]
    fn bars_are_as_tall_as_their_share_of_the_axis_and_stand_on_the_baseline() {
        let chart = Chart::bars(
            "c",
            "t".into(),
            "d".into(),
            SERIES,
            &[bucket([8, 2], Some("a")), bucket([0, 4], Some("b"))],
        );
        let plot_height = f64::from(CHART_HEIGHT) - MARGIN_TOP - MARGIN_BOTTOM;
        assert_eq!(chart.bars.len(), 4);
        // The axis reaches 8 (four steps of 2): the 8 fills the plot, the 2 a quarter, the 0 nothing.
        assert_eq!(chart.bars[0].height, Px(plot_height));
        assert_eq!(chart.bars[1].height, Px(plot_height / 4.0));
        assert_eq!(chart.bars[2].height, Px(0.0));
        for bar in &chart.bars {
            assert!((bar.y.0 + bar.height.0 - chart.baseline.0).abs() < 1e-9);
        }
        assert_eq!(chart.bars[1].class, "bar-b");
        assert_eq!(chart.bars[1].tooltip, "2026-03-01: 2 out");
        let ticks: Vec<_> = chart.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(ticks, ["0", "2", "4", "6", "8"]);
        assert!(chart.bars[2].x > chart.bars[1].x, "buckets run left to right");
    }

    #[test]
    fn a_chart_of_nothing_still_has_an_axis_and_flat_bars() {
        let chart = Chart::bars("c", "t".into(), "d".into(), SERIES, &[bucket([0, 0], None)]);
        assert!(chart.bars.iter().all(|b| b.height == Px(0.0)));
        assert_eq!(chart.y_ticks.last().unwrap().label, "4");
        assert!(chart.x_labels.is_empty());
    }

    #[test]
    fn many_axis_labels_are_thinned_so_they_do_not_overlap() {
        let buckets: Vec<_> = (0..48).map(|i| bucket([i, 0], Some("x"))).collect();
        let chart = Chart::bars("c", "t".into(), "d".into(), SERIES, &buckets);
        assert_eq!(chart.x_labels.len(), 16);
    }

    #[test]
    fn a_chart_renders_as_accessible_svg_with_its_texts_escaped() {
        #[derive(Template)]
        #[template(path = "reports_chart.html")]
        struct Only {
            chart: Chart,
        }
        let chart = Chart::bars(
            "c",
            "zone <b>".into(),
            "d".into(),
            SERIES,
            &[bucket([1, 2], Some("01"))],
        );
        let svg = Only { chart }.render().unwrap();
        assert!(svg.contains("<svg viewBox=\"0 0 800 260\" role=\"img\""), "{svg}");
        assert!(svg.contains("<title id=\"c-title\">zone &#60;b&#62;</title>"), "{svg}");
        assert!(svg.contains("<rect class=\"bar-a\""), "{svg}");
    }
}

//! The report's PNG charts: cumulative P&L and exposure over the period, and each target's
//! realized P&L, drawn with plotters on a bitmap with the font shipped beside the program.

use super::{Report, TargetLine, date, title};

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the report chart: {0}")]
pub struct ChartError(String);

/// The chart's font, shipped with the program (DejaVu Sans; its license is beside it).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() -> Result<(), ChartError> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(ChartError("the shipped font did not load".into())) }
}

/// Draws the report as a PNG a person reads on a phone without the caption: a title, cumulative
/// realized P&L (blue) and exposure (red) over the period with labelled axes and a legend, and
/// each target's realized P&L as bars (green for a gain, red for a loss).
///
/// # Errors
/// When drawing or encoding fails.
pub fn chart_png(r: &Report) -> Result<Vec<u8>, ChartError> {
    let title = format!(
        "{} · {} → {} UTC · realized {} USDC",
        title(r.period),
        date(r.from_ms),
        date(r.to_ms),
        r.realized_usdc
    );
    png(700, &title, |root| {
        let (top, bottom) = root.split_vertically(700 * 62 / 100);
        draw_lines(&r.series, r.from_ms, r.to_ms, &top)?;
        draw_targets(r, &bottom)
    })
}

/// Cumulative realized P&L and exposure over `from_ms..to_ms` alone, under `title` (`vet`'s chart).
///
/// # Errors
/// When drawing or encoding fails.
pub fn lines_png(title: &str, series: &[(i64, i64, i64)], from_ms: i64, to_ms: i64) -> Result<Vec<u8>, ChartError> {
    png(520, title, |root| draw_lines(series, from_ms, to_ms, root))
}

/// A 1000-pixel-wide white PNG, `height` tall, titled, with `draw` filling the rest.
fn png(height: u32, title: &str, draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<Vec<u8>, ChartError> {
    use plotters::prelude::*;
    const W: u32 = 1000;
    register_font()?;
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    let mut rgb = vec![0u8; (W * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root.titled(title, ("sans-serif", 28)).map_err(|e| err(&e))?;
        draw(&root).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(W, height, rgb).ok_or_else(|| ChartError("bad buffer size".into()))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageOutputFormat::Png).map_err(|e| err(&e))?;
    Ok(out.into_inner())
}

type Area<'a> = plotters::drawing::DrawingArea<plotters::backend::BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// P&L and exposure over the period. Drawing coordinates only (hours, USDC as floats): no money is
/// computed here.
fn draw_lines(series: &[(i64, i64, i64)], from_ms: i64, to_ms: i64, area: &Area<'_>) -> DrawResult {
    use plotters::prelude::*;
    let hours = |ms: i64| (ms - from_ms) as f64 / 3_600_000.0;
    let usdc = |micros: i64| micros as f64 / 1e6;
    let x1 = hours(to_ms).max(0.001);
    let lo = usdc(series.iter().map(|p| p.1.min(p.2)).min().unwrap_or(0).min(0));
    let hi = usdc(series.iter().map(|p| p.1.max(p.2)).max().unwrap_or(0).max(1_000_000)) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x1, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc(if x1 > 48.0 { "days into the period" } else { "hours into the period" })
        .y_desc("USDC")
        .x_label_formatter(&|h| {
            if x1 > 48.0 {
                format!("{:.0}", h / 24.0)
            } else if x1 < 6.0 {
                format!("{h:.1}")
            } else {
                format!("{h:.0}")
            }
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()?;
    chart.draw_series(LineSeries::new([(0.0, 0.0), (x1, 0.0)], BLACK.stroke_width(1)))?;
    let step = |f: fn(&(i64, i64, i64)) -> i64| {
        let mut pts = Vec::with_capacity(series.len() * 2 + 1);
        let mut last: Option<f64> = None;
        for p in series {
            if let Some(v) = last {
                pts.push((hours(p.0), v));
            }
            pts.push((hours(p.0), usdc(f(p))));
            last = Some(usdc(f(p)));
        }
        if let Some(v) = last {
            pts.push((x1, v));
        }
        pts
    };
    chart
        .draw_series(LineSeries::new(step(|p| p.2), RED.stroke_width(2)))?
        .label("exposure (cost of open positions)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], RED.stroke_width(3)));
    chart
        .draw_series(LineSeries::new(step(|p| p.1), BLUE.stroke_width(3)))?
        .label("realized P&L, cumulative")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 24, y)], BLUE.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Each target's realized P&L in the period, as bars.
fn draw_targets(r: &Report, area: &Area<'_>) -> DrawResult {
    use plotters::prelude::*;
    let shown: Vec<&TargetLine> = r.targets.iter().take(12).collect();
    let usdc = |micros: i64| micros as f64 / 1e6;
    let lo = shown.iter().map(|t| usdc(t.realized)).fold(0.0_f64, f64::min);
    let hi = shown.iter().map(|t| usdc(t.realized)).fold(1.0_f64, f64::max);
    let pad = (hi - lo) * 0.15;
    let n = shown.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .caption("realized P&L per target (USDC)", ("sans-serif", 20))
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n).into_segmented(), (lo - pad)..(hi + pad))?;
    let names: Vec<String> = shown.iter().map(|t| t.target.chars().take(14).collect()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    chart.draw_series(shown.iter().enumerate().map(|(i, t)| {
        let v = usdc(t.realized);
        let color = if v >= 0.0 { GREEN.mix(0.8) } else { RED.mix(0.8) };
        let mut bar = Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)], color.filled());
        bar.set_margin(0, 0, 20, 20);
        bar
    }))?;
    if shown.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no copies in this period",
            (SegmentValue::Exact(0), hi / 2.0),
            ("sans-serif", 18),
        )))?;
    }
    Ok(())
}

//! Small builders for metric families the registry does not hold.

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// Label pairs; callers pass them sorted by name, as the encoder writes them in order.
pub fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
    pairs
        .iter()
        .map(|(n, v)| {
            let mut l = LabelPair::default();
            l.set_name((*n).to_string());
            l.set_value((*v).to_string());
            l
        })
        .collect()
}

pub fn gauge(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_gauge(g);
    m.set_label(labels(pairs));
    m
}

pub fn counter(pairs: &[(&str, &str)], v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(labels(pairs));
    m.set_counter(c);
    m
}

pub fn family(name: &str, help: &str, ty: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(ty);
    f.set_metric(metrics);
    f
}

/// A family of one unlabelled gauge.
pub fn one_gauge(name: &str, help: &str, v: f64) -> MetricFamily {
    family(name, help, MetricType::GAUGE, vec![gauge(&[], v)])
}

/// A family of one unlabelled counter.
pub fn one_counter(name: &str, help: &str, v: f64) -> MetricFamily {
    family(name, help, MetricType::COUNTER, vec![counter(&[], v)])
}

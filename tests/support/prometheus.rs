//! A parser for the Prometheus text exposition format (what `GET /metrics`
//! answers), strict enough to fail a test on a malformed line.
//!
//! Include it with `#[path = "support/prometheus.rs"] mod prometheus;`.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A whole scrape, with the `# TYPE` of each metric family.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the text; panics (failing the test) on a line it cannot read.
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let name = words.next().expect("# TYPE names a metric");
                    let kind = words.next().expect("# TYPE gives a type");
                    scrape.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            scrape.samples.push(parse_sample(line));
        }
        scrape
    }

    /// The value of the sample `name` whose labels are exactly `labels`,
    /// `None` if there is none.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut found = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want);
        let sample = found.next()?;
        assert!(found.next().is_none(), "two samples {name}{want:?}");
        Some(sample.value)
    }

    /// [`Scrape::get`], with an absent series read as 0 (a counter that
    /// has not been incremented yet is not exported).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The `# TYPE` of a metric family.
    pub fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => panic!("no value on line {line:?}"),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name on line {line:?}"
    );
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = chars.peek().map(|&(i, _)| i).expect("unterminated labels");
            if body[start..].starts_with('}') {
                end = start + 1;
                break;
            }
            let eq = body[start..].find('=').expect("label without =") + start;
            let key = body[start..eq].trim().to_string();
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            assert_eq!(
                chars.next().map(|(_, c)| c),
                Some('"'),
                "unquoted label value: {line:?}"
            );
            let mut value = String::new();
            loop {
                match chars.next().expect("unterminated label value").1 {
                    '\\' => match chars.next().expect("dangling escape").1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            match chars.next().expect("unterminated labels") {
                (_, ',') => continue,
                (i, '}') => {
                    end = i + 1;
                    break;
                }
                (_, c) => panic!("unexpected {c:?} in labels of {line:?}"),
            }
        }
        &body[end..]
    } else {
        rest
    };
    let mut words = rest.split_whitespace();
    let value = words
        .next()
        .unwrap_or_else(|| panic!("no value on line {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} on line {line:?}")),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

#[test]
fn parses_the_exposition_format() {
    let scrape = Scrape::parse(
        "# HELP a_total help text\n# TYPE a_total counter\na_total{reason=\"x\",store=\"m\\\"o\"} 3\nb 1.5\nh_bucket{le=\"+Inf\"} 2\n",
    );
    assert_eq!(scrape.kind("a_total"), Some("counter"));
    assert_eq!(
        scrape.get("a_total", &[("reason", "x"), ("store", "m\"o")]),
        Some(3.0)
    );
    assert_eq!(scrape.get("a_total", &[("reason", "x")]), None);
    assert_eq!(scrape.value("b", &[]), 1.5);
    assert_eq!(scrape.value("h_bucket", &[("le", "+Inf")]), 2.0);
}

//! The trained text model from `scan.models`: logistic regression over hashed word and byte
//! n-grams of a document's raw text (markup kept) followed, for HTML, by its visible text;
//! trained on the SpamAssassin public corpus.
//!
//! `features` is the tokenizer shared by training and scoring, `train` the seeded SGD trainer,
//! `format` the versioned model file, `corpus` reads training directories, `guard` decides
//! when the model abstains (untrained media types, binary junk, too little text) and caps
//! what markup alone may add.
//!
//! # Score mapping
//! A document's margin `m = w·x + b` becomes points linear in `m`, anchored at two margins
//! stored in the model: `zero_margin` (where the calibrated p(spam) is 1/2, i.e. "uncertain")
//! maps to 0 points and `spam_margin` (the operating point chosen on out-of-fold margins at a
//! false-positive rate under 0.5%) maps to exactly `scan.spam_threshold`. With
//! `x = (m - zero_margin) / (spam_margin - zero_margin)`:
//!
//! ```text
//! points = S·min(x, 1.6)          for x >= 0   (S = spam_threshold; at most 1.6·S)
//! points = 0.4·S·max(x, -1)       for x <  0   (confident ham: down to -0.4·S)
//! score  = model_weight · points
//! ```
//! So at `model_weight = 1` the model alone crosses the spam threshold exactly at its
//! operating point, uncertain texts add about nothing, and confident ham subtracts up to 2
//! points (at the default threshold), which offsets stray rule hits.
//!
//! For HTML the positive points are then capped at the visible text's own points (at least
//! 0) plus half the spam threshold (see [`guard`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::ScanConfig;
use crate::scan::{Classifier, Document, Finding, LoadError, Loaded, ScanError};

pub mod corpus;
pub mod features;
pub mod format;
pub mod guard;
pub mod train;

use features::{vectorize, FeatureConfig};

/// The model file's name inside `scan.models`.
pub const MODEL_FILE: &str = "text.model";

/// The classifier's name, in findings and `Classifier::name`.
pub const NAME: &str = "model";

/// Everything about a model except its weights; stored as JSON in the model file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelHeader {
    /// The rule name findings carry.
    pub name: String,
    /// How texts become features.
    pub features: FeatureConfig,
    /// The intercept.
    #[serde(with = "exact")]
    pub bias: f32,
    /// Platt calibration slope: p(spam) = sigmoid(platt_a · m + platt_b).
    #[serde(with = "exact")]
    pub platt_a: f64,
    /// Platt calibration intercept.
    #[serde(with = "exact")]
    pub platt_b: f64,
    /// The margin that maps to `scan.spam_threshold` points (the operating point).
    #[serde(with = "exact")]
    pub spam_margin: f64,
    /// The margin that maps to 0 points (uncertain).
    #[serde(with = "exact")]
    pub zero_margin: f64,
    /// Spam documents the model was trained on.
    pub trained_spam: usize,
    /// Ham documents the model was trained on.
    pub trained_ham: usize,
    /// Out-of-fold confusion counts at the operating point.
    pub cv: train::Metrics,
}

/// Floats as decimal strings: serde_json's float parser is not always correctly rounded, and a
/// model must read back bit for bit what was trained.
mod exact {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(x: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(x)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A model's header and weights, as trained or as read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelData {
    /// Everything but the weights.
    pub header: ModelHeader,
    /// One weight per hash bucket (`2^features.bits`).
    pub weights: Vec<f32>,
}

impl ModelData {
    /// The margin `w·x + b` of a raw text, rendering it when it sniffs as HTML and the model
    /// reads visible text (as training does).
    pub fn margin(&self, text: &str) -> f64 {
        if !self.header.features.visible_text {
            return self.margin_with(text, None);
        }
        let visible = features::visible_of(text);
        self.margin_with(text, visible.as_deref())
    }

    /// The margin of a raw text whose visible text (for HTML) is already known.
    pub fn margin_with(&self, raw: &str, visible: Option<&str>) -> f64 {
        let text = features::model_text(raw, visible, &self.header.features);
        let x = vectorize(&text, &self.header.features);
        let dot: f64 = x
            .iter()
            .map(|&(i, v)| {
                f64::from(self.weights.get(i as usize).copied().unwrap_or(0.0)) * f64::from(v)
            })
            .sum();
        dot + f64::from(self.header.bias)
    }

    /// The calibrated probability that a margin belongs to spam.
    pub fn probability(&self, margin: f64) -> f64 {
        1.0 / (1.0 + (-(self.header.platt_a * margin + self.header.platt_b)).exp())
    }

    /// SpamAssassin-like points for a margin (see the module docs), before `model_weight`.
    pub fn points(&self, margin: f64, spam_threshold: f64) -> f64 {
        let h = &self.header;
        let x = (margin - h.zero_margin) / (h.spam_margin - h.zero_margin);
        if x >= 0.0 {
            spam_threshold * x.min(1.6)
        } else {
            0.4 * spam_threshold * x.max(-1.0)
        }
    }
}

/// The loaded model plus the settings that turn its output into a score.
struct Active {
    model: ModelData,
    fingerprint: String,
    spam_threshold: f64,
    weight: f64,
}

/// The text model classifier; with no model file it is a no-op that reports nothing.
#[derive(Default)]
pub struct TextModel {
    active: Option<Active>,
}

impl TextModel {
    /// Loads `text.model` from the configured directory; a missing directory or file loads a
    /// no-op model and a warning, a corrupt file is an error.
    pub fn load(cfg: &ScanConfig) -> Loaded<TextModel> {
        let path = cfg.models.join(MODEL_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let warning = load_error(path, "no text model found; the model scores nothing");
                return Ok((TextModel::default(), vec![warning]));
            }
            Err(e) => return Err(vec![load_error(path, &format!("cannot read: {e}"))]),
        };
        let model = format::decode(&bytes).map_err(|e| vec![load_error(path, &e.to_string())])?;
        Ok((
            TextModel::from_data(model, &bytes, cfg.spam_threshold, cfg.model_weight),
            Vec::new(),
        ))
    }

    /// Wraps an in-memory model (`file_bytes` are what its fingerprint is taken of).
    pub fn from_data(
        model: ModelData,
        file_bytes: &[u8],
        spam_threshold: f64,
        weight: f64,
    ) -> Self {
        let mut fingerprint = crate::scan::sha256_hex(file_bytes);
        fingerprint.truncate(16);
        // The weight scales every score the model gives, so it is part of the ruleset: a
        // verdict memoised under one weight must not be served under another (the memo
        // outlives a restart). The default weight adds nothing, so its version stays as it was.
        if weight != 1.0 {
            fingerprint.push_str(&format!(" weight={weight}"));
        }
        TextModel {
            active: Some(Active {
                model,
                fingerprint,
                spam_threshold,
                weight,
            }),
        }
    }

    /// The loaded model, if any.
    pub fn model(&self) -> Option<&ModelData> {
        self.active.as_ref().map(|a| &a.model)
    }
}

fn load_error(file: PathBuf, message: &str) -> LoadError {
    LoadError {
        file,
        line: 0,
        message: message.to_string(),
    }
}

impl Classifier for TextModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn classify(&self, doc: &Document) -> Result<Vec<Finding>, ScanError> {
        let Some(a) = &self.active else {
            return Ok(Vec::new());
        };
        let model = &a.model;
        if guard::abstain(doc, model.header.features.max_bytes).is_some() {
            return Ok(Vec::new());
        }
        // The pipeline rendered HTML already: its visible text is what differs from the raw.
        let rendered = (doc.text != doc.raw_text).then_some(doc.text.as_str());
        let margin = model.margin_with(&doc.raw_text, rendered);
        let p = model.probability(margin);
        let mut points = model.points(margin, a.spam_threshold);
        let mut detail = format!("p(spam)={p:.3}");
        // Markup alone may not make a page spam: the visible text must earn most of it.
        let allowance = guard::MARKUP_ALLOWANCE * a.spam_threshold;
        if points > allowance && rendered.is_some() {
            let visible = model.margin_with(&doc.text, None);
            let cap = model.points(visible, a.spam_threshold).max(0.0) + allowance;
            if points > cap {
                points = cap;
                let pv = model.probability(visible);
                detail.push_str(&format!("; visible text p(spam)={pv:.3}, capped"));
            }
        }
        let score = a.weight * points;
        Ok(vec![Finding {
            classifier: NAME.to_string(),
            rule: model.header.name.clone(),
            // Three decimals, rounded down so that rounding never lifts a score over a threshold.
            score: (score * 1000.0).floor() / 1000.0,
            detail,
        }])
    }

    fn fingerprint(&self) -> String {
        self.active
            .as_ref()
            .map_or_else(String::new, |a| a.fingerprint.clone())
    }
}

#[cfg(test)]
mod tests;

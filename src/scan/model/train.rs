//! Training: logistic regression by seeded SGD over hashed features, k-fold out-of-fold
//! margins to pick the operating point and fit a Platt calibration, then one final fit on
//! everything.
//!
//! Deterministic: the only randomness is a SplitMix64 stream seeded from [`TrainOptions::seed`],
//! and training is single-threaded, so the same corpus and options give the same model bytes.

use serde::{Deserialize, Serialize};

use super::features::{model_text, vectorize, visible_of, FeatureConfig, SparseVec};
use super::{ModelData, ModelHeader};

/// Knobs of a training run; the defaults are what the shipped model was trained with.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// How texts become features (stored in the model).
    pub features: FeatureConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// L2 regularisation strength.
    pub lambda: f64,
    /// Loss weight of a ham example relative to a spam example (above 1 favours low FPR).
    pub ham_weight: f64,
    /// Seed of the shuffles and the fold assignment.
    pub seed: u64,
    /// Folds for the out-of-fold margins (operating point and calibration).
    pub folds: usize,
    /// Largest false-positive rate the operating point may have on out-of-fold margins.
    pub target_fpr: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            features: FeatureConfig::default(),
            epochs: 12,
            lambda: 1e-5,
            ham_weight: 1.0,
            seed: 0x5eed_5eed,
            folds: 5,
            target_fpr: 0.0045,
        }
    }
}

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// One class has no documents.
    #[error("no {0} documents to train on")]
    EmptyClass(&'static str),
    /// SGD produced non-finite weights (should not happen with normalised inputs).
    #[error("training diverged (non-finite weights)")]
    Diverged,
    /// The options are unusable.
    #[error("bad training options: {0}")]
    Options(String),
}

/// Confusion counts and the figures derived from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Spam called spam.
    pub tp: usize,
    /// Ham called spam.
    pub fp: usize,
    /// Ham called ham.
    pub tn: usize,
    /// Spam called ham.
    pub fn_: usize,
}

impl Metrics {
    /// Counts for predictions `margin >= threshold` against labels (`true` = spam).
    pub fn at(scored: &[(f64, bool)], threshold: f64) -> Metrics {
        let mut m = Metrics::default();
        for &(margin, spam) in scored {
            match (margin >= threshold, spam) {
                (true, true) => m.tp += 1,
                (true, false) => m.fp += 1,
                (false, false) => m.tn += 1,
                (false, true) => m.fn_ += 1,
            }
        }
        m
    }
    /// tp / (tp + fp).
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// tp / (tp + fn).
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }
    /// fp / (fp + tn).
    pub fn fpr(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// SplitMix64: a tiny, well-known PRNG, enough for shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// A linear model over hashed features.
#[derive(Clone, Debug)]
pub struct Linear {
    /// One weight per hash bucket.
    pub weights: Vec<f32>,
    /// The intercept.
    pub bias: f32,
}

impl Linear {
    /// w·x + b.
    pub fn margin(&self, x: &SparseVec) -> f64 {
        let dot: f64 = x
            .iter()
            .map(|&(i, v)| {
                f64::from(self.weights.get(i as usize).copied().unwrap_or(0.0)) * f64::from(v)
            })
            .sum();
        dot + f64::from(self.bias)
    }
}

/// Logistic regression by SGD with the learning rate `1 / (lambda (t0 + t))` (Bottou) and the
/// weight vector kept as `scale * v` so that L2 decay costs O(1) per step.
fn fit(data: &[(SparseVec, bool)], rows: &[usize], opts: &TrainOptions, rng: &mut Rng) -> Linear {
    let dim = 1usize << opts.features.bits;
    let mut v = vec![0f64; dim];
    let mut scale = 1.0f64;
    let mut bias = 0.0f64;
    let lambda = opts.lambda;
    // t0 so that the first step has rate ~0.5 (inputs are unit-ish vectors).
    let t0 = 1.0 / (lambda * 0.5);
    let mut order = rows.to_vec();
    let mut t = 0f64;
    for _ in 0..opts.epochs {
        rng.shuffle(&mut order);
        for &r in &order {
            let (x, spam) = &data[r];
            let y = if *spam { 1.0 } else { -1.0 };
            let cw = if *spam { 1.0 } else { opts.ham_weight };
            let eta = 1.0 / (lambda * (t0 + t));
            t += 1.0;
            let dot: f64 = x.iter().map(|&(i, xv)| v[i as usize] * f64::from(xv)).sum();
            let m = scale * dot + bias;
            // d/dm of log(1 + e^{-y m}) is -y / (1 + e^{y m}).
            let g = cw * y / (1.0 + (y * m).exp());
            scale *= 1.0 - eta * lambda;
            if g != 0.0 {
                let step = eta * g / scale;
                for &(i, xv) in x {
                    v[i as usize] += step * f64::from(xv);
                }
                bias += eta * g * 0.1;
            }
            if scale < 1e-6 {
                for w in v.iter_mut() {
                    *w *= scale;
                }
                scale = 1.0;
            }
        }
    }
    Linear {
        weights: v.iter().map(|w| (w * scale) as f32).collect(),
        bias: bias as f32,
    }
}

/// Platt scaling: `a`, `b` such that `sigmoid(a m + b)` fits the labels (Newton's method with
/// Platt's smoothed targets). Falls back to the identity when the fit does not converge.
pub fn platt(scored: &[(f64, bool)]) -> (f64, f64) {
    let pos = scored.iter().filter(|s| s.1).count() as f64;
    let neg = scored.len() as f64 - pos;
    let hi = (pos + 1.0) / (pos + 2.0);
    let lo = 1.0 / (neg + 2.0);
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for &(m, spam) in scored {
            let target = if spam { hi } else { lo };
            let p = 1.0 / (1.0 + (-(a * m + b)).exp());
            let d = p - target;
            let w = p * (1.0 - p);
            ga += d * m;
            gb += d;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a -= da;
        b -= db;
        if da.abs() < 1e-9 && db.abs() < 1e-9 {
            break;
        }
    }
    if a.is_finite() && b.is_finite() && a > 0.0 {
        (a, b)
    } else {
        (1.0, 0.0)
    }
}

/// The threshold with the best F1 among those whose FPR is at most `max_fpr`; it sits halfway
/// between the lowest margin called spam and the next margin below it.
pub fn operating_point(scored: &[(f64, bool)], max_fpr: f64) -> (f64, Metrics) {
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let hams = sorted.iter().filter(|s| !s.1).count();
    let spams = sorted.len() - hams;
    let mut best: Option<(f64, usize)> = None; // (f1, index of the lowest margin called spam)
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, &(m, spam)) in sorted.iter().enumerate() {
        if spam {
            tp += 1;
        } else {
            fp += 1;
        }
        // Only cut between distinct margins.
        if sorted.get(k + 1).is_some_and(|n| n.0 == m) {
            continue;
        }
        if ratio(fp, hams) > max_fpr {
            break;
        }
        let f1 = ratio(2 * tp, tp + fp + spams);
        if best.is_none_or(|(bf, _)| f1 > bf) {
            best = Some((f1, k));
        }
    }
    let threshold = match best {
        Some((_, k)) => {
            let m = sorted[k].0;
            match sorted.get(k + 1) {
                Some(next) => (m + next.0) / 2.0,
                None => m - 1.0,
            }
        }
        // Not even the top margin is allowed: call nothing spam.
        None => sorted.first().map_or(1.0, |s| s.0 + 1.0),
    };
    (threshold, Metrics::at(scored, threshold))
}

/// What a training run produced besides the model.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// Spam documents trained on.
    pub spam: usize,
    /// Ham documents trained on.
    pub ham: usize,
    /// Out-of-fold figures at the chosen operating point.
    pub cv: Metrics,
}

/// Vectorises `(raw text, is_spam)` examples (HTML is rendered when `cfg.visible_text`).
pub fn vectorize_all(texts: &[(String, bool)], cfg: &FeatureConfig) -> Vec<(SparseVec, bool)> {
    texts
        .iter()
        .map(|(t, spam)| {
            let visible = if cfg.visible_text {
                visible_of(t)
            } else {
                None
            };
            let text = model_text(t, visible.as_deref(), cfg);
            (vectorize(&text, cfg), *spam)
        })
        .collect()
}

/// Trains a model on labelled texts (`true` = spam).
pub fn train(
    texts: &[(String, bool)],
    opts: &TrainOptions,
) -> Result<(ModelData, TrainReport), TrainError> {
    check(opts)?;
    let spam = texts.iter().filter(|t| t.1).count();
    let ham = texts.len() - spam;
    if spam == 0 {
        return Err(TrainError::EmptyClass("spam"));
    }
    if ham == 0 {
        return Err(TrainError::EmptyClass("ham"));
    }
    let data = vectorize_all(texts, &opts.features);
    let mut rng = Rng(opts.seed);
    let mut idx: Vec<usize> = (0..data.len()).collect();
    rng.shuffle(&mut idx);
    let folds = opts.folds.clamp(2, data.len().max(2));
    let mut scored = Vec::with_capacity(data.len());
    for f in 0..folds {
        let train_rows: Vec<usize> = idx
            .iter()
            .enumerate()
            .filter(|(k, _)| k % folds != f)
            .map(|(_, &r)| r)
            .collect();
        let model = fit(&data, &train_rows, opts, &mut rng);
        for (k, &r) in idx.iter().enumerate() {
            if k % folds == f {
                scored.push((model.margin(&data[r].0), data[r].1));
            }
        }
    }
    let (threshold, cv) = operating_point(&scored, opts.target_fpr);
    let (a, b) = platt(&scored);
    // The "uncertain" point is where the calibrated probability is 1/2; it must lie below the
    // operating point for the score mapping to be monotone.
    let zero = (-b / a).min(threshold - 3f64.ln() / a);
    let zero = if zero.is_finite() && zero < threshold {
        zero
    } else {
        threshold - 1.0
    };
    let all: Vec<usize> = (0..data.len()).collect();
    let model = fit(&data, &all, opts, &mut rng);
    if !model.weights.iter().all(|w| w.is_finite()) || !threshold.is_finite() {
        return Err(TrainError::Diverged);
    }
    let header = ModelHeader {
        name: "TEXT_MODEL".to_string(),
        features: opts.features,
        bias: model.bias,
        platt_a: a,
        platt_b: b,
        spam_margin: threshold,
        zero_margin: zero,
        trained_spam: spam,
        trained_ham: ham,
        cv,
    };
    let report = TrainReport { spam, ham, cv };
    Ok((
        ModelData {
            header,
            weights: model.weights,
        },
        report,
    ))
}

fn check(opts: &TrainOptions) -> Result<(), TrainError> {
    let f = &opts.features;
    if !(8..=24).contains(&f.bits) {
        return Err(TrainError::Options(format!(
            "bits {} not in 8..=24",
            f.bits
        )));
    }
    if !(opts.lambda > 0.0 && opts.lambda.is_finite()) || opts.epochs == 0 {
        return Err(TrainError::Options(
            "lambda must be positive and epochs at least 1".to_string(),
        ));
    }
    Ok(())
}

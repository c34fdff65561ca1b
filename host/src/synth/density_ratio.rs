//! cDR-RS (Ding et al., "Efficient subsampling of realistic images from GANs conditional on a
//! class or a continuous variable"), as cGAN-KD uses it: a conditional density ratio
//! `r(x | y) = p_real(x | y) / p_fake(x | y)` estimated in the feature space of a pretrained
//! network, then rejection sampling with acceptance probability `r / max r`.
//!
//! - [`DensityRatioNet`]: the paper's `cDR_MLP`: `[embed(y), features]` → (Linear, GroupNorm(8),
//!   ReLU, Dropout(0.5)) per hidden width → Linear → ReLU (a ratio is non-negative).
//! - [`penalised_sp_loss`]: the Softplus (SP) divergence loss of `train_cdre.py` with the penalty
//!   that keeps the mean ratio on fakes near 1 (without it, `r ≡ 0` on fakes is a minimiser):
//!   `mean(σ(r_f)·r_f) − mean(softplus(r_f)) − mean(σ(r_r)) + λ·(mean(r_f) − 1)²`.
//! - [`accept`]: the rejection step, with `max r` seeded on a burn-in set and raised by every
//!   batch, as in the official sampler.
//!
//! The features are the trained teacher's penultimate embedding instead of the paper's
//! separately trained ResNet-34 (see the module docs of [`super`]). For a regression GAN the
//! condition is the value, embedded by a small MLP ([`LabelEmbed`]; the paper feeds CcGAN's
//! label embedding).

use burn::nn::{Dropout, DropoutConfig, GroupNorm, GroupNormConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softplus};

use super::gan::{Condition, Conditioning, LabelEmbed};
use super::DreConfig;

/// Width of a value condition's embedding in the ratio net.
const VALUE_EMBED: usize = 16;

/// One hidden layer of the ratio MLP.
#[derive(Module, Debug)]
pub struct DreLayer {
    linear: Linear,
    norm: GroupNorm,
    dropout: Dropout,
}

/// The conditional density-ratio MLP.
#[derive(Module, Debug)]
pub struct DensityRatioNet {
    embed: LabelEmbed,
    hidden: Vec<DreLayer>,
    out: Linear,
}

impl DensityRatioNet {
    /// A ratio net on `features`-dimensional inputs for the given conditioning (a class
    /// embedding has `classes` dimensions, as in the paper; a value's has 16).
    pub fn new(
        features: usize,
        conditioning: Conditioning,
        config: &DreConfig,
        device: &Device,
    ) -> Self {
        let embed_dim = match conditioning {
            Conditioning::Classes(classes) => classes,
            Conditioning::Value => VALUE_EMBED,
        };
        let mut hidden = Vec::with_capacity(config.hidden.len());
        let mut in_dim = features + embed_dim;
        for &w in &config.hidden {
            hidden.push(DreLayer {
                linear: LinearConfig::new(in_dim, w).init(device),
                norm: GroupNormConfig::new(8, w).init(device),
                dropout: DropoutConfig::new(0.5).init(),
            });
            in_dim = w;
        }
        Self {
            embed: LabelEmbed::new(conditioning, embed_dim, device),
            hidden,
            out: LinearConfig::new(in_dim, 1).init(device),
        }
    }

    /// Ratios `[batch]` (≥ 0) of features `[batch, features]` under conditions `[batch]`.
    pub fn forward(&self, features: Tensor<2>, condition: Condition) -> Tensor<1> {
        let e = self.embed.forward(condition);
        let mut h = Tensor::cat(vec![e, features], 1);
        for layer in &self.hidden {
            h = layer
                .dropout
                .forward(relu(layer.norm.forward(layer.linear.forward(h))));
        }
        relu(self.out.forward(h)).flatten(0, 1)
    }
}

/// The penalised Softplus loss of cDRE training (see the module docs) on the ratios of real
/// (`r_real`) and fake (`r_fake`) samples of the same labels.
pub fn penalised_sp_loss(r_real: Tensor<1>, r_fake: Tensor<1>, lambda: f64) -> Tensor<1> {
    let sp_div = (sigmoid(r_fake.clone()) * r_fake.clone()).mean()
        - softplus(r_fake.clone(), 1.0).mean()
        - sigmoid(r_real).mean();
    let penalty = (r_fake.mean() - 1.0).powf_scalar(2.0) * lambda;
    sp_div + penalty
}

/// The rejection step of cDR-RS: with `raise`, first raises `max_ratio` to the batch maximum
/// (the official sampler); then accepts sample `i` when `uniforms[i] ≤ ratios[i] / max_ratio`
/// (a ratio above a fixed `max_ratio` is always accepted). Returns the accepted indices.
pub fn accept(ratios: &[f32], uniforms: &[f32], max_ratio: &mut f32, raise: bool) -> Vec<usize> {
    if raise {
        let batch_max = ratios.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        *max_ratio = max_ratio.max(batch_max);
    }
    if *max_ratio <= 0.0 {
        // Every ratio is zero: the estimator gives no preference, so nothing is rejected.
        return (0..ratios.len()).collect();
    }
    ratios
        .iter()
        .zip(uniforms)
        .enumerate()
        .filter(|(_, (&r, &u))| u <= r / *max_ratio)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    #[test]
    fn penalised_sp_loss_by_hand() {
        // r_f = [0, 2], r_r = [1, 3], λ = 0.5:
        // mean(σ(r_f)·r_f) = (0 + 2σ(2))/2 = σ(2) = 0.880797
        // mean(softplus(r_f)) = (ln 2 + ln(1+e²))/2 = (0.693147 + 2.126928)/2 = 1.410038
        // mean(σ(r_r)) = (0.731059 + 0.952574)/2 = 0.841817
        // penalty = 0.5·(1 − 1)² = 0
        let l: f32 = penalised_sp_loss(t(&[1.0, 3.0]), t(&[0.0, 2.0]), 0.5).into_scalar();
        let want = 0.880797 - 1.410038 - 0.841817;
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
        // mean r_f = 3 → penalty 0.5·4 = 2 on top of the SP part.
        let l2: f32 = penalised_sp_loss(t(&[1.0]), t(&[3.0]), 0.5).into_scalar();
        let sp = 3.0 * 0.952574 - 3.048587 - 0.731059;
        assert!((l2 - (sp + 2.0)).abs() < 1e-5, "{l2}");
    }

    #[test]
    fn rejection_sampler_by_hand() {
        let mut m = 2.0;
        // Batch max 4 raises M to 4: p = [0.25, 1, 0.5, 0].
        let kept = accept(&[1.0, 4.0, 2.0, 0.0], &[0.2, 0.99, 0.6, 0.0], &mut m, true);
        assert_eq!(m, 4.0);
        assert_eq!(kept, vec![0, 1, 3]);
        // A lower batch keeps M.
        let kept = accept(&[2.0], &[0.5], &mut m, true);
        assert_eq!((m, kept), (4.0, vec![0]));
        let mut zero = 0.0;
        assert_eq!(
            accept(&[0.0, 0.0], &[0.5, 0.9], &mut zero, true),
            vec![0, 1]
        );
        // A fixed M (tempered acceptance): r = 3 > M = 2 is always kept, M stays.
        let mut fixed = 2.0;
        let kept = accept(&[3.0, 1.0, 1.0], &[0.99, 0.4, 0.6], &mut fixed, false);
        assert_eq!((fixed, kept), (2.0, vec![0, 1]));
    }

    #[test]
    fn ratio_net_shape_and_sign() {
        let d = Device::flex();
        let cfg = DreConfig {
            hidden: vec![16, 8],
            ..DreConfig::default()
        };
        let net = DensityRatioNet::new(12, Conditioning::Classes(10), &cfg, &d).valid();
        let x = Tensor::<2>::random([5, 12], burn::tensor::Distribution::Default, &d);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 3, 9], [5]), &d);
        let r: Vec<f32> = net
            .forward(x.clone(), Condition::Classes(y))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|&v| v >= 0.0));
        let net = DensityRatioNet::new(12, Conditioning::Value, &cfg, &d).valid();
        let v = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.2, 0.5, 0.7, 1.0], [5]), &d);
        let r: Vec<f32> = net
            .forward(x, Condition::Values(v))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|&v| v >= 0.0));
    }
}

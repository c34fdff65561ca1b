//! Online distillation (`[online]` in a run config): a cohort of students trained together in
//! one run, sharing every batch, with no pre-trained teacher. The run's model is peer 0; the
//! other peers are written out at the end as runs of their own (`<run>/peer1`, …), each
//! quantizable and exportable like any student.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::dml::{Dml, DmlConfig};
use super::lmcl::{Lmcl, LmclConfig};
use super::mcl::{Mcl, MclConfig};
use super::Method;
use crate::models::student::Student;

/// The online methods, as written in a config file (`[online] method = "dml"` plus its fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum OnlineConfig {
    /// Deep mutual learning, Zhang et al., CVPR 2018.
    Dml(DmlConfig),
    /// Mutual contrastive learning, Yang et al., AAAI 2022.
    Mcl(MclConfig),
    /// Layer-wise mutual contrastive learning, Yang et al., TPAMI 2023.
    Lmcl(LmclConfig),
}

impl OnlineConfig {
    /// The method's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Dml(_) => "dml",
            Self::Mcl(_) => "mcl",
            Self::Lmcl(_) => "lmcl",
        }
    }

    /// Networks in the cohort, the run's model included.
    pub fn peers(&self) -> usize {
        match self {
            Self::Dml(c) => c.peers,
            Self::Mcl(c) => c.peers,
            Self::Lmcl(c) => c.peers,
        }
    }

    /// Checks the settings; `Err((key, reason))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.peers() < 2 {
            return Err((
                "online.peers",
                format!("must be at least 2, got {}", self.peers()),
            ));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match self {
            Self::Dml(c) if !positive(c.temperature) => Err((
                "online.temperature",
                format!("must be > 0, got {}", c.temperature),
            )),
            Self::Mcl(c) if !(positive(c.tau) && positive(c.kd_temperature)) => Err((
                "online.tau",
                format!(
                    "tau and kd_temperature must be > 0, got {} and {}",
                    c.tau, c.kd_temperature
                ),
            )),
            Self::Mcl(c) if c.feat_dim == 0 => {
                Err(("online.feat_dim", "must be at least 1".into()))
            }
            Self::Lmcl(c) => c.validate(),
            _ => Ok(()),
        }
    }

    /// Builds the method with `peers - 1` fresh students from `build_peer` around a run model
    /// whose embedding is `embedding` wide.
    ///
    /// # Errors
    /// A peer cannot be built.
    pub fn init(
        &self,
        embedding: usize,
        build_peer: &mut dyn FnMut() -> Result<Student, String>,
        device: &Device,
    ) -> Result<Method, String> {
        let peers = (1..self.peers())
            .map(|_| build_peer())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self {
            Self::Dml(c) => Method::Dml(Dml::new(peers, c)),
            Self::Mcl(c) => Method::Mcl(Mcl::new(peers, embedding, c, device)),
            Self::Lmcl(c) => Method::Lmcl(Lmcl::new(peers, c, device)?),
        })
    }
}

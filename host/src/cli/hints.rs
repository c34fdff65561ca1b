//! `tinykd hints`: pick a teacher's hint layers by layer clustering (PURSUhInT) and draw the
//! layer-similarity heat map.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::distill::hints::{choose_hints, write_heatmap};
use crate::distill::TapShapes;
use crate::train::run::{device_of, eval_loader, load_datasets, load_model};

/// Arguments of `tinykd hints`.
#[derive(Debug, Args)]
pub struct HintsArgs {
    /// The teacher's run directory (from `tinykd train`).
    #[arg(value_name = "TEACHER")]
    pub teacher: PathBuf,
    /// Number of hint layers to pick.
    #[arg(short, default_value_t = 3)]
    pub k: usize,
    /// Training images to describe each layer on.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Heat-map PNG to write (default `<TEACHER>/hints.png`).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

impl HintsArgs {
    /// Runs `tinykd hints`.
    ///
    /// # Errors
    /// The run cannot be loaded, the data cannot be read, or the PNG cannot be written.
    pub fn run(self) -> Result<(), CliError> {
        if self.k == 0 || self.samples < 2 {
            return Err(CliError::Usage("need -k >= 1 and --samples >= 2".into()));
        }
        let config = crate::config::RunConfig::from_run_dir(&self.teacher)?;
        let device = device_of(&config)?;
        let (model, config) = load_model(&self.teacher, &device)?;
        let (train, _) = load_datasets(&config.data)?;
        let loader = eval_loader(&train, &config.data);
        let teacher = model.frozen();
        let choice = choose_hints(teacher.as_ref(), &loader, self.samples, self.k, &device);

        let probe = burn::tensor::Tensor::<4>::zeros(crate::train::probe_shape(&train, 1), &device);
        let mut out = teacher.taps(probe);
        out.feature_maps = out.candidate_maps.clone();
        let shapes = TapShapes::of(&out);
        println!("candidate layers: {}", shapes.describe());
        let l = choice.candidates;
        println!("linear CKA on {} training images:", choice.samples);
        for i in 0..l {
            let row: Vec<String> = (0..l)
                .map(|j| format!("{:.2}", choice.cka[i * l + j]))
                .collect();
            println!("  {i:>2}: {}", row.join(" "));
        }
        let png = self.png.unwrap_or_else(|| self.teacher.join("hints.png"));
        write_heatmap(&png, &choice.cka, l, &choice.layers, 32).map_err(|source| CliError::Io {
            path: png.clone(),
            source,
        })?;
        println!("hint layers: {:?}", choice.layers);
        println!("heat map: {}", png.display());
        let list: Vec<String> = choice.layers.iter().map(usize::to_string).collect();
        println!(
            "use them: [distill] hints = [{}]  (or hints = \"auto\")",
            list.join(", ")
        );
        Ok(())
    }
}

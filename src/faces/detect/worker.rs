//! A detector on its own thread. rustface's detector is not Send, and a detector that lives on
//! one thread lets everything that holds a worker (GStreamer elements, pipelines) be Send.

use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::{Receiver, Sender, bounded};

use super::{DetectorSettings, Face};
use crate::frame::rgb::RgbImage;
use crate::runtime::RuntimeOptions;

struct Job {
    image: RgbImage,
    scale: f32,
}

pub struct DetectionWorker {
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<Vec<Face>>>,
    thread: Option<JoinHandle<()>>,
}

impl DetectionWorker {
    /// Starts the thread and builds the detector on it; a detector that cannot be built is
    /// reported here, not on the first frame.
    pub fn spawn(settings: DetectorSettings, runtime: RuntimeOptions) -> Result<Self> {
        let (job_tx, job_rx) = bounded::<Job>(1);
        let (res_tx, res_rx) = bounded::<Result<Vec<Face>>>(1);
        let (ready_tx, ready_rx) = bounded::<Result<()>>(1);
        let thread = std::thread::Builder::new()
            .name("faceveil-detect".into())
            .spawn(move || {
                let mut detector = match super::open(&settings, &runtime) {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                for job in job_rx {
                    let faces = super::detect(detector.as_mut(), &settings, &job.image, job.scale);
                    if res_tx.send(faces).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start the detection thread")?;
        ready_rx.recv().map_err(|_| anyhow!("detection thread exited while starting"))??;
        Ok(Self { jobs: Some(job_tx), results: res_rx, thread: Some(thread) })
    }

    /// Detects faces in `image` (downscaled from the frame by `scale`), in frame coordinates.
    pub fn detect(&self, image: RgbImage, scale: f32) -> Result<Vec<Face>> {
        let jobs = self.jobs.as_ref().expect("jobs sender lives until drop");
        jobs.send(Job { image, scale }).map_err(|_| anyhow!("detection thread has stopped"))?;
        self.results.recv().map_err(|_| anyhow!("detection thread has stopped"))?
    }
}

impl Drop for DetectionWorker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

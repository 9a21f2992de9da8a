//! The benchmark's progress on stderr: each step as it starts, with the time elapsed and an
//! estimate of the time left.
//!
//! Every step is planned before the first runs, each with a prior guess of its seconds and the
//! groups of steps it scales with (its device and weight type, its adapter, …). As steps
//! finish, the steps left are estimated as their guesses times the ratio of measured to
//! guessed seconds in their most alike group with a finished step (else over every finished
//! step), so that the estimate follows the machine as the run goes.

use std::time::{Duration, Instant};

/// What a step's time is learned from: names of groups of steps that scale alike, the most
/// alike first (e.g. `lane:vulkan llvmpipe f16`, then `adapter:vulkan llvmpipe`, then
/// `gpu`).
pub type Groups = Vec<String>;

/// One planned step.
#[derive(Debug, Clone)]
struct Step {
    /// What it does, as printed.
    label: String,
    /// The groups its time is learned from, the most alike first.
    groups: Groups,
    /// The prior guess, in seconds.
    guess_s: f64,
    /// The measured seconds, once done.
    took_s: Option<f64>,
}

/// The planned steps, in the order they run, and the time spent on those done.
#[derive(Debug)]
pub struct Progress {
    /// Every step.
    steps: Vec<Step>,
    /// Steps started so far.
    started: usize,
    /// When the run began.
    begun: Instant,
    /// When the step running now began.
    step_begun: Instant,
    /// Whether to print (off in tests).
    print: bool,
}

impl Progress {
    /// An empty plan; the clock starts now.
    pub fn new() -> Self {
        Progress {
            steps: Vec::new(),
            started: 0,
            begun: Instant::now(),
            step_begun: Instant::now(),
            print: true,
        }
    }

    /// Adds a step to the end of the plan.
    pub fn plan(&mut self, label: String, groups: Groups, guess_s: f64) {
        self.steps.push(Step {
            label,
            groups,
            guess_s: guess_s.max(0.0),
            took_s: None,
        });
    }

    /// Ends the step running (if any) and starts the next planned one, printing it with the
    /// time elapsed and the estimate of the time left.
    pub fn next(&mut self) {
        self.finish_current();
        if self.started >= self.steps.len() {
            return;
        }
        self.started += 1;
        self.step_begun = Instant::now();
        if self.print {
            let step = &self.steps[self.started - 1];
            eprintln!(
                "[{}/{}] {} ({} elapsed, about {} left)",
                self.started,
                self.steps.len(),
                step.label,
                clock(self.begun.elapsed()),
                clock(self.left())
            );
        }
    }

    /// Ends the last step and prints the total time.
    pub fn done(&mut self) {
        self.finish_current();
        if self.print {
            eprintln!("benchmark done in {}", clock(self.begun.elapsed()));
        }
    }

    /// Records the time of the step running, if any.
    fn finish_current(&mut self) {
        self.finish_current_as(self.step_begun.elapsed().as_secs_f64());
    }

    /// Records `took_s` as the time of the step running, if any.
    fn finish_current_as(&mut self, took_s: f64) {
        if let Some(step) = self.started.checked_sub(1).map(|i| &mut self.steps[i]) {
            step.took_s.get_or_insert(took_s);
        }
    }

    /// The estimate of the time the steps not yet finished take, the running one included
    /// (less what it has run already).
    pub fn left(&self) -> Duration {
        let mut left = 0.0;
        for (i, step) in self.steps.iter().enumerate() {
            if step.took_s.is_some() {
                continue;
            }
            let estimate = step.guess_s * self.ratio(&step.groups);
            if i + 1 == self.started {
                left += (estimate - self.step_begun.elapsed().as_secs_f64()).max(0.0);
            } else {
                left += estimate;
            }
        }
        Duration::from_secs_f64(left)
    }

    /// Measured seconds over guessed ones for the finished steps of the first of `groups`
    /// that has any; else of every finished step; 1 before any.
    fn ratio(&self, groups: &Groups) -> f64 {
        let of = |member: &dyn Fn(&Step) -> bool| {
            let (took, guess) = self
                .steps
                .iter()
                .filter(|s| member(s))
                .filter_map(|s| s.took_s.map(|t| (t, s.guess_s)))
                .fold((0.0, 0.0), |(t, g), (ts, gs)| (t + ts, g + gs));
            (guess > 0.0).then(|| took / guess)
        };
        groups
            .iter()
            .find_map(|g| of(&|s| s.groups.contains(g)))
            .or_else(|| of(&|_| true))
            .unwrap_or(1.0)
    }
}

/// `1h02m`, `4m05s` or `12s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Progress {
        let mut p = Progress::new();
        p.print = false;
        p
    }

    #[test]
    fn estimates_learn_per_group() {
        let mut p = quiet();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Groups>();
        let cpu = || groups(&["lane:cpu", "cpu"]);
        let f32 = || groups(&["lane:a f32", "adapter:a", "gpu"]);
        let f16 = || groups(&["lane:a f16", "adapter:a", "gpu"]);
        p.plan("ceiling a".into(), groups(&["ceiling:a", "adapter:a"]), 1.0);
        p.plan("x cpu".into(), cpu(), 1.0);
        p.plan("x a f32".into(), f32(), 1.0);
        p.plan("x a f16".into(), f16(), 1.0);
        p.plan("y cpu".into(), cpu(), 2.0);
        p.plan("y a f32".into(), f32(), 2.0);
        p.plan("y a f16".into(), f16(), 2.0);
        // Nothing measured: the guesses.
        assert!((p.left().as_secs_f64() - 10.0).abs() < 0.1);
        p.next();
        p.finish_current_as(4.0); // the adapter is 4× slower than guessed
                                  // The cpu learns from every step measured (4), the adapter's lanes from its ceiling.
        assert!((p.left().as_secs_f64() - 4.0 * 9.0).abs() < 0.1);
        p.next();
        p.finish_current_as(0.5); // the cpu is twice as fast as guessed
        assert!((p.left().as_secs_f64() - (0.5 * 2.0 + 4.0 * 6.0)).abs() < 0.1);
        p.next();
        p.finish_current_as(2.0); // f32 on the adapter: 2×
                                  // f32 from its lane (2), f16 from the adapter (ceiling and f32 lane: 6 / 2 = 3).
        assert!((p.left().as_secs_f64() - (3.0 + 0.5 * 2.0 + 2.0 * 2.0 + 3.0 * 2.0)).abs() < 0.1);
    }

    #[test]
    fn clock_reads_well() {
        assert_eq!(clock(Duration::from_secs(12)), "12s");
        assert_eq!(clock(Duration::from_secs(245)), "4m05s");
        assert_eq!(clock(Duration::from_secs(3720)), "1h02m");
    }
}

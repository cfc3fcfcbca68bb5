"""Hyper-parameter search: grid, random or Optuna over any dotted config field; every trial is a normal run folder.

A search file (YAML) holds a base run config and a space::

    name: search-mnist                  # folder under runs_dir (default: search-<file stem>-<date>-<time>)
    runs_dir: runs                      # default: the base config's runs_dir
    base: configs/mnist.yaml            # a run config file (relative to this file) or the config itself, inline
    method: random                      # grid | random | optuna (TPE sampler; needs `pip install optuna`)
    trials: 8                           # random and optuna; a grid runs every combination
    seed: 0                             # drives the sampler; every trial trains with the base config's seed
    metric: val_loss                    # a metrics.csv column (best epoch) or test_<name> from results.json
    mode: min                           # min or max (default: max for psnr/ssim/accuracy-like names, else min)
    parallel: auto                      # trials at once: auto = one per CPU core (one on a GPU), or a number
    prune: false                        # optuna only: stop trials whose per-epoch metric trails the median
    space:
      optim.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      model.args.bottleneck.code_size: {low: 8, high: 128, log: true, type: int}
      model.args.upsample: {values: [max, nearest, transposed]}

A range is sampled uniformly (on a log scale with ``log: true``); on a grid it becomes ``num`` points (default 3).
The search folder gets ``trial-NNN/`` run folders, ``results.csv`` and ``results.md`` (sorted by the metric) and
``search.png`` (the metric against each searched parameter).

Layout: ``space`` (Param, SearchConfig, reading a search file, grid and random points), ``trials`` (one trial, the
process-pool and Optuna executors, ``run_search`` and ``search``), ``results`` (Trial, SearchResult, the tables and
the plot).
"""

from caekit.search.results import SearchResult, Trial, plot_search, results_table, sort_trials, write_results
from caekit.search.space import MAXIMISED, Param, SearchConfig, grid_points, load_search, parse_search, random_points
from caekit.search.trials import cpu_cores, plan_workers, run_search, run_trial, search, trial_value

__all__ = [
    "MAXIMISED",
    "Param",
    "SearchConfig",
    "SearchResult",
    "Trial",
    "cpu_cores",
    "grid_points",
    "load_search",
    "parse_search",
    "plan_workers",
    "plot_search",
    "random_points",
    "results_table",
    "run_search",
    "run_trial",
    "search",
    "sort_trials",
    "trial_value",
    "write_results",
]

"""Rank fidelity of the search's short fine-tune: does the 80-step screen order policies the way
the 500-step final fine-tune does, and how noisy is one screened evaluation?

1. Evaluation noise: one policy (the one at the median cost) screened with --seeds fine-tune
   seeds; the std of its validation accuracy is the noise every single, unpaired screen carries.
   --noise-genome measures it on policies of your choice instead, and --noise-top K (with --run)
   on the run's K most accurate screened policies, the ones its selection decides between (their
   seeds skip the run's own, whose lucky draw chose them); with several policies the std is also
   pooled over them (the root of their mean variance), with its 95 % interval both as if their
   seed noise were independent and as if the seeds they share moved them all alike, and paired:
   the std of two policies' difference over the shared seeds, per policy (/ sqrt 2) — the noise of
   a comparison within one run, where every trial shares the run's seed.
2. Rank fidelity: --policies policies spread evenly over the cost axis of the budget (the
   least-pruned uniform policies of evo's generation 0 plus repaired random genomes, as the
   search draws them), each screened (--screen-steps) and fine-tuned in full (--final-steps)
   from the same base with the same seed; the Spearman correlation of the two validation
   accuracies. Only the validation split is read.

Every evaluation is the search's own trial (``trainables.policy_trial.evaluate_policy``),
in-process, without Ray.

    python benchmarks/rank_fidelity.py                           # 24 policies, 5 seeds, 80 / 500 steps
    python benchmarks/rank_fidelity.py --policies 8 --seeds 3    # a small run
    python benchmarks/rank_fidelity.py --noise-only --seeds 10 --screen-steps 160   # part 1 alone
    python benchmarks/rank_fidelity.py --run runs/mine --policies 12   # your model, from one of your runs
    python benchmarks/rank_fidelity.py --run runs/mine --noise-only --noise-top 3 --seeds 10

With ``--run`` the model, data, base weights, search space, budget and trial settings (fine-tune
steps, batch, lr, distillation) are those of an `evo search` run (any model evo searches: a file
of your own, an .npz, your weights); --screen-steps, --final-steps, --batch-size and --lr, when
given, replace the run's, and --seed defaults to the run's seed. A run with successive-halving
rungs is measured at its top rung (its fine_tune_steps). Nothing is written into the run.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# without --run: a zoo model pretrained with its recipe, and these trial settings
ZOO_DEFAULTS = {"model": "lenet5", "dataset": "fashion-mnist", "budget": "bops=1/512", "target": "bitserial",
                "screen_steps": 80, "final_steps": 500, "batch_size": 128, "lr": 0.01, "seed": 0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None,
                   help="an `evo search` run folder: measure its model, data, space, budget and trial settings")
    p.add_argument("--model", default=None, help="a zoo model (default lenet5); not with --run")
    p.add_argument("--dataset", default=None, help="(default fashion-mnist); not with --run")
    p.add_argument("--budget", default=None, help="(default bops=1/512); not with --run")
    p.add_argument("--target", default=None, help="(default bitserial); not with --run")
    p.add_argument("--policies", type=int, default=24, help="policies spread over the cost axis (>= 3)")
    p.add_argument("--seeds", type=int, default=5, help="fine-tune seeds of the noise policy (>= 2)")
    p.add_argument("--screen-steps", type=int, default=None,
                   help="the search's per-trial fine-tune (default 80, or the run's)")
    p.add_argument("--final-steps", type=int, default=None,
                   help="the final phase's fine-tune (default 500, or the run's)")
    p.add_argument("--batch-size", type=int, default=None, help="(default 128, or the run's)")
    p.add_argument("--lr", type=float, default=None, help="(default 0.01, or the run's)")
    p.add_argument("--pretrain-epochs", type=int, default=None, help="base model epochs (default: its recipe)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--seed", type=int, default=None,
                   help="draws the random genomes; the rank runs' fine-tune seed (default 0, or the run's)")
    p.add_argument("--noise-only", action="store_true", help="print part 1 (the noise) and stop")
    p.add_argument("--noise-genome", action="append", default=[], metavar="GENES",
                   help="measure the noise on this policy (comma-separated gene indices; repeatable) "
                        "instead of the median-cost one")
    p.add_argument("--noise-top", type=int, default=None, metavar="K",
                   help="with --run: measure the noise on the run's K most accurate screened policies "
                        "(by validation accuracy, at its top rung)")
    args = p.parse_args(argv)
    if args.noise_top is not None:
        if args.run is None:
            p.error("--noise-top picks a run's screened policies: give --run too")
        if args.noise_genome:
            p.error("give either --noise-top or --noise-genome")
        if args.noise_top < 1:
            p.error(f"--noise-top={args.noise_top} must be >= 1")
    genomes = []
    for text in args.noise_genome:
        try:
            genomes.append(tuple(int(g) for g in text.split(",")))
        except ValueError:
            p.error(f"--noise-genome {text!r} must be comma-separated integers (gene indices)")
    args.noise_genome = genomes
    given = [f"--{name.replace('_', '-')}" for name in ("model", "dataset", "budget", "target", "pretrain_epochs")
             if getattr(args, name) is not None]
    if args.run is not None and given:
        p.error(f"{', '.join(given)}: the run names its own; give either --run or these")
    for name, default in ZOO_DEFAULTS.items():
        if getattr(args, name) is None and args.run is None:
            setattr(args, name, default)
    if args.lr is not None and not (math.isfinite(args.lr) and args.lr > 0):
        p.error(f"--lr={args.lr} must be a finite number > 0")
    for name, low in (("policies", 3), ("seeds", 2), ("screen_steps", 1), ("final_steps", 1), ("batch_size", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= {low}")
    return args


def setup_genome(parser: argparse.ArgumentParser, args: argparse.Namespace, *, threads: int | None):
    """For the one-genome benchmarks (fine_tune_length.py, size_levers.py): the search's
    preparation for ``args.model`` / ``args.dataset`` / ``args.budget`` and ``args.genome`` (comma-
    separated gene indices) checked against its space; exits through ``parser`` on a bad genome.
    Returns (splits, base, specs, space, cost_fn, make_settings, genome)."""
    try:
        genome = tuple(int(g) for g in args.genome.split(","))
    except ValueError:
        parser.error(f"--genome {args.genome!r} must be comma-separated integers")
    import torch

    if threads:
        torch.set_num_threads(threads)
    splits, base, specs, space, cost_fn, _, make_settings = setup(parse_args(
        ["--model", args.model, "--dataset", args.dataset, "--budget", args.budget, "--policies", "3"]))
    if len(genome) != space.n_genes:
        parser.error(f"--genome has {len(genome)} genes; {args.model}'s space has {space.n_genes}")
    return splits, base, specs, space, cost_fn, make_settings, genome


def spread_over_cost(genomes, cost_fn, count: int) -> list:
    """``count`` genomes at evenly spaced ranks of the cost order (cheapest and dearest included)."""
    ordered = sorted(set(genomes), key=cost_fn)
    if len(ordered) < count:
        raise ValueError(f"only {len(ordered)} distinct feasible genomes were drawn; ask for --policies <= that")
    return [ordered[round(i * (len(ordered) - 1) / (count - 1))] for i in range(count)]


def setup(args):
    """The search's own preparation, without Ray: (splits, base, specs, space, cost_fn, genomes,
    make_settings), for a zoo model or, with ``args.run``, a run's own."""
    if args.run is not None:
        return setup_from_run(args)
    from evo.core.cost_table import make_cost_fn
    from evo.core.initial import initial_genomes
    from evo.core.space import SearchSpace
    from evo.runs.prepare import BASE_SEED, SPLIT_SEED
    from hardware.budget import budget_limit, parse_budget
    from hardware.profiler import profile_model
    from hardware.targets import load_target
    from trainables.data import load_dataset, to_tensors
    from trainables.policy_trial import TrialSettings
    from trainables.pretrain import pretrain
    from trainables.user_model import resolve_model

    splits = to_tensors(load_dataset(args.dataset, seed=SPLIT_SEED), "cpu")
    model, model_ref = resolve_model(args.model, None, in_channels=splits.in_channels, num_classes=splits.num_classes,
                                     image_shape=splits.image_shape)
    specs = profile_model(model, splits.image_shape)
    budget, target = parse_budget(args.budget), load_target(args.target)
    limit = budget_limit(budget, specs, target)
    space = SearchSpace(layer_names=tuple(s.name for s in specs))
    cost_fn = make_cost_fn(space, specs, target, budget.metric)
    drawn = [g for g, _ in initial_genomes(space, cost_fn, limit, max(4 * args.policies, 100),
                                           random.Random(args.seed))]
    genomes = spread_over_cost(drawn, cost_fn, args.policies)
    base = pretrain(args.model, args.dataset, epochs=args.pretrain_epochs, seed=BASE_SEED, log=print)
    settings = dict(model_ref=model_ref, target=args.target, budget_metric=budget.metric, budget_limit=limit,
                    final_steps=args.final_steps, batch_size=args.batch_size, lr=args.lr)

    def make_settings(seed: int, steps: int) -> TrialSettings:
        """The trial's settings with ``steps`` as its search-phase fine-tune: the final length is
        run as a search-phase trial too, so that only the validation split is read."""
        return TrialSettings(seed=seed, fine_tune_steps=steps, **settings)

    return splits, base, specs, space, cost_fn, genomes, make_settings


def search_run(path: Path, tool: str):
    """(run, its SearchConfig located where the folder is) of the `evo search` run at ``path``;
    SystemExit naming ``tool`` and what is wrong otherwise."""
    from evo.runs.export import run_config
    from evo.runs.folder import read_run

    try:
        run = read_run(path)
        if run.method != "evo":
            raise ValueError(f"{run.path} is a run of the {run.method} method; give an `evo search` run")
        return run, run_config(run)
    except ValueError as err:
        raise SystemExit(f"{tool}: {err}")


def setup_from_run(args):
    """``setup`` for an `evo search` run: its prepared inputs (model, data, cached base weights,
    space, budget) and its trial settings; the trial settings ``args`` leaves unset are the run's."""
    from dataclasses import replace
    from types import SimpleNamespace

    from evo.core.initial import initial_genomes
    from evo.runs.pipeline import trial_settings
    from evo.runs.prepare import prepare
    from trainables.data import to_tensors

    _, cfg = search_run(args.run, "rank_fidelity")
    for name, value in (("screen_steps", cfg.fine_tune_steps), ("final_steps", cfg.final_steps),
                        ("batch_size", cfg.batch_size), ("lr", cfg.lr), ("seed", cfg.seed)):
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        prep = prepare(cfg, resume=True, log=print)  # the run's data, split, cached base model and space
    except ValueError as err:  # e.g. its model file or npz moved since the search
        raise SystemExit(f"rank_fidelity: {args.run}: {err}")
    drawn = [g for g, _ in initial_genomes(prep.space, prep.cost_fn, prep.limit, max(4 * args.policies, 100),
                                           random.Random(args.seed))]
    genomes = spread_over_cost(drawn, prep.cost_fn, args.policies)
    # models_dir / trainings_log None: nothing is written into the run
    settings = replace(trial_settings(prep), final_steps=args.final_steps, batch_size=args.batch_size, lr=args.lr,
                       models_dir=None, trainings_log=None)
    teacher = None
    if settings.distill_weight > 0:  # the run distils: its trials learn from the float model's logits
        import torch

        from evo.runs.pipeline import teacher_logits
        teacher = torch.from_numpy(teacher_logits(prep))
    base = SimpleNamespace(state_dict=prep.base_state, val_accuracy=prep.base_val_accuracy, teacher_logits=teacher)

    def make_settings(seed: int, steps: int):
        return replace(settings, seed=seed, fine_tune_steps=steps)

    return to_tensors(prep.splits, "cpu"), base, prep.specs, prep.space, prep.cost_fn, genomes, make_settings


def val_accuracy(prepared, genome, seed: int, steps: int) -> float:
    """``genome``'s validation accuracy after the trial's fine-tune of ``steps`` with ``seed``,
    ``prepared`` being what ``setup`` returns."""
    from trainables.policy_trial import evaluate_policy

    splits, base, specs, space, _, _, make_settings = prepared
    return evaluate_policy(space.decode(genome), splits=splits, base_state=base.state_dict, specs=specs,
                           settings=make_settings(seed, steps), final=False,
                           teacher_logits=getattr(base, "teacher_logits", None))["accuracy"]


def val_correct(prepared, genome, seed: int, steps: int):
    """Which validation images ``genome`` classifies right after the trial's fine-tune of ``steps``
    with ``seed`` (a bool tensor over the whole validation split)."""
    from trainables.policy_trial import tuned_model
    from trainables.train import evaluate

    splits, base, specs, space, _, _, make_settings = prepared
    model, _ = tuned_model(space.decode(genome), splits=splits, base_state=base.state_dict, specs=specs,
                           settings=make_settings(seed, steps), steps=steps,
                           teacher_logits=getattr(base, "teacher_logits", None))
    return evaluate(model, splits.val_x, splits.val_y, per_example=True)["correct"]


def flip_noise(correct: list) -> tuple[float, float]:
    """(q, sqrt(q / 2n)): q, the mean fraction of the n validation images that one seed's model
    gets right and another's wrong, over all pairs of seeds; and the std of one model's accuracy
    that those flips alone imply when every seed's model is equally good in expectation (the
    difference of two accuracies is a mean of n terms in {-1, 0, 1}, each non-zero with probability q)."""
    import itertools

    pairs = list(itertools.combinations(correct, 2))
    q = sum((a != b).double().mean().item() for a, b in pairs) / len(pairs)
    return q, math.sqrt(q / (2 * len(correct[0])))


def noise_genomes(args, space, genomes, top_keys=None) -> list:
    """Part (a)'s policies: --noise-genome's, or with --noise-top the run's ``top_keys``
    (``top_screened``), each checked against ``space``; else the median-cost one of the draw ``genomes``."""
    from evo.core.genome import genome_from_key

    try:
        if args.noise_genome:
            return [space.check_genome(genome) for genome in args.noise_genome]
        if top_keys is not None:
            return [space.check_genome(genome_from_key(key)) for key in top_keys]
        return [genomes[len(genomes) // 2]]
    except ValueError as err:
        raise SystemExit(f"rank_fidelity: {err}")


def top_screened(trials, count: int) -> list[str]:
    """The genome keys of the ``count`` most accurate distinct policies among a run's successful
    screens at its top rung (a lower rung's accuracy is not comparable); ValueError when it has fewer."""
    ok = trials[(trials.phase == "search") & (trials.status == "ok")]
    top_rung = ok[ok.steps == ok.steps.max()]
    keys = top_rung.sort_values("accuracy", ascending=False, kind="stable").genome_key.drop_duplicates()
    if len(keys) < count:
        raise ValueError(f"the run screened {len(keys)} distinct policies successfully at its top rung; "
                         f"ask for --noise-top <= that")
    return list(keys.head(count))


def noise_seeds(args) -> list[int]:
    """Part (a)'s fine-tune seeds: 0.. --seeds - 1, skipping the run's seed (--seed) when the
    policies were chosen (--noise-genome, --noise-top): a policy picked for its screen at that seed
    would bring the lucky draw that picked it, and inflate its spread."""
    if not (args.noise_genome or args.noise_top):
        return list(range(args.seeds))
    return [seed for seed in range(args.seeds + 1) if seed != args.seed][:args.seeds]


def pooled_noise(accuracies: list) -> tuple[float, int]:
    """(std, dof): the std of one screen pooled over policies, each a list of its seeds'
    accuracies (the root of the dof-weighted mean variance), and its degrees of freedom,
    sum(seeds - 1), as many as there are when the policies' seed noise is independent."""
    dof = sum(len(a) - 1 for a in accuracies)
    return math.sqrt(sum((len(a) - 1) * statistics.variance(a) for a in accuracies) / dof), dof


def paired_noise(accuracies: list) -> float:
    """The seed noise of a comparison between two of the policies, each a list of its accuracies on
    the same seeds (common random numbers: within a run every trial shares one seed): the variance of
    the difference of two policies' accuracies across seeds, averaged over all pairs, halved (two
    policies' noise enters a difference), as a std. Equal to ``pooled_noise``'s std when the seeds move
    the policies independently (and equally), lower when a seed moves them alike."""
    import itertools

    if len(accuracies) < 2 or len({len(a) for a in accuracies}) != 1:
        raise ValueError("paired_noise needs two or more policies measured on the same seeds")
    pairs = list(itertools.combinations(accuracies, 2))
    return math.sqrt(sum(statistics.variance([x - y for x, y in zip(a, b)]) for a, b in pairs) / len(pairs) / 2)


def chi2_interval(std: float, dof: int) -> tuple[float, float]:
    """The 95 % interval of a std estimated with ``dof`` degrees of freedom (chi-square)."""
    from scipy.stats import chi2

    return math.sqrt(dof * std ** 2 / chi2.ppf(0.975, dof)), math.sqrt(dof * std ** 2 / chi2.ppf(0.025, dof))


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from scipy.stats import spearmanr

    from evo.runs.summary import describe_policy

    top_keys = None
    if args.noise_top is not None:  # picked, and K checked, before the run's inputs are prepared
        try:
            top_keys = top_screened(search_run(args.run, "rank_fidelity")[0].trials, args.noise_top)
        except ValueError as err:
            raise SystemExit(f"rank_fidelity: {err}")
    if args.threads:
        torch.set_num_threads(args.threads)
    prepared = setup(args)
    _, base, _, space, cost_fn, genomes, _ = prepared
    started = time.perf_counter()

    def accuracy(genome, seed: int, steps: int) -> float:
        return val_accuracy(prepared, genome, seed, steps)

    print(f"base: val {base.val_accuracy:.4f}; {len(genomes)} policies, costs {cost_fn(genomes[0]):.4g}.."
          f"{cost_fn(genomes[-1]):.4g}")
    measured, seeds = [], noise_seeds(args)
    for noise_genome in noise_genomes(args, space, genomes, top_keys):
        correct = [val_correct(prepared, noise_genome, seed, args.screen_steps) for seed in seeds]
        noise = [c.double().mean().item() for c in correct]
        measured.append(noise)
        print(f"(a) noise: one policy (cost {cost_fn(noise_genome):.4g}), fine-tune seeds {seeds[0]}..{seeds[-1]}"
              f"{f' except {args.seed}' if len(seeds) < seeds[-1] - seeds[0] + 1 else ''} at "
              f"{args.screen_steps} steps: val accuracy {[round(a, 4) for a in noise]}, "
              f"std {100 * statistics.stdev(noise):.3f} points")
        q, implied = flip_noise(correct)
        print(f"    two seeds' models disagree on {100 * q:.2f} % of the {len(correct[0])} validation images "
              f"(one right, one wrong); on a split this size those flips alone imply a std of "
              f"{100 * implied:.3f} points")
        print(f"    policy {','.join(map(str, noise_genome))}", flush=True)
    std, dof = pooled_noise(measured)
    low, high = chi2_interval(std, dof)
    if len(measured) == 1:
        print(f"(a) noise over 1 policy: std {100 * std:.3f} points, 95 % interval {100 * low:.3f}-{100 * high:.3f} "
              f"(chi-square, {dof} degrees of freedom)")
    else:  # every policy is fine-tuned with the same seeds, so their noise is not independent
        shared_low, shared_high = chi2_interval(std, len(seeds) - 1)
        print(f"(a) noise over {len(measured)} policies (pooled): std {100 * std:.3f} points, 95 % interval "
              f"{100 * low:.3f}-{100 * high:.3f} if their seed noise were independent ({dof} degrees of freedom), "
              f"{100 * shared_low:.3f}-{100 * shared_high:.3f} if the shared seeds moved them all alike "
              f"({len(seeds) - 1})")
        print(f"    paired: two of these policies fine-tuned on the same seed (as within a run) differ by a seed "
              f"noise of {100 * paired_noise(measured):.3f} points per policy (the std of their difference over "
              f"the seeds, averaged over the {len(measured) * (len(measured) - 1) // 2} pairs, divided by sqrt 2)")
    if args.noise_only:
        return 0
    print(f"{'cost':>12} {'screened':>9} {'final':>9}  policy")
    screened, final = [], []
    for genome in genomes:
        screened.append(accuracy(genome, args.seed, args.screen_steps))
        final.append(accuracy(genome, args.seed, args.final_steps))
        layers = describe_policy(json.dumps(space.decode(genome).to_dict()))
        print(f"{cost_fn(genome):12.4g} {screened[-1]:9.4f} {final[-1]:9.4f}  {layers}", flush=True)
    rho = spearmanr(screened, final).statistic
    print(f"(b) Spearman(screened at {args.screen_steps} steps, final at {args.final_steps} steps) over "
          f"{len(genomes)} policies: {rho:.3f}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

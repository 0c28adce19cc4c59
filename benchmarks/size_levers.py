"""What would lift one policy's accuracy at a budget? The same genome fine-tuned as a search
trial (``trainables.policy_trial.tuned_model``, in-process, without Ray) under variants of the
policy and of the fine-tune, each over several fine-tune seeds from the same base; prints the
validation accuracy's mean and std per variant and its difference from the plain trial. Only
the validation split is read.

    python benchmarks/size_levers.py --budget size=1/100 --genome 0,5,5,2,2,5,7,0,5,2,3,5 --seeds 4

Variants (``--variants``, comma-separated; default all):
  trial          the policy as a search trial trains it (the reference row)
  float-acts     activations left float (32 bits), as ADMM's size runs keep them
  kmeans         weights snapped to a per-layer k-means codebook (ADMM's quantizer,
                 ``trainables.kmeans.CodebookWeight``; straight-through), levels refitted every 100 steps
  gradual-prune  sparsity ramped up cubically over the first half of the fine-tune (Zhu & Gupta,
                 2017), the magnitude mask re-chosen every 25 steps, instead of one-shot
  distill        distillation from the float base model (weight 0.5, temperature 4)
  lr-0.005, lr-0.02   the fine-tune lr halved / doubled
  policy         ``--policy`` (a JSON mapping layer -> [sparsity, weight bits, activation bits]) in
                 place of the genome, e.g. ADMM's policy at the same budget
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rank_fidelity  # noqa: E402  (its setup is the search's own preparation)

VARIANTS = ("trial", "float-acts", "kmeans", "gradual-prune", "distill", "lr-0.005", "lr-0.02", "policy")
KMEANS_REFIT_EVERY = 100
PRUNE_EVERY, PRUNE_FRACTION = 25, 0.5


def parse_policy(text: str, names: list[str]):
    from hardware.policy import LayerPolicy, Policy

    try:
        layers = json.loads(text)
        if not isinstance(layers, dict) or sorted(layers) != sorted(names):
            raise ValueError(f"layers {sorted(layers) if isinstance(layers, dict) else layers!r}; the model's are {names}")
        return Policy(tuple((name, LayerPolicy(sparsity=float(layers[name][0]), weight_bits=int(layers[name][1]),
                                               activation_bits=int(layers[name][2]))) for name in names))
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise SystemExit(f"--policy {text!r}: {err}") from None


def with_float_activations(policy):
    from hardware.policy import FLOAT_BITS, Policy

    return Policy(tuple((name, dataclasses.replace(layer, activation_bits=FLOAT_BITS)) for name, layer in policy.layers),
                  structure=policy.structure)


def every_training_step(model, every: int, action) -> None:
    """Call ``action(step)`` before training steps 0, every, 2 * every, ... (a forward pre-hook
    that counts the forwards in training mode: ``fine_tune`` runs one per step)."""
    count = [0]

    def hook(module, _inputs):
        if module.training:
            if count[0] % every == 0:
                action(count[0])
            count[0] += 1

    model.register_forward_pre_hook(hook)


def tuned_variant(variant: str, policy, *, splits, base, specs, settings, steps: int, teacher_logits):
    """(the fine-tuned model) of one variant; the compressions that the trial does not know are
    installed here, the rest is ``tuned_model``."""
    import torch

    from trainables.compress import apply_policy, weight_transform
    from trainables.kmeans import install_final_transforms
    from trainables.policy_trial import CALIBRATION_SIZE, tuned_model
    from trainables.prune import unstructured_mask
    from trainables.train import fine_tune
    from trainables.user_model import build_from_reference

    if variant not in ("kmeans", "gradual-prune"):
        if variant == "float-acts":
            policy = with_float_activations(policy)
        elif variant.startswith("lr-"):
            settings = dataclasses.replace(settings, lr=float(variant[3:]))
        elif variant == "distill":
            settings = dataclasses.replace(settings, distill_weight=0.5, distill_temperature=4.0)
        model, _ = tuned_model(policy, splits=splits, base_state=base.state_dict, specs=specs, settings=settings,
                               steps=steps, teacher_logits=teacher_logits if variant == "distill" else None)
        return model
    model = build_from_reference(settings.model_ref)
    model.load_state_dict(base.state_dict)
    model.to(splits.train_x.device)
    torch.manual_seed(settings.seed)
    calibration = splits.train_x[:CALIBRATION_SIZE]
    layers = {spec.name: model.get_submodule(spec.name) for spec in specs}
    if variant == "kmeans":  # ADMM's final fine-tune transforms: codebook weights, min-max input ranges
        layer_list = [layers[spec.name] for spec in specs]
        masks = [unstructured_mask(layer.weight, policy[spec.name].sparsity) != 0
                 for spec, layer in zip(specs, layer_list)]
        finish = install_final_transforms(model, layer_list, masks, policy, specs, "kmeans", calibration)
        every_training_step(model, KMEANS_REFIT_EVERY, lambda step: step and finish())
    else:
        apply_policy(model, policy, specs, calibration)
        ramp = max(1, int(PRUNE_FRACTION * steps))
        pruned = [(layer, policy[name].sparsity) for name, layer in layers.items() if policy[name].sparsity > 0]

        def finish(step: int = ramp) -> None:  # noqa: F811
            for layer, final in pruned:
                sparsity = final if step >= ramp else final * (1 - (1 - step / ramp) ** 3)
                weight_transform(layer).mask.copy_(unstructured_mask(layer.parametrizations.weight.original, sparsity))

        finish(0)
        every_training_step(model, PRUNE_EVERY, lambda step: step <= ramp and finish(step))
    fine_tune(model, splits.train_x, splits.train_y, steps=steps, batch_size=settings.batch_size, lr=settings.lr,
              seed=settings.seed, scale_lr=settings.scale_lr)
    with torch.no_grad():
        finish()  # k-means: levels at the trained weights; gradual: the final sparsity's mask
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet5")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--budget", default="size=1/100")
    p.add_argument("--genome", required=True, help="comma-separated gene indices (trials.parquet's genome)")
    p.add_argument("--policy", default=None, help="the 'policy' variant: JSON {layer: [sparsity, w bits, a bits]}")
    p.add_argument("--variants", default=None, help=f"comma-separated, out of {', '.join(VARIANTS)} (default: all; "
                                                    "'policy' only with --policy)")
    p.add_argument("--steps", type=int, default=500, help="fine-tune steps (default 500, the final phase's)")
    p.add_argument("--seeds", type=int, default=4, help="fine-tune seeds 0..N-1 per variant (>= 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as in a one-CPU trial)")
    args = p.parse_args(argv)
    variants = args.variants.split(",") if args.variants else [v for v in VARIANTS if v != "policy" or args.policy]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"--variants: unknown {unknown}; valid: {list(VARIANTS)}")
    if "policy" in variants and not args.policy:
        p.error("--variants policy needs --policy")
    if args.seeds < 2 or args.steps < 1:
        p.error(f"--seeds {args.seeds} must be >= 2 and --steps {args.steps} >= 1")

    from evo.runs.summary import describe_policy
    from hardware.cost import total_costs
    from hardware.targets import load_target
    from trainables.distill import teacher_logits
    from trainables.train import evaluate
    from trainables.user_model import build_from_reference

    splits, base, specs, space, cost_fn, make_settings, genome = rank_fidelity.setup_genome(p, args,
                                                                                            threads=args.threads)
    policy = space.decode(genome)
    other = parse_policy(args.policy, [s.name for s in specs]) if args.policy else None
    teacher = None
    if "distill" in variants:
        float_model = build_from_reference(make_settings(0, args.steps).model_ref)
        float_model.load_state_dict(base.state_dict)
        teacher = teacher_logits(float_model.to(splits.train_x.device), splits.train_x)
    target = load_target("bitserial")
    print(f"base: val {base.val_accuracy:.4f}; genome cost {cost_fn(genome):.6g}; "
          f"{describe_policy(json.dumps(policy.to_dict()))}")
    if other is not None:
        print(f"--policy: size bits {total_costs(specs, other, target)['size_bits']:.6g}; "
              f"{describe_policy(json.dumps(other.to_dict()))}")
    print(f"{args.steps} fine-tune steps, seeds 0..{args.seeds - 1}; validation accuracy %")
    print(f"{'variant':<14} {'mean':>7} {'std':>6} {'vs trial':>9}  per seed")
    reference = None
    for variant in variants:
        started, accuracies = time.perf_counter(), []
        for seed in range(args.seeds):
            model = tuned_variant(variant, other if variant == "policy" else policy, splits=splits, base=base,
                                  specs=specs, settings=make_settings(seed, args.steps), steps=args.steps,
                                  teacher_logits=teacher)
            accuracies.append(100 * evaluate(model, splits.val_x, splits.val_y)["accuracy"])
        mean, std = statistics.mean(accuracies), statistics.stdev(accuracies)
        if variant == "trial":
            reference = mean
        delta = f"{mean - reference:+.2f}" if reference is not None else "–"
        print(f"{variant:<14} {mean:7.2f} {std:6.2f} {delta:>9}  {[round(a, 2) for a in accuracies]}  "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

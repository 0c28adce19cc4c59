"""The constrained-gradient baseline: ADMM joint sparsity-quantization (Yang et al., CVPR 2020),
reimplemented on a torch model.

Variables per prunable layer: W (the weights, kept sparse), V (a quantized copy), U (the
scaled dual), with penalty rho. The constraint sum_l b_l * u_l * nnz_l <= S couples the
counts of W and the bit widths of V (``trainables.knapsack.BudgetConstraint``)::

    W, nnz <- SparseProj(W, b0);  V, b <- QuantProj(W, nnz);  U <- 0
    every epoch:  each minibatch: SGD step on CE + wd; beta = lr * rho; W <- (W + beta (V - U)) / (1 + beta)
                  W, nnz <- SparseProj(W, b);  V, b <- QuantProj(W + U, nnz);  U <- U + W - V
    then fine-tune with mask and bits fixed, straight-through on Q_b(W)

The result is a ``hardware.policy.Policy`` (sparsity 1 - nnz/N, weight bits b, activation bits
32 for a size budget or the fixed b_a for a BOPs budget) and the compressed model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from hardware.policy import Policy
from hardware.specs import LayerSpec

from .data import TensorSplits
from .kmeans import install_final_transforms, nonzero_counts, quantize
from .knapsack import (BIT_CHOICES, ADMMSettings, BudgetConstraint, bits_knapsack, policy_from,
                       sparse_knapsack)
from .train import evaluate


@dataclass
class ADMMResult:
    model: nn.Module  # compressed in place: masks and quantized weights as parametrizations
    policy: Policy
    nnz: list[int]  # kept weights per layer (the policy's counts)
    bits: list[int]
    nonzero: list[int]  # non-zero weights per layer in the final model (<= nnz: levels may be 0)
    constraint_value: float  # sum b * u * nonzero on the final weights, checked <= the limit
    history: list[dict] = field(default_factory=list)
    train_loss: float = float("nan")
    steps: int = 0


def sparse_project(weights: Sequence[torch.Tensor], bits: Sequence[int], constraint: BudgetConstraint) -> list[int]:
    """SparseProj in place: zero every weight the 0-1 knapsack drops; return nnz per layer."""
    values = [w.detach().double().pow(2).cpu().numpy() for w in weights]
    item_costs = [b * u for b, u in zip(bits, constraint.unit_costs)]
    keep = sparse_knapsack(values, item_costs, constraint.limit)
    with torch.no_grad():
        for weight, layer_keep in zip(weights, keep):
            weight.mul_(torch.from_numpy(layer_keep.reshape(weight.shape)).to(weight.device, weight.dtype))
    return [int(k.sum()) for k in keep]


def quant_project(targets: Sequence[torch.Tensor], nnz: Sequence[int], constraint: BudgetConstraint,
                  quantizer: str) -> tuple[list[torch.Tensor], list[int]]:
    """QuantProj: per layer the bit width (multiple-choice knapsack on the distortion
    ||X - Q_b(X)||^2, cost b * u * nnz) and X quantized at it."""
    distortions = np.array([[float((x - quantize(x, b, quantizer)).double().pow(2).sum()) for b in BIT_CHOICES]
                            for x in targets])
    costs = np.array([[b * u * n for b in BIT_CHOICES] for u, n in zip(constraint.unit_costs, nnz)], dtype=float)
    bits = [BIT_CHOICES[i] for i in bits_knapsack(distortions, costs, constraint.limit)]
    return [quantize(x, b, quantizer) for x, b in zip(targets, bits)], bits


def _train_epoch(model: nn.Module, splits: TensorSplits, optimizer, scheduler, generator: torch.Generator,
                 batch_size: int, after_step: Callable[[float], None] | None = None) -> tuple[float, int]:
    """One pass over the training split; ``after_step(lr)`` runs after every SGD step."""
    model.train()
    total, steps = torch.zeros((), device=splits.train_x.device), 0
    order = torch.randperm(len(splits.train_y), generator=generator, device=splits.train_x.device)
    for index in order.split(batch_size):
        loss = F.cross_entropy(model(splits.train_x[index]), splits.train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step(optimizer.param_groups[0]["lr"])
        scheduler.step()
        total += loss.detach()
        steps += 1
    return total.item() / steps, steps


def _optimizer(model: nn.Module, lr: float, settings: ADMMSettings, total_steps: int):
    """SGD with momentum and weight decay, cosine over the phase's steps (a fresh one per phase)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))


def _compressed_accuracy(model, weights, bits, quantizer, splits) -> dict:
    """Validation accuracy with every layer's W quantized at its current bits (W kept aside)."""
    saved = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for weight, width in zip(weights, bits):
            weight.copy_(quantize(weight, width, quantizer))
    try:
        return evaluate(model, splits.val_x, splits.val_y)
    finally:
        with torch.no_grad():
            for weight, original in zip(weights, saved):
                weight.copy_(original)


def run_admm(model: nn.Module, splits: TensorSplits, specs: Sequence[LayerSpec], constraint: BudgetConstraint,
             settings: ADMMSettings, *, on_epoch: Callable[[dict], None] | None = None) -> ADMMResult:
    """Compress ``model`` (float, on the splits' device) in place under ``constraint``;
    ``on_epoch`` receives every epoch's record (ADMM epochs, then fine-tune epochs)."""
    constraint.check_reachable()
    layers = [model.get_submodule(spec.name) for spec in specs]
    if any(parametrize.is_parametrized(layer) for layer in layers):
        raise ValueError("run_admm needs the float model; this one already carries compression transforms")
    torch.manual_seed(settings.seed)
    run = _Run(model, layers, splits, constraint, settings, on_epoch)
    nnz, bits = run.admm_epochs()
    policy = policy_from(specs, nnz, bits, constraint.activation_bits)
    install = install_final_transforms(model, layers, [layer.weight.detach() != 0 for layer in layers], policy,
                                       specs, settings.quantizer, splits.train_x[:512])
    train_loss = run.fine_tune_epochs(install, nnz, bits)
    nonzero = nonzero_counts(layers)
    value = constraint.cost(nonzero, bits)
    if value > constraint.limit or any(n > k for n, k in zip(nonzero, nnz)):
        raise RuntimeError(f"ADMM result breaks its budget: {constraint.metric} {value:.6g} > {constraint.limit:.6g} "
                           f"(non-zeros {nonzero}, kept {nnz}, bits {bits})")
    return ADMMResult(model=model, policy=policy, nnz=nnz, bits=bits, nonzero=nonzero, constraint_value=value,
                      history=run.history, train_loss=train_loss, steps=run.steps)


class _Run:
    """The state one run shares between its phases: data order, history, clock, step count."""

    def __init__(self, model, layers, splits, constraint, settings, on_epoch) -> None:
        self.model, self.splits, self.constraint, self.settings = model, splits, constraint, settings
        self.weights = [layer.weight for layer in layers]
        self.on_epoch = on_epoch
        self.generator = torch.Generator(device=splits.train_x.device).manual_seed(settings.seed)
        self.steps_per_epoch = math.ceil(len(splits.train_y) / settings.batch_size)
        self.history: list[dict] = []
        self.steps = 0
        self.started = time.perf_counter()

    def admm_epochs(self) -> tuple[list[int], list[int]]:
        settings, constraint, weights = self.settings, self.constraint, self.weights
        nnz = sparse_project(weights, [constraint.initial_bits(settings.initial_bits)] * len(weights), constraint)
        duplicates, bits = quant_project([w.detach() for w in weights], nnz, constraint, settings.quantizer)
        duals = [torch.zeros_like(w) for w in weights]
        optimizer = _optimizer(self.model, settings.lr, settings, settings.epochs * self.steps_per_epoch)

        def proximal(lr: float) -> None:  # W <- argmin_W' ||W' - W||^2 + beta ||W' - V + U||^2
            beta = lr * settings.rho
            with torch.no_grad():
                for weight, duplicate, dual in zip(weights, duplicates, duals):
                    weight.add_(duplicate - dual, alpha=beta).div_(1.0 + beta)

        for epoch in range(1, settings.epochs + 1):
            train_loss = self._epoch(*optimizer, after_step=proximal)
            nnz = sparse_project(weights, bits, constraint)
            duplicates, bits = quant_project([(w + u).detach() for w, u in zip(weights, duals)], nnz, constraint,
                                             settings.quantizer)
            with torch.no_grad():
                for weight, duplicate, dual in zip(weights, duplicates, duals):
                    dual.add_(weight - duplicate)
                gap = math.sqrt(sum(float((w - v).double().pow(2).sum()) for w, v in zip(weights, duplicates)))
            val = _compressed_accuracy(self.model, weights, bits, settings.quantizer, self.splits)
            self._record("admm", epoch, val, train_loss, nnz, bits, w_minus_v=gap)
        return nnz, bits

    def fine_tune_epochs(self, refit_levels: Callable[[], None], nnz: list[int], bits: list[int]) -> float:
        """Mask and bits fixed (the transforms are installed); straight-through on Q_b(W)."""
        settings, train_loss = self.settings, float("nan")
        optimizer = _optimizer(self.model, settings.fine_tune_lr, settings,
                               settings.fine_tune_epochs * self.steps_per_epoch)
        for epoch in range(1, settings.fine_tune_epochs + 1):
            refit_levels()  # k-means levels follow the weights once per epoch
            train_loss = self._epoch(*optimizer)
            val = evaluate(self.model, self.splits.val_x, self.splits.val_y)
            self._record("fine_tune", settings.epochs + epoch, val, train_loss, nnz, bits)
        return train_loss

    def _epoch(self, optimizer, scheduler, after_step: Callable[[float], None] | None = None) -> float:
        loss, steps = _train_epoch(self.model, self.splits, optimizer, scheduler, self.generator,
                                   self.settings.batch_size, after_step)
        self.steps += steps
        return loss

    def _record(self, stage: str, epoch: int, val: dict, train_loss: float, nnz, bits, **extra) -> None:
        record = {"stage": stage, "epoch": epoch, "accuracy": val["accuracy"], "loss": val["loss"],
                  "train_loss": train_loss, "cost": self.constraint.cost(nnz, bits), "limit": self.constraint.limit,
                  **extra, "nnz": sum(nnz), "bits_per_layer": list(bits), "nnz_per_layer": list(nnz),
                  "seconds": time.perf_counter() - self.started}
        self.history.append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)

"""Unbiased gradient estimators for ``d/d logits E_{Z ~ p}[L(Z)]`` (see ``design/estimators.md``).

Each estimator is a small stateful object: ``estimate(distribution, loss_fn)`` returns one gradient
estimate per label (same shape as that label's logits); ``state_dict``/``load_state_dict`` carry its
state (baseline, surrogate) across checkpoints; ``diagnostics`` holds the last step's numbers.
None of them backpropagates through ``loss_fn``: the network is only ever run forward.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .distribution import Architecture, ArchitectureDistribution
from .checks import positive_number as positive
from .schedules import Constant, Schedule

LossFn = Callable[[Architecture], Any]
Gradients = dict[str, torch.Tensor]

_TINY = 1e-20


def _loss_value(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"loss_fn must return a float or a 0-dim tensor, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    raise TypeError(f"loss_fn must return a float or a 0-dim tensor, got {type(value).__name__}")


def host_values(values: list[Any]) -> list[Any]:
    """Numbers and 0-dim tensors as Python floats; the tensors of one device come in one transfer.

    On a GPU each separate read is a host synchronisation; ``None`` stays ``None``.
    """
    tensors = [value for value in values if isinstance(value, torch.Tensor)]
    read: dict[int, float] = {}
    for device in {tensor.device for tensor in tensors}:
        same = [tensor for tensor in tensors if tensor.device == device]
        read.update(zip(map(id, same), torch.stack([t.detach().reshape(()).double() for t in same]).tolist()))
    return [read[id(value)] if isinstance(value, torch.Tensor) else None if value is None else float(value)
            for value in values]


def _loss_values(values: list[Any]) -> list[float]:
    """Several ``loss_fn`` results as floats, read in one transfer (see :func:`host_values`)."""
    for value in values:
        if isinstance(value, torch.Tensor) and value.numel() != 1:
            raise TypeError(f"loss_fn must return a float or a 0-dim tensor, got a tensor of shape {tuple(value.shape)}")
        if not isinstance(value, (torch.Tensor, int, float)):
            raise TypeError(f"loss_fn must return a float or a 0-dim tensor, got {type(value).__name__}")
    return host_values(values)


class Estimator:
    """Base class: subclasses implement :meth:`estimate`."""

    name = "estimator"

    def __init__(self) -> None:
        self.diagnostics: dict[str, float] = {}
        #: In a data-parallel search, :mod:`nas_estimators.distributed` (set by the search module): the
        #: estimator may share numbers with the other processes, whose estimates are averaged with its
        #: own after :meth:`estimate`. None in one process.
        self.collectives: Any = None

    def estimate(self, distribution: ArchitectureDistribution, loss_fn: LossFn,
                 generator: torch.Generator | None = None) -> Gradients:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def hyperparameters(self) -> dict[str, Any]:
        return {}

    def update_baseline(self, loss: float) -> None:
        """Move the moving-average ``baseline`` toward ``loss`` at the estimator's ``baseline_decay``.

        A non-finite loss must not poison the baseline: it, or an estimator without a decay, leaves it as it is.
        """
        decay = getattr(self, "baseline_decay", None)
        if decay is None or not math.isfinite(loss):
            return
        self.baseline = loss if self.baseline is None else decay * self.baseline + (1 - decay) * loss

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class ScoreFunction(Estimator):
    """Score function (REINFORCE) with a moving-average or a leave-one-out baseline.

    With ``samples=1``: ``g = (L(Z) - b) * d log p(Z) / d logits``, ``Z ~ p``; the baseline ``b`` only
    uses past losses (it starts at 0 and takes the first loss after the first step), so the estimate
    stays unbiased. With ``samples=k >= 2``, ``k`` architectures are drawn and each one's baseline is
    the mean loss of the other ``k - 1`` (leave-one-out, independent of that draw, so unbiased too):
    ``g = 1/k sum_i (L(Z_i) - mean_{j != i} L(Z_j)) d log p(Z_i) / d logits``, at ``k`` forward passes.

    Example:
        >>> import torch
        >>> from nas_estimators import ArchitectureDistribution, ScoreFunction
        >>> dist = ArchitectureDistribution({"op": ["conv", "pool", "skip"]})
        >>> estimator = ScoreFunction(baseline_decay=0.9)
        >>> _ = torch.manual_seed(0)
        >>> grads = estimator.estimate(dist, lambda arch: 1.0 if arch["op"] == "skip" else 0.0)
        >>> grads["op"].shape
        torch.Size([3])
        >>> ScoreFunction(samples=4).estimate(dist, lambda arch: float(arch["op"] == "skip"))["op"].shape
        torch.Size([3])
    """

    name = "sf"

    def __init__(self, baseline_decay: float = 0.9, samples: int = 1) -> None:
        super().__init__()
        baseline_decay = float(baseline_decay)
        if not 0.0 <= baseline_decay < 1.0:
            raise ValueError(f"baseline_decay: expected a number in [0, 1), got {baseline_decay!r}")
        if isinstance(samples, bool) or int(samples) != samples or samples < 1:
            raise ValueError(f"samples: expected an integer >= 1 (architectures scored a step), got {samples!r}")
        self.baseline_decay = baseline_decay
        self.samples = int(samples)
        self.baseline: float | None = None

    def estimate(self, distribution, loss_fn, generator=None):
        draws = [distribution.sample_indices(generator) for _ in range(self.samples)]
        # Every forward pass is queued before any loss is read (one transfer from a device).
        losses = _loss_values([loss_fn(distribution.to_architecture(indices)) for indices in draws])
        # In a data-parallel search the moving average follows every process's losses, so that all
        # processes hold the same baseline. It stays the baseline of a process's single draw: the other
        # processes' draws are scored on other batches, and a leave-one-out baseline across two
        # processes measured no better than it (docs/bench.md).
        all_losses = losses if self.collectives is None else self.collectives.gather_floats(losses)
        probs = distribution.probs()
        if self.samples == 1:
            baselines = [0.0 if self.baseline is None else self.baseline]
        else:
            total = sum(losses)
            baselines = [(total - loss) / (self.samples - 1) for loss in losses]
        gradients = {label: torch.zeros_like(p) for label, p in probs.items()}
        for indices, loss, baseline in zip(draws, losses, baselines):
            advantage = (loss - baseline) / self.samples
            for label, p in probs.items():
                score = -p
                score[indices[label]] += 1.0
                gradients[label] += advantage * score
        self.update_baseline(sum(all_losses) / len(all_losses))  # the same in every process
        self.diagnostics = {"loss": losses[0], "baseline": sum(baselines) / len(baselines),
                            "forward_evaluations": float(self.samples), "samples": float(len(all_losses))}
        return gradients

    def state_dict(self):
        return {"baseline": self.baseline}

    def load_state_dict(self, state):
        self.baseline = state.get("baseline")

    def hyperparameters(self):
        return {"baseline_decay": self.baseline_decay, "samples": self.samples}


#: How :class:`Relax` initialises its surrogate's output layer.
SURROGATE_INITS = ("zero", "random")


class Relax(Estimator):
    """RELAX (Grathwohl et al., 2018): score function with a learned, reparameterised control variate.

    The surrogate ``c_phi`` is an MLP that reads the relaxed architecture (per label
    ``softmax(z / temperature)``, concatenated). ``phi`` is trained after every estimate to minimise
    the estimate's squared norm (its variance); the estimate is unbiased for any ``phi``.

    Args:
        surrogate_width: hidden units of the surrogate's two hidden layers.
        surrogate_lr: Adam learning rate of the surrogate.
        temperature: a positive number or a :class:`~nas_estimators.schedules.Schedule` of the step.
        baseline_decay: moving-average baseline inside the control variate (None: none).
        baseline_fade_steps: the baseline's weight falls linearly from one to zero over this many steps, after
            which the learnt surrogate alone is the control variate (None: it keeps its weight). While the
            surrogate is young the baseline does what SF's does; kept on, it cost a cost-target sweep 0.03 in
            hypervolume at 1,000 queries (docs/cost-aware.md, "Session 18").
        surrogate_steps: surrogate updates per estimate; surrogate_objective: ``variance`` or ``regression``.
        learn_temperature: train the (log) temperature with the surrogate by the same variance objective,
            at Adam's ``temperature_lr`` (default: ``surrogate_lr``).
        conditional_samples: draws of the conditional relaxation ``z~ | b`` averaged in the control variate.
        logits_input: the surrogate also reads the distribution's (detached) log-probabilities, so that
            one surrogate can follow logits that move; at any one step they are constants, so the
            control variate stays a fixed function of the relaxation and the estimate unbiased.
        surrogate_init: the surrogate's output layer at the start. ``zero``: the control variate starts at
            zero, so the first estimates are the score function's (with the baseline, if any) and the surrogate
            adds only what it has learnt; ``random``: PyTorch's default initialisation, whose untrained control
            variate adds noise until it is trained (it cost a cost-target sweep 0.025 in hypervolume at
            1,000 queries, docs/cost-aware.md "Session 18").

    Example:
        >>> import torch
        >>> from nas_estimators import ArchitectureDistribution, Relax
        >>> from nas_estimators.schedules import Exponential
        >>> dist = ArchitectureDistribution({"op": ["conv", "pool", "skip"], "input": [0, 1]})
        >>> estimator = Relax(surrogate_width=16, surrogate_lr=1e-3, temperature=Exponential(1.0, 0.1, steps=100))
        >>> _ = torch.manual_seed(0)
        >>> grads = estimator.estimate(dist, lambda arch: float(arch["input"]))
        >>> sorted(grads)
        ['input', 'op']
    """

    name = "relax"

    def __init__(self, surrogate_width: int = 64, surrogate_lr: float = 1e-3,
                 temperature: float | Schedule = 0.5, baseline_decay: float | None = 0.9,
                 baseline_fade_steps: int | None = 30, surrogate_steps: int = 1, surrogate_objective: str = "variance",
                 learn_temperature: bool = False, conditional_samples: int = 1,
                 temperature_lr: float | None = None, logits_input: bool = False,
                 surrogate_init: str = "zero") -> None:
        super().__init__()
        if surrogate_init not in SURROGATE_INITS:
            raise ValueError(f"surrogate_init: expected one of {', '.join(SURROGATE_INITS)}, got {surrogate_init!r}")
        self.surrogate_init = surrogate_init
        if not isinstance(logits_input, bool):
            raise ValueError(f"logits_input: expected True or False, got {logits_input!r}")
        self.logits_input = logits_input
        self.temperature_lr = None if temperature_lr is None else positive("temperature_lr", temperature_lr)
        if not isinstance(learn_temperature, bool):
            raise ValueError(f"learn_temperature: expected True or False, got {learn_temperature!r}")
        if learn_temperature and isinstance(temperature, Schedule):
            raise ValueError("learn_temperature: the temperature is then learnt from its initial value: "
                             "give a number, not a schedule")
        self.learn_temperature = learn_temperature
        if isinstance(conditional_samples, bool) or int(conditional_samples) != conditional_samples \
                or conditional_samples < 1:
            raise ValueError(f"conditional_samples: expected an integer >= 1, got {conditional_samples!r}")
        self.conditional_samples = int(conditional_samples)
        if surrogate_objective not in ("variance", "regression"):
            raise ValueError(f"surrogate_objective: expected variance or regression, got {surrogate_objective!r}")
        self.surrogate_objective = surrogate_objective
        if isinstance(surrogate_steps, bool) or int(surrogate_steps) != surrogate_steps or surrogate_steps < 1:
            raise ValueError(f"surrogate_steps: expected an integer >= 1, got {surrogate_steps!r}")
        self.surrogate_steps = int(surrogate_steps)
        if baseline_decay is not None:
            baseline_decay = float(baseline_decay)
            if not 0.0 <= baseline_decay < 1.0:
                raise ValueError(f"baseline_decay: expected a number in [0, 1) or None, got {baseline_decay!r}")
        self.baseline_decay = baseline_decay
        if baseline_fade_steps is not None and (isinstance(baseline_fade_steps, bool)
                                                or int(baseline_fade_steps) != baseline_fade_steps
                                                or baseline_fade_steps < 1):
            raise ValueError(f"baseline_fade_steps: expected an integer >= 1 or None, got {baseline_fade_steps!r}")
        self.baseline_fade_steps = None if baseline_fade_steps is None else int(baseline_fade_steps)
        self.baseline: float | None = None
        if isinstance(surrogate_width, bool) or int(surrogate_width) != surrogate_width or surrogate_width < 1:
            raise ValueError(f"surrogate_width: expected a positive integer, got {surrogate_width!r}")
        self.surrogate_width = int(surrogate_width)
        self.surrogate_lr = positive("surrogate_lr", surrogate_lr)
        self.temperature = temperature if isinstance(temperature, Schedule) else Constant(temperature)
        # Learnt as in the RELAX paper: by the same variance objective as the surrogate, in log space.
        self.log_temperature = nn.Parameter(torch.tensor(math.log(float(self.temperature(0)))))
        self.step = 0
        self.surrogate: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None

    def _build(self, input_size: int) -> None:
        self.surrogate = nn.Sequential(
            nn.Linear(input_size, self.surrogate_width), nn.Tanh(),
            nn.Linear(self.surrogate_width, self.surrogate_width), nn.Tanh(),
            nn.Linear(self.surrogate_width, 1),
        )
        if self.surrogate_init == "zero":
            nn.init.zeros_(self.surrogate[-1].weight)
            nn.init.zeros_(self.surrogate[-1].bias)
        groups = [{"params": list(self.surrogate.parameters())}]
        if self.learn_temperature:
            groups.append({"params": [self.log_temperature], "lr": self.temperature_lr or self.surrogate_lr})
        self.optimizer = torch.optim.Adam(groups, lr=self.surrogate_lr)

    def _trained(self) -> list[nn.Parameter]:
        assert self.surrogate is not None
        return list(self.surrogate.parameters()) + ([self.log_temperature] if self.learn_temperature else [])

    def estimate(self, distribution, loss_fn, generator=None):
        params = distribution.parameters_by_label()
        labels = distribution.labels
        if self.surrogate is None:
            self._build(sum(p.numel() for p in params.values()) * (2 if self.logits_input else 1))
            if self.collectives is not None:  # one surrogate for all processes: rank 0's initial one
                self.collectives.broadcast_(list(self.surrogate.parameters()))
        assert self.surrogate is not None and self.optimizer is not None
        if self.learn_temperature:
            temperature = float(self.log_temperature.detach().exp())
        else:
            temperature = float(self.temperature(self.step))

        alphas = [params[label].detach().clone().requires_grad_(True) for label in labels]
        gumbels, conditionals, scores, indices = [], [], [], {}
        for label, alpha in zip(labels, alphas):
            log_p = torch.log_softmax(alpha, dim=0)
            u = torch.rand(alpha.shape, generator=generator).clamp(_TINY, 1 - 1e-7)
            z = log_p - torch.log(-torch.log(u))
            b = int(torch.argmax(z.detach()))
            # z~ ~ p(z | b): the conditional Gumbel given that b is the argmax; several draws average
            # the control variate's own noise (each is a valid z~, so the mean keeps the estimate unbiased).
            theta = log_p.exp()
            is_b = torch.zeros_like(alpha, dtype=torch.bool)
            is_b[b] = True
            draws = []
            for _ in range(self.conditional_samples):
                v = torch.rand(alpha.shape, generator=generator).clamp(_TINY, 1 - 1e-7)
                log_v = torch.log(v)
                top = -torch.log(-log_v[b])
                # 1e-12, not smaller: the gradient goes through 1/theta**2, which must stay finite in float32.
                others = -torch.log(-log_v / theta.clamp_min(1e-12) - log_v[b])
                draws.append(torch.where(is_b, top, others))
            gumbels.append(z)
            conditionals.append(torch.stack(draws))
            score = -theta.detach()
            score[b] += 1.0
            scores.append(score)
            indices[label] = b

        # Called before the surrogate runs and read after: a device computes the loss meanwhile.
        pending_loss = loss_fn(distribution.to_architecture(indices))
        loss = _loss_value(pending_loss)
        # The moving average of past losses is a constant control variate (E[score] = 0): the surrogate
        # only has to learn the residual, not the loss's level.
        baseline = 0.0 if self.baseline is None or self.baseline_decay is None else self.baseline
        if self.baseline_fade_steps is not None:
            baseline *= max(0.0, 1.0 - self.step / self.baseline_fade_steps)

        # Clamped: a label the distribution has dropped sits at -50 and would saturate the surrogate's tanh.
        log_probabilities = torch.cat([torch.log_softmax(alpha.detach(), dim=0) for alpha in alphas]).clamp_min(-10.0)

        def estimate_and_variance():
            scale = self.log_temperature.exp() if self.learn_temperature else temperature
            relaxed = torch.cat([torch.softmax(z / scale, dim=0) for z in gumbels])
            relaxed_conditional = torch.cat([torch.softmax(z / scale, dim=-1) for z in conditionals], dim=-1)
            if self.logits_input:
                relaxed = torch.cat([relaxed, log_probabilities])
                relaxed_conditional = torch.cat(
                    [relaxed_conditional, log_probabilities.expand(len(relaxed_conditional), -1)], dim=-1)
            c_z = self.surrogate(relaxed).squeeze()
            c_z_conditional = self.surrogate(relaxed_conditional).mean()
            d_c_z = torch.autograd.grad(c_z, alphas, create_graph=True, allow_unused=True)
            d_c_z_conditional = torch.autograd.grad(c_z_conditional, alphas, create_graph=True, allow_unused=True)
            estimates = []
            for alpha, score, dz, dzc in zip(alphas, scores, d_c_z, d_c_z_conditional):
                dz = torch.zeros_like(alpha) if dz is None else dz
                dzc = torch.zeros_like(alpha) if dzc is None else dzc
                estimates.append((loss - baseline - c_z_conditional) * score + dz - dzc)
            if self.surrogate_objective == "regression":  # fit the loss itself: a less noisy target than the variance
                objective = (loss - baseline - c_z_conditional) ** 2 + (loss - baseline - c_z) ** 2
            else:
                objective = sum((g ** 2).sum() for g in estimates)
            return estimates, objective, c_z_conditional

        # The estimate uses the surrogate as it was before this sample (so it stays unbiased); then the
        # surrogate takes ``surrogate_steps`` steps on this sample's variance.
        estimates, variance, c_z_conditional = estimate_and_variance()
        surrogate_loss = float(sum((g.detach() ** 2).sum() for g in estimates))
        if math.isfinite(surrogate_loss):  # a bad loss must not poison the surrogate
            for step in range(self.surrogate_steps):
                if step:
                    _, variance, _ = estimate_and_variance()
                self.optimizer.zero_grad(set_to_none=True)
                variance.backward(inputs=self._trained(), retain_graph=step + 1 < self.surrogate_steps)
                if self.collectives is not None:  # it minimises the averaged estimates' variance: one step for all
                    self.collectives.mean_([p.grad for p in self._trained() if p.grad is not None])
                self.optimizer.step()
        if self.baseline_decay is not None and math.isfinite(loss):
            losses = [loss] if self.collectives is None else self.collectives.gather_floats([loss])
            self.update_baseline(sum(losses) / len(losses))  # every process keeps the same baseline
        self.step += 1
        self.diagnostics = {
            "loss": loss, "surrogate_loss": surrogate_loss, "control_variate": float(c_z_conditional.detach()),
            "baseline": baseline,
            "temperature": temperature, "forward_evaluations": 1.0,
        }
        return {label: g.detach() for label, g in zip(labels, estimates)}

    def state_dict(self):
        return {
            "step": self.step,
            "baseline": self.baseline,
            "input_size": None if self.surrogate is None else self.surrogate[0].in_features,
            "surrogate": None if self.surrogate is None else self.surrogate.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "log_temperature": float(self.log_temperature.detach()),
        }

    def load_state_dict(self, state):
        self.step = int(state.get("step", 0))
        self.baseline = state.get("baseline")  # None in checkpoints written before the baseline existed
        if state.get("log_temperature") is not None:  # absent before the temperature could be learnt
            with torch.no_grad():
                self.log_temperature.fill_(float(state["log_temperature"]))
        if state.get("surrogate") is not None:
            self._build(int(state["input_size"]))
            assert self.surrogate is not None and self.optimizer is not None
            self.surrogate.load_state_dict(state["surrogate"])
            self.optimizer.load_state_dict(state["optimizer"])

    def hyperparameters(self):
        return {"surrogate_width": self.surrogate_width, "surrogate_lr": self.surrogate_lr,
                "temperature": self.temperature.state(), "baseline_decay": self.baseline_decay,
                "baseline_fade_steps": self.baseline_fade_steps,
                "surrogate_steps": self.surrogate_steps, "surrogate_objective": self.surrogate_objective,
                "learn_temperature": self.learn_temperature, "conditional_samples": self.conditional_samples,
                "temperature_lr": self.temperature_lr, "surrogate_init": self.surrogate_init}


class Ram(Estimator):
    """RAM (Tokui & Sato, 2016): exact marginalisation of one label at a time at a shared sample.

    For each evaluated label ``k`` the loss is computed for every candidate value with the other
    labels held at one joint sample; ``g_k[a] = p_k[a] (L(a) - sum_c p_k[c] L(c))``. With
    ``labels_per_step=m`` a random subset of ``m`` labels is evaluated and scaled by ``K/m`` (K labels
    in all), which keeps it unbiased and bounds the cost at ``1 + sum_k (A_k - 1)`` forward passes.

    Example:
        >>> import torch
        >>> from nas_estimators import ArchitectureDistribution, Ram
        >>> dist = ArchitectureDistribution({"op": ["conv", "pool", "skip"], "input": [0, 1]})
        >>> _ = torch.manual_seed(0)
        >>> grads = Ram().estimate(dist, lambda arch: float(arch["op"] == "skip"))
        >>> [round(x, 4) for x in grads["op"].tolist()], grads["input"].tolist()
        ([-0.1111, -0.1111, 0.2222], [0.0, 0.0])
    """

    name = "ram"

    def __init__(self, labels_per_step: int | None = None) -> None:
        super().__init__()
        if labels_per_step is not None:
            if isinstance(labels_per_step, bool) or int(labels_per_step) != labels_per_step or labels_per_step < 1:
                raise ValueError(f"labels_per_step: expected None or an integer >= 1, got {labels_per_step!r}")
            labels_per_step = int(labels_per_step)
        self.labels_per_step = labels_per_step

    def estimate(self, distribution, loss_fn, generator=None):
        indices = distribution.sample_indices(generator)
        shared = loss_fn(distribution.to_architecture(indices))
        labels = distribution.labels
        if self.labels_per_step is None or self.labels_per_step >= len(labels):
            chosen, scale = labels, 1.0
        else:
            order = torch.randperm(len(labels), generator=generator)[: self.labels_per_step].tolist()
            chosen, scale = [labels[i] for i in sorted(order)], len(labels) / self.labels_per_step
        probs = distribution.probs()
        # Every forward pass is queued before any loss is read (one transfer from a device).
        pending = [shared]
        for label in chosen:
            for index in range(len(probs[label])):
                if index != indices[label]:
                    pending.append(loss_fn(distribution.to_architecture({**indices, label: index})))
        values = iter(_loss_values(pending))
        shared_loss = next(values)
        gradients = {label: torch.zeros_like(p) for label, p in probs.items()}
        for label in chosen:
            p = probs[label]
            losses = torch.tensor([shared_loss if index == indices[label] else next(values) for index in range(len(p))],
                                  dtype=p.dtype)
            gradients[label] = scale * p * (losses - (p * losses).sum())
        self.diagnostics = {"loss": shared_loss, "forward_evaluations": float(len(pending))}
        return gradients

    def hyperparameters(self):
        return {"labels_per_step": self.labels_per_step}


ESTIMATORS: dict[str, type[Estimator]] = {"sf": ScoreFunction, "relax": Relax, "ram": Ram}

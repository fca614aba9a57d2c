"""The optimisation loop: fit Gaussians to posed photos."""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from engine.errors import Cancelled, InputError, StageError
from engine.events import CancelToken, EventSink, Metrics, Progress, Snapshot, null_sink
from engine.events import Warning as WarningEvent
from engine.metrics import psnr_from_mse
from engine.progress import EtaEstimator
from engine.scene import Camera, CameraRig, GaussianScene

from .config import TrainConfig
from .exposure import ExposureCorrection
from .hooks import Hook, Loss, OpacityPenalty, ScalePenalty, StepContext
from .photometric import photometric_loss
from .params import ROW_LABELS, make_optimizers, params_from_scene, scene_from_params
from .pose_refine import MIN_VIEWS, PoseRefinement
from .schedules import exponential_lr, resolution_at, sh_degree_at
from .strategy import make_strategy
from .views import TrainingViews

STAGE = "train"


@dataclass
class TrainResult:
    scene: GaussianScene
    iterations: int  # the schedule step reached (steps completed, for a run from the start)
    seconds: float
    history: list[dict] = field(default_factory=list)
    cancelled: bool = False
    eval: dict | None = None  # engine.metrics.evaluate on the eval views, when given
    exposure: torch.Tensor | None = None  # (num_images, 3, 4) colour corrections, when learned
    cameras: list[Camera] | None = None  # the training cameras with refined poses, when refinement ran
    pose_corrections_deg: list[float] | None = None  # each camera's learned rotation correction
    state: "TrainState | None" = None  # where the run stands, to continue it (``train(..., resume=state)``)


@dataclass
class TrainState:
    """A run's position on its schedule, to continue it with ``train(..., resume=state)``: the trainable
    tensors with their Adam moments, the densification strategy, the step reached, and the random streams
    (view order, dropout / densification noise). A run continued from step k0 for k steps takes the same
    steps, with the same learning rates, SH bands, resolution and densification, as steps k0..k0+k of one
    uninterrupted run with the same config.

    ``exposure`` and ``poses`` (the learned colour and pose corrections, when the config learns them) are
    carried in memory only: ``save`` writes the Gaussians, the optimisers, the step and the random streams;
    ``load`` rebuilds the strategy from the config (its gradient averages restart)."""

    params: dict
    optimizers: dict
    strategy: object
    step: int
    order: list
    order_rng: np.random.Generator
    generator: torch.Generator
    exposure: ExposureCorrection | None = None
    poses: PoseRefinement | None = None

    @classmethod
    def fresh(cls, scene: GaussianScene, config: TrainConfig, extent: float, device=None, *,
              step: int = 0) -> "TrainState":
        """A run of ``config`` starting from ``scene`` at schedule step ``step`` with fresh optimisers (for a
        scene trained elsewhere, ``step=config.iterations`` continues it at the schedules' final values)."""
        device = scene.device if device is None else torch.device(device)
        params = params_from_scene(scene.to(device), config.sh_degree)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        return cls(params, make_optimizers(params, _learning_rates(config, extent)), None, int(step), [],
                   np.random.default_rng(config.seed), generator)

    def save(self, path) -> None:
        from engine.io.atomic import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save({
            "version": 1, "step": self.step, "order": [int(i) for i in self.order],
            "order_rng": self.order_rng.bit_generator.state, "generator": self.generator.get_state(),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: _cpu_state(opt) for k, opt in self.optimizers.items()},
        }, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path, config: TrainConfig, extent: float, device="cpu") -> "TrainState":
        """The state ``save`` wrote, on ``device``, with a fresh strategy for ``config``."""
        try:
            data = torch.load(path, map_location=device, weights_only=True)
            params = {k: (torch.nn.Parameter(v.contiguous()) if k not in ROW_LABELS else v.contiguous())
                      for k, v in data["params"].items()}
            optimizers = make_optimizers(params, _learning_rates(config, extent))
            for name, opt in optimizers.items():
                opt.load_state_dict(data["optimizers"][name])
            order_rng = np.random.default_rng()
            order_rng.bit_generator.state = data["order_rng"]
            generator = torch.Generator(device=device)
            generator.set_state(data["generator"])
            step, order = int(data["step"]), [int(i) for i in data["order"]]
        except (OSError, RuntimeError, KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as e:
            raise InputError(f"cannot read the training state ({e})", path=path,
                             hint="train again; the state is written with the trained scene") from None
        return cls(params, optimizers, make_strategy(config, extent, generator), step, order, order_rng, generator)

    def scene(self) -> GaussianScene:
        return _final_scene(self.params)


def _cpu_state(opt: torch.optim.Optimizer) -> dict:
    state = opt.state_dict()
    state["state"] = {k: {n: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
                      for k, s in state["state"].items()}
    return state


def _learning_rates(config: TrainConfig, extent: float) -> dict[str, float]:
    return {
        "means": config.lr_means * extent,
        "quats": config.lr_quats,
        "log_scales": config.lr_scales,
        "opacity_logits": config.lr_opacity,
        "sh0": config.lr_sh0,
        "sh_rest": config.lr_sh0 * config.lr_sh_rest_ratio,
    }


def _background_tensor(background) -> torch.Tensor:
    bg = torch.as_tensor(background, dtype=torch.float32).reshape(-1)
    if bg.numel() != 3:
        raise InputError(f"background must be three values (r, g, b), got {tuple(bg.shape)}")
    return bg


def _final_scene(params) -> GaussianScene:
    return scene_from_params(params).clone()


def train(
    init: GaussianScene,
    cameras: Sequence[Camera],
    images: Sequence,
    config: TrainConfig | None = None,
    *,
    emit: EventSink = null_sink,
    cancel: CancelToken | None = None,
    background=(0.0, 0.0, 0.0),
    eval_cameras: Sequence[Camera] | None = None,
    eval_images: Sequence | None = None,
    scene_extent: float | None = None,
    losses: Sequence[Loss] = (),
    hooks: Sequence[Hook] = (),
    strategy=None,
    resume: TrainState | None = None,
    steps: int | None = None,
) -> TrainResult:
    """Optimise ``init`` so that renders from ``cameras`` match ``images``.

    ``losses`` and ``hooks`` (``engine.train.hooks``) add loss terms and per-step behaviour; ``strategy``
    is the densification strategy (default: the one ``config`` names, ``make_strategy``).

    The schedules (learning-rate decay, SH bands, resolution, densification) run over
    ``config.iterations`` steps. ``resume`` continues an earlier run (its ``TrainResult.state``) from the
    step it reached instead of starting from ``init`` (then ignored) at step 0; ``steps`` is how many steps
    this call takes (default: to the end of the schedule). Steps past the end keep the schedules' final
    values: the final learning rates, every SH band, full resolution, no more densification.

    On cancel, returns the scene as it is (``cancelled=True``). A non-finite loss raises
    ``StageError`` whose ``scene`` attribute holds the last good scene. ``TrainResult.iterations`` is the
    schedule step reached.
    """
    from engine.render import render

    config = (config or TrainConfig()).validate()
    if len(cameras) == 0:
        raise InputError("no training views", hint="training needs posed photos")
    if len(cameras) != len(images):
        raise InputError(f"{len(cameras)} cameras but {len(images)} images")
    if resume is not None:
        init = resume.scene()
    if len(init) == 0:
        raise InputError("the initial scene has no Gaussians", hint="initialise from points or use random_init")
    if not bool(torch.isfinite(init.means).all()):
        raise InputError("the initial scene has non-finite positions")
    if steps is not None and steps < 0:
        raise InputError(f"steps must be at least 0, got {steps}")

    with _thread_plan(config, init):
        return _train(
            render, init, list(cameras), images, config, emit, cancel, _background_tensor(background),
            eval_cameras, eval_images, scene_extent, list(losses), list(hooks), strategy, resume, steps,
        )


@contextlib.contextmanager
def _thread_plan(config: TrainConfig, init: GaussianScene):
    """A CPU run uses the cores other work leaves free (a busy machine makes oversubscribed thread pools
    crawl), chosen once for the run; a GPU run only honours an explicit ``config.threads``."""
    on_cpu = init.device.type == "cpu" and config.backend in ("auto", "cpu", "reference")
    if on_cpu:
        from engine.render.cpu_threads import training_threads

        with training_threads(config.threads):
            yield
        return
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        yield
    finally:
        if config.threads:
            torch.set_num_threads(old_threads)


def _builtin_losses(config: TrainConfig) -> list[Loss]:
    out: list[Loss] = []
    if config.opacity_reg > 0:
        out.append(OpacityPenalty(config.opacity_reg))
    if config.scale_reg > 0:
        out.append(ScalePenalty(config.scale_reg))
    return out


def _train(render, init, cameras, images, config, emit, cancel, bg, eval_cameras, eval_images, scene_extent,
           losses, hooks, strategy, resume, steps):
    start = time.perf_counter()
    views = TrainingViews(cameras, images, config.max_image_side)
    extent = float(scene_extent) if scene_extent else CameraRig(views.cameras).scene_extent()

    device = init.device
    if config.backend == "gsplat" and device.type != "cuda" and torch.cuda.is_available():
        device = torch.device("cuda")
    state = resume if resume is not None else TrainState.fresh(init, config, extent, device)
    if strategy is not None:
        state.strategy = strategy
    params, optimizers, generator = state.params, state.optimizers, state.generator
    if params["means"].device != device:
        raise InputError(f"the run to continue is on {params['means'].device}, this one trains on {device}")
    order_rng, order = state.order_rng, state.order
    if state.strategy is None:
        state.strategy = make_strategy(config, extent, generator)
    strategy = state.strategy
    bg = bg.to(device)
    losses = _builtin_losses(config) + losses
    for extension in (*losses, *hooks):
        extension.setup(views, extent, device)
    loss_emas: dict[str, float] = {}
    if resume is None and config.exposure_compensation:
        state.exposure = ExposureCorrection(len(views.cameras), config.lr_exposure, device)
    if resume is None and config.pose_refinement and len(views.cameras) < MIN_VIEWS:
        emit(WarningEvent(f"camera pose refinement needs at least {MIN_VIEWS} training photos, this job has "
                     f"{len(views.cameras)}; the cameras are kept as estimated"))
    elif resume is None and config.pose_refinement:
        state.poses = PoseRefinement(views.cameras, config.lr_pose_rotation, config.lr_pose_translation * extent,
                                     device)
    exposure, poses = state.exposure, state.poses
    pose_start = int(config.pose_refine_start * config.iterations)

    total = config.iterations  # the schedule's length
    first = state.step
    stop = first + (max(total - first, 0) if steps is None else int(steps))
    history: list[dict] = []
    loss_ema = mse_ema = None
    last_progress = last_snapshot = -math.inf
    # the ETA counts pixels, not steps: a full-resolution step rasterises 4x the pixels of a half-size one
    work = np.cumsum([0.0] + [resolution_at(s, total, config.start_resolution, config.full_resolution_at) ** 2
                              for s in range(first, stop)])
    eta = EtaEstimator()
    last_good = pending_good = None
    step = first
    cancelled = False

    def result(done: int) -> TrainResult:
        state.step = done
        return TrainResult(
            scene=_final_scene(params),
            iterations=done,
            seconds=time.perf_counter() - start,
            history=history,
            cancelled=cancelled,
            exposure=None if exposure is None else exposure.affine.detach().clone(),
            # the training cameras at full training size, whichever resolution level the last step used
            cameras=None if poses is None else poses.refined(views.cameras),
            pose_corrections_deg=None if poses is None else [float(d) for d in poses.correction_degrees()],
            state=state,
        )

    for step in range(first, stop):
        if cancel is not None:
            try:
                cancel.raise_if_cancelled()
            except Cancelled:
                cancelled = True
                break

        lr_means = exponential_lr(step, total, config.lr_means * extent, config.lr_means_final * extent)
        for group in optimizers["means"].param_groups:
            group["lr"] = lr_means
        degree = sh_degree_at(step, config.sh_degree, config.sh_interval)
        factor = resolution_at(step, total, config.start_resolution, config.full_resolution_at)
        if not order:  # the state's own list: a continued run picks up the shuffled round where it was
            order.extend(order_rng.permutation(len(views.cameras)))
        index = int(order.pop())
        target, cam = views.get(index, factor)
        target = target.to(device)

        refining_poses = poses is not None and step >= pose_start
        viewmat = None
        if refining_poses:
            poses.set_lr_scale(exponential_lr(step - pose_start, max(total - pose_start, 1), 1.0, 0.01))
            viewmat = poses.viewmat(index)
        scene = scene_from_params(params)
        for hook in hooks:
            scene = hook.transform_scene(scene, step, total, generator)
        out = render(scene, cam, sh_degree=degree, background=bg, backend=config.backend, viewmat=viewmat)
        rgb = out.rgb
        if exposure is not None:
            rgb = exposure.apply(rgb, index)
        loss, mse = photometric_loss(rgb, target, config.ssim_lambda)
        ctx = StepContext(step=step, total=total, index=index, camera=cam, target=target, result=out, rgb=rgb,
                          scene=scene, params=params, background=bg, extent=extent, sh_degree=degree,
                          backend=config.backend, views=views, factor=factor, lr_means=lr_means, _render=render)
        for term in losses:
            value = term(ctx)
            if value is None:
                continue
            loss = loss + term.weight * value
            v = float(value.detach())
            loss_emas[term.name] = v if term.name not in loss_emas else 0.9 * loss_emas[term.name] + 0.1 * v

        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            # The current parameters produced this loss; the last snapshot that was followed by a
            # finite loss is the newest scene known to be good.
            good = last_good if last_good is not None else init.clone().to("cpu")
            error = StageError(
                f"training diverged at step {step}: the loss became {loss_value}",
                hint="lower the learning rates (or pick a smaller preset) and train again; "
                "the last good scene is kept",
            )
            error.scene = good
            error.step = step
            raise error

        if pending_good is not None:
            last_good, pending_good = pending_good, None

        meta = dict(out.meta) if isinstance(out.meta, dict) else dict(vars(out.meta))
        meta["width"], meta["height"] = cam.width, cam.height
        strategy.step_pre_backward(params, optimizers, meta, step)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        if exposure is not None:
            exposure.step()
        if refining_poses:
            poses.step(index)
        strategy.step_post_backward(params, optimizers, meta, step, lr_means)
        for hook in hooks:
            hook.after_step(ctx)

        loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
        mse_ema = mse if mse_ema is None else 0.9 * mse_ema + 0.1 * mse
        done = step + 1
        n = int(params["means"].shape[0])
        if done % config.metrics_every == 0 or done == stop:
            values = {"loss": loss_ema, "psnr": psnr_from_mse(mse_ema), "num_gaussians": n,
                      "intersections": int(getattr(out.meta, "n_isects", 0) or 0),
                      "sh_degree": degree, "resolution": factor, "seconds": time.perf_counter() - start,
                      **{f"loss/{name}": value for name, value in loss_emas.items()}}
            history.append({"step": done, **values})
            emit(Metrics(done, values))
        now = time.perf_counter()
        if now - last_progress >= config.progress_every_s or done == stop:
            last_progress = now
            left = eta.update(float(work[done - first]), float(work[-1]), now)
            emit(Progress(
                STAGE, done - first, stop - first,
                f"step {done - first}/{stop - first}  loss {loss_ema:.4f}  PSNR {psnr_from_mse(mse_ema):.2f} dB  "
                f"{n:,} Gaussians",
                eta_seconds=left, estimating=left is None and done < stop,
            ))
        if now - last_snapshot >= config.snapshot_every_s:
            last_snapshot = now
            pending_good = _final_scene(params).to("cpu")
            emit(Snapshot(pending_good, done))
    else:
        step = stop

    res = result(step)
    if eval_cameras is not None and eval_images is not None and not cancelled:
        from engine.metrics import evaluate

        res.eval = evaluate(res.scene, eval_cameras, eval_images, background=bg, backend=config.backend)
        emit(Metrics(res.iterations, {"test_psnr": res.eval["psnr"], "test_ssim": res.eval["ssim"]}))
    res.seconds = time.perf_counter() - start
    return res


__all__ = ["train", "TrainResult", "TrainState"]

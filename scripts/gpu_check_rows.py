"""The rows of ``scripts/gpu_check.py`` (see its docstring): each takes the run's ``Context`` and returns its table
lines."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from vitkit import create_model
from vitkit.bench.gpu import Timing, synchronize, timed, train_flops_per_image
from vitkit.bench.hf_pairs import PAIRS, HFPair, detection_batch
from vitkit.bench.sdpa import BACKENDS, kernels_run, refusals
from vitkit.models import is_model

CIFAR_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vit" / "cifar10.yaml"
MFU_GOAL, RATIO_GOAL = 50.0, 1.5  # issue 13's goals: % of peak (compiled ViT-B/16), vitkit / Hugging Face


@dataclass(frozen=True)
class Sizes:
    """What each row runs: the full models on a GPU, tiny presets in the dry run."""

    vit: tuple[tuple[str, str, int, int], ...]  # (check, preset, batch, image size)
    cvt: tuple[str, int, int]  # preset, batch, image size
    detr: tuple[str, int, int]
    rtdetr: tuple[str, int, int]
    sampler: tuple[str, int]  # preset, batch
    cifar: tuple[str, int, int, int]  # model override ("" = the config's), batch ("0" = the config's), steps, skip
    steps: int  # timed steps at most per measurement
    warmup: int
    budget_s: float  # timed seconds at most per measurement
    sample_budget_s: float  # seconds at most per full sampling run
    compile_backend: str


@dataclass
class Line:
    """One table line. ``vitkit``/``reference`` are numbers, or text for backends; ``extra`` goes to the JSON."""

    check: str
    model: str
    measure: str
    vitkit: float | str | None
    reference: float | str | None = None
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if isinstance(self.vitkit, float | int) and isinstance(self.reference, float | int) and self.reference:
            return self.vitkit / self.reference
        return None


@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    peak: float | None  # dense bf16 TFLOP/s
    peak_note: str
    dry_run: bool
    failed: list[str] = field(default_factory=list)  # the lines that failed, for the exit status

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def guarded(self, check: str, model: str, measure: Callable[[], list[Line]]) -> list[Line]:
        """``measure()``'s lines, or one FAILED line with the error: one broken measurement must not cost the
        others their (scarce) GPU time."""
        try:
            return measure()
        except Exception as e:
            traceback.print_exc()
            self.failed.append(check)
            _free(self.device)
            return [Line(check, model, "FAILED", None, notes=" ".join(f"{type(e).__name__}: {e}".split())[:300])]


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _gib(t: Timing) -> str:
    return "n/a (CUDA only)" if t.peak_memory_gib is None else f"{t.peak_memory_gib:.2f} GiB"


# ---------------------------------------------------------------------------------------------------- SDPA backends
def _families(ctx: Context) -> list[tuple[str, str, Callable[[], object]]]:
    """(label, preset, a bf16 training forward of batch 2) per family; the sampler also as a cached decoding step."""
    dev, sz = ctx.device, ctx.sizes
    vit, cvt, detr = (create_model(p, img_size=s) if p.startswith("vit") else create_model(p)
                      for p, s in ((sz.vit[0][1], sz.vit[0][3]), (sz.cvt[0], 0), (sz.detr[0], 0)))
    gen = create_model(sz.sampler[0])
    for m in (vit, cvt, detr, gen):
        m.to(dev).train()
    image = {m: torch.randn(2, 3, s, s, device=dev) for m, s in ((vit, sz.vit[0][3]), (cvt, sz.cvt[2]))}
    det = detection_batch(2, sz.detr[2], 2, device=dev)
    c = gen.config
    pixels = torch.randint(0, 256, (2, c.in_chans, c.img_size, c.img_size), dtype=torch.uint8, device=dev)
    step = _decoding_step(gen, dev)
    return [("ViT train forward", sz.vit[0][1], lambda: vit(image[vit])),
            ("CvT train forward", sz.cvt[0], lambda: cvt(image[cvt])),
            ("DETR train forward (padding mask)", sz.detr[0], lambda: detr(det["images"], det["mask"])),
            ("Image Transformer train forward", sz.sampler[0], lambda: gen(pixels)),
            ("Image Transformer cached sampling step", sz.sampler[0], step)]


def _decoding_step(gen, device: torch.device):
    """A callable running the next cached decoding step each call, from position 300 on (or half-way through a
    shorter sequence), where the cache holds a few hundred keys."""
    caches, prev = gen.init_caches(), torch.zeros(2, dtype=torch.long, device=device)
    position = [min(300, gen.seq_len // 2)]
    with torch.no_grad():
        for t in range(position[0]):
            gen.step(prev, t, caches)

    def step():
        with torch.no_grad():
            gen.step(prev, position[0], caches)
        position[0] += 1

    return step


def sdpa_rows(ctx: Context) -> list[Line]:
    lines = []
    for label, preset, forward in _families(ctx):
        def fn(forward=forward):
            with ctx.autocast():
                return forward()

        ran, refused = kernels_run(fn), refusals(fn)
        marks = " ".join(f"{b} {'✓' if refused[b] is None else '✗'}" for b in BACKENDS)
        fused = "fused ✓" if refused["fused"] is None else f"fused ✗ (FINDING: runs on math): {refused['fused']}"
        kernels = ", ".join(f"{k}×{n}" for k, n in sorted(ran.items())) or "none (no SDPA call)"
        lines.append(Line("SDPA backend", preset, label, kernels, notes=f"alone: {marks}; {fused}",
                          extra={"kernels": dict(ran), "refusals": refused}))
    _free(ctx.device)
    return lines


# ---------------------------------------------------------------------------------------------------- ViT MFU
def _train_classifier(ctx: Context, preset: str, batch: int, size: int, *, compiled: bool) -> tuple[Timing, dict]:
    """bf16-mixed training steps of a fresh ``preset``; with the graphs and graph breaks ``torch.compile`` met."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    dev = ctx.device
    torch.manual_seed(0)
    model = create_model(preset, img_size=size).to(dev).train()
    if compiled:
        torch._dynamo.reset()
        counters.clear()
        model.compile(backend=ctx.sizes.compile_backend)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=dev.type == "cuda")
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, model.num_classes, (batch,), device=dev)

    def step() -> None:
        with ctx.autocast():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = timed(step, dev, warmup=ctx.sizes.warmup + 2 * compiled, steps=ctx.sizes.steps, budget_s=ctx.sizes.budget_s)
    breaks = counters["graph_break"]
    dynamo = {"graphs": counters["stats"]["unique_graphs"], "graph_breaks": sum(breaks.values()),
              "break_reasons": [r.splitlines()[0][:100] for r in sorted(breaks)[:3]]} if compiled else {}
    return t, dynamo  # the model and optimiser go with this frame: the caller frees the cache


def _vit_lines(ctx: Context, check: str, preset: str, batch: int, size: int, compiled: bool, flops: float,
               eager_img_s: float | None) -> list[Line]:
    t, dynamo = _train_classifier(ctx, preset, batch, size, compiled=compiled)
    _free(ctx.device)
    img_s = t.per_second(batch)
    notes = f"batch {batch}, {size}², {t.steps} steps, warm-up {t.warmup_s:.1f} s, peak {_gib(t)}"
    if compiled:
        breaks = dynamo["graph_breaks"]
        notes += (f"; backend {ctx.sizes.compile_backend}, {dynamo['graphs']} graph(s), {breaks} graph break(s)"
                  + (f" {dynamo['break_reasons']}" if breaks else ""))
    mfu = 100 * img_s * flops / 1e12 / ctx.peak if ctx.peak else None
    return [Line(check, preset, "train img/s (ref: eager)", img_s, eager_img_s, notes,
                 extra={"timing": t.__dict__, **dynamo}),
            Line(check, preset, "MFU % (ref: goal)", mfu, MFU_GOAL,
                 f"{flops / 1e9:.3g} GFLOP per training image; {ctx.peak_note}")]


def vit_rows(ctx: Context) -> list[Line]:
    lines = []
    for name, preset, batch, size in ctx.sizes.vit:
        flops = train_flops_per_image(create_model(preset, img_size=size), (3, size, size))
        eager = None
        for compiled in (False, True):
            check = f"{name} bf16 {'compile' if compiled else 'eager'}"
            new = ctx.guarded(check, preset, partial(_vit_lines, ctx, check, preset, batch, size, compiled, flops,
                                                     eager))
            lines += new
            eager = new[0].vitkit if not compiled and isinstance(new[0].vitkit, float) else eager
    return lines


# ---------------------------------------------------------------------------------------------------- vitkit vs HF
def _time_side(ctx: Context, pair: HFPair, side: int, mode: str, batch: dict) -> Timing:
    dev = ctx.device
    model = (pair.ours, pair.theirs)[side]
    model.train(mode == "train")
    if mode == "train":
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=dev.type == "cuda")

        def step() -> None:
            with ctx.autocast():
                loss = pair.loss[side](batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        def step() -> None:
            with torch.inference_mode(), ctx.autocast():
                pair.output[side](batch)

    t = timed(step, dev, warmup=ctx.sizes.warmup, steps=ctx.sizes.steps, budget_s=ctx.sizes.budget_s)
    _free(dev)
    return t


def _max_diff(pair: HFPair, batch: dict) -> float:
    pair.ours.eval()
    pair.theirs.eval()
    with torch.no_grad():
        return (pair.output[0](batch).float() - pair.output[1](batch).float()).abs().max().item()


def _pair_lines(ctx: Context, check: str, family: str, preset: str, n: int, size: int) -> list[Line]:
    pair = PAIRS[family](preset).to(ctx.device)
    batch = pair.batch(n, size, ctx.device)
    diff = _max_diff(pair, batch)
    model = f"{preset} / {type(pair.theirs).__name__}"
    lines = []
    for mode in ("train", "infer"):
        ours, theirs = (_time_side(ctx, pair, side, mode, batch) for side in (0, 1))
        notes = f"batch {n}, {size}², bf16; steps {ours.steps}/{theirs.steps}; goal ≥ {RATIO_GOAL}×"
        lines.append(Line(check, model, f"{mode} img/s (ref: HF)", ours.per_second(n), theirs.per_second(n),
                          notes + (f"; largest output difference (fp32) {diff:.1e}" if mode == "train" else ""),
                          extra={"vitkit": ours.__dict__, "hf": theirs.__dict__, "max_abs_diff": diff}))
        lines.append(Line(check, model, f"{mode} peak GiB added (ref: HF)", ours.peak_memory_gib,
                          theirs.peak_memory_gib, "CUDA only" if ctx.device.type != "cuda" else ""))
    return lines


def pair_rows(ctx: Context) -> list[Line]:
    lines = []
    for check, family, (preset, n, size) in (("CvT-13 vs HF", "cvt", ctx.sizes.cvt),
                                             ("DETR-R50 vs HF", "detr", ctx.sizes.detr),
                                             ("RT-DETR-R50vd vs HF", "rtdetr", ctx.sizes.rtdetr)):
        # RT-DETR HOOK: rtdetr_r50vd (dry run: the preset in DRY.rtdetr) against Hugging Face's RT-DETR through
        # vitkit.bench.hf_pairs.PAIRS["rtdetr"]; a family without a preset or pairing prints why it is skipped.
        if family not in PAIRS or not is_model(preset) or (family == "rtdetr" and not is_model("rtdetr_r50vd")):
            lines.append(Line(check, preset, "skipped", None, notes=f"not yet: no {preset!r} preset in vitkit.models "
                              f"or no PAIRS[{family!r}] in vitkit.bench.hf_pairs"))
            continue
        torch.manual_seed(0)
        lines += ctx.guarded(check, preset, partial(_pair_lines, ctx, check, family, preset, n, size))
        _free(ctx.device)
    return lines


# ---------------------------------------------------------------------------------------------------- sampling
def _cached_step_s(ctx: Context, model, n: int, steps: int = 48) -> float:
    """Seconds per cached decoding step of a batch of ``n`` (the first few steps warm up)."""
    caches, prev = model.init_caches(), torch.zeros(n, dtype=torch.long, device=ctx.device)
    steps = min(steps, model.seq_len)
    warm = steps // 4
    with torch.no_grad(), ctx.autocast():
        for t in range(steps):
            if t == warm:
                synchronize(ctx.device)
                start = time.perf_counter()
            model.step(prev, t, caches)
    synchronize(ctx.device)
    return (time.perf_counter() - start) / (steps - warm)


def _uncached_estimate_s(ctx: Context, model, n: int, bins: int = 8) -> float:
    """Seconds to sample without the cache, estimated as a midpoint sum: the prefix forward timed at ``bins``
    lengths, each standing for ``seq_len / bins`` steps."""
    N = model.seq_len
    seq = torch.zeros(n, N, dtype=torch.long, device=ctx.device)  # (B, N)
    total = 0.0
    with torch.no_grad(), ctx.autocast():
        model.forward_sequence(seq[:, : N // bins])  # warm-up
        for i in range(bins):
            length = min(N, int((i + 0.5) * N / bins) + 1)
            synchronize(ctx.device)
            start = time.perf_counter()
            model.forward_sequence(seq[:, :length])
            synchronize(ctx.device)
            total += (time.perf_counter() - start) * N / bins
    return total


def _sample_s(ctx: Context, model, n: int, *, use_cache: bool) -> tuple[float, torch.Tensor]:
    from vitkit.models.sampling import sample

    synchronize(ctx.device)
    start = time.perf_counter()
    with ctx.autocast():
        images = sample(model, n, generator=torch.Generator().manual_seed(0), use_cache=use_cache)
    synchronize(ctx.device)
    return time.perf_counter() - start, images


def sampling_rows(ctx: Context) -> list[Line]:
    preset, n = ctx.sizes.sampler
    torch.manual_seed(0)
    model = create_model(preset).to(ctx.device).eval()
    c = model.config
    step_s = _cached_step_s(ctx, model, n)
    estimates = {True: step_s * model.seq_len, False: _uncached_estimate_s(ctx, model, n)}
    seconds, how, images = {}, {}, {}
    for use_cache in (True, False):
        if estimates[use_cache] <= ctx.sizes.sample_budget_s:
            seconds[use_cache], images[use_cache] = _sample_s(ctx, model, n, use_cache=use_cache)
            how[use_cache] = "measured"
        else:
            seconds[use_cache], how[use_cache] = estimates[use_cache], "estimated"
    same = (f"{100 * (images[True] == images[False]).float().mean().item():.1f}% of sub-pixels equal"
            if len(images) == 2 else "images not compared (estimate)")
    notes = (f"batch {n}, {model.seq_len} steps, bf16; cached {how[True]} ({1e3 * step_s:.2f} ms/step), uncached "
             f"{how[False]}; {same}")
    del model
    _free(ctx.device)
    return [Line("Image Transformer sampling", preset,
                 f"{c.in_chans}×{c.img_size}×{c.img_size} img/s cached (ref: uncached)", n / seconds[True],
                 n / seconds[False], notes, extra={"seconds": {str(k): v for k, v in seconds.items()},
                                                   "estimates": {str(k): v for k, v in estimates.items()}})]


# ---------------------------------------------------------------------------------------------------- CIFAR pipeline
def cifar_rows(ctx: Context) -> list[Line]:
    import yaml

    from vitkit.bench.pipeline import fit_throughput

    model, batch, steps, skip = ctx.sizes.cifar
    config = yaml.safe_load(CIFAR_CONFIG.read_text())
    batch = batch or config["data"]["batch_size"]
    model = model or config["model"]["init_args"]["model"]
    workers = 0 if ctx.dry_run else min(4, os.cpu_count() or 1)  # what `vitkit fit` gives CIFAR-10
    with tempfile.TemporaryDirectory() as tmp:
        args = ["-c", str(CIFAR_CONFIG), "--model.init_args.model", model, "--data.dataset", "fake",
                "--data.batch_size", str(batch), "--data.fake_samples", str(2 * batch * steps),
                "--data.num_workers", str(workers), "--trainer.max_steps", str(steps),
                "--trainer.precision", "bf16-mixed", "--trainer.logger", "false",
                "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--trainer.limit_val_batches", "0",
                "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", tmp]
        fed = {feed: fit_throughput(args, feed=feed, skip=skip, budget_s=4 * ctx.sizes.budget_s)
               for feed in ("pipeline", "repeated")}
    pipe, ceiling = fed["pipeline"], fed["repeated"]
    bound = "input pipeline" if pipe.images_per_s < 0.9 * ceiling.images_per_s else "model"
    _free(ctx.device)
    return [Line("CIFAR-10 input pipeline", model, "train img/s: pipeline (ref: one batch repeated)",
                 pipe.images_per_s, ceiling.images_per_s,
                 f"{CIFAR_CONFIG.name}: batch {batch}, augment {config['data']['augment']}, {workers} workers, "
                 f"bf16-mixed, {pipe.steps}/{ceiling.steps} timed steps; bound by: {bound}",
                 extra={"pipeline": pipe.__dict__, "repeated": ceiling.__dict__, "bound_by": bound}),
            Line("CIFAR-10 input pipeline", model, "GPU utilisation % (ref: one batch repeated)",
                 pipe.gpu_utilisation, ceiling.gpu_utilisation,
                 "CUDA only (torch.cuda.utilization or nvidia-smi)" if ctx.device.type != "cuda" else "")]

"""The training loop: a Trainer takes a prepared Run (runs.py) and trains it, one window at a time.

    while nothing says stop (schedule.Budget's reasons, Ctrl-C):
        x, y  <- the next window of every stream (batching.Windows)
        lr    <- the schedule at this step and fraction of the budget
        loss  <- forward with the carried state, backward, clip, AdamW step   (train_step)
        every 10 steps: the mean training loss and, under torchrun, the ranks agree on time and stop
        when due: evaluate, record, save best.pt and last.pt                  (evaluate_and_save)

The hidden state is carried from window to window and detached (truncated BPTT); it is reset when
the streams restart at an epoch boundary.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

import torch

from ..errors import CharrnnError, UsageError
from ..model import checkpoint as ckpt_io
from ..model.cells import State
from ..model.network import CharRNN, detach_state, grown_state, select_state
from ..model.runtime import autocast, autocast_dtype
from ..scoring.evaluation import evaluate, read_overhead
from ..scoring.metrics import EvalRecord, Loss, bits
from ..text.data import Vocab
from . import distributed as dist_
from .averaging import WeightAverage
from .batching import Windows
from .config import STREAMS
from .distributed import World
from .optim import make_optimizer
from .run_state import Progress, Reporter, RunFiles, StopFlag, TrainResult, rng_state, set_rng_state
from .runs import Run, make_run_dir
from .schedule import BatchRamp, Budget, Cadence, Watching, get_schedule

SYNC_EVERY = 10  # steps between host syncs (the training loss; under torchrun, time and stop requests)


class Trainer:
    """Trains one Run: the model, its optimizer and loss scaler, the data position and the run's records.

    Under torchrun every rank holds a Trainer; rank 0 alone writes files, and every decision that
    depends on a clock or a signal uses values the ranks agreed on (see agree()).
    """

    def __init__(self, run: Run, reporter: Reporter, world: World, sample_length: int = 200, plot: bool = False):
        cfg, device = run.cfg, run.device
        self.run, self.cfg, self.device, self.world, self.rep = run, cfg, device, world, reporter
        self.sample_length, self.plot = sample_length, plot
        self.vocab = Vocab.from_record(run.record)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # the data order's own generator
        self.model = CharRNN(run.model_config, counts=run.counts).to(device)
        if run.init_weights is not None:  # --init: the base's weights, not a fresh initialisation
            self.model.load_state_dict(run.init_weights)
        if world.parallel:
            torch.manual_seed(cfg.seed + 1 + world.rank)  # same initial weights, but each rank its own dropout masks
        self.opt = make_optimizer(self.model, cfg, device, self.model.cell.gates)
        self.amp_dtype = autocast_dtype(cfg.precision, device, run.model_config.cell)
        # fp16 needs its loss scaled so small gradients do not flush to zero; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(device.type) if self.amp_dtype == torch.float16 else None
        self.fwd = self._forward_module()
        self.average = WeightAverage(self.model, cfg.ema) if cfg.ema else None
        self.prog = Progress(elapsed=run.sizing_seconds)
        self.files = RunFiles(run.out, world.main)
        self.stop = StopFlag()
        self.metrics: list[dict] = []
        self.carried: State | None = None
        if run.prev is not None:
            self._restore(run.prev)
        self.ramp = BatchRamp(cfg.batch_ramp, cfg.batch_size) if cfg.batch_ramp else None
        # This rank's streams; it owns a contiguous block of the world's. Under --batch-ramp the budget's horizon
        # and cadence are planned at the streams the ramp ends with.
        self.windows = Windows(run.corpus.train, cfg.batch_size, cfg.seq_len, world.rank, world.size, device)
        self.budget = Budget.of(cfg.steps, cfg.epochs, cfg.time_budget, cfg.patience, self.windows.steps_per_epoch)
        self.cadence = Cadence.of(cfg.eval_every, self.budget, self.windows.steps_per_epoch)
        self.watching = Watching.of(self.budget, self.cadence)
        self._keep_final_reserve()  # a resumed run planned it already
        self.best_weights: dict | None = None  # under --time, for the whole split's score at the end
        self.drawn_at = -1  # the step loss.png was last drawn at
        self.schedule = get_schedule(cfg.schedule, cfg.lr, cfg.warmup, cfg.min_lr_frac)
        if self.ramp is not None:
            self.windows.rows = self.prog.streams or cfg.batch_ramp  # a new run starts at the ramp's first streams
        # The clock every decision reads: under torchrun the slowest rank's, agreed every SYNC_EVERY steps.
        self.agreed_elapsed, self.agreed_stop = self.prog.elapsed, ""
        self.timed_chars, self.timed_seconds = 0, 0.0
        self._lapped = time.perf_counter()  # see lap()
        self.loss_sum, self.loss_steps = torch.zeros((), device=device), 0

    def _forward_module(self):
        """The module the training forward pass calls: DDP under torchrun, compiled on request. Its weights are
        the model's: save and evaluate `model`."""
        fwd = self.model
        if self.world.parallel:
            from torch.nn.parallel import DistributedDataParallel

            fwd = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return torch.compile(fwd) if self.cfg.compile else fwd

    def _restore(self, prev: dict) -> None:
        """Continue exactly where last.pt stopped: weights, optimizer, scaler, progress, RNGs, carried state."""
        world = self.world
        self.model.load_state_dict(prev["model"])
        self.opt.load_state_dict(prev["optimizer"])
        if self.scaler is not None and prev.get("scaler"):
            self.scaler.load_state_dict(prev["scaler"])
        self.prog = Progress(**prev["progress"])
        self.prog.stopped = ""
        self.metrics = list(prev.get("metrics", []))
        if self.average is not None and prev.get("ema"):
            self.average.load_state_dict(prev["ema"])
        saved_world = prev.get("world", 1)
        if saved_world != world.size:
            raise UsageError(f"--resume: the run was trained by {saved_world} process(es); resume it with as many "
                             f"(torchrun --nproc_per_node={saved_world}), since each owns its streams' state")
        set_rng_state(self.gen, prev.get("rng_ranks", [prev["rng"]])[world.rank])
        saved = prev.get("state")
        if saved:
            self.carried = self.model.cell.pack([s.to(self.device, torch.float32) for s in saved])  # older runs saved half
            if world.parallel:  # the saved state holds every rank's streams
                rows = self.prog.streams_now(self.cfg.batch_size)
                mine = torch.arange(world.rank * rows, (world.rank + 1) * rows, device=self.device)
                self.carried = select_state(self.carried, mine)

    # -- the clock and the budget ------------------------------------------------------------

    def clock(self) -> float:
        return self.agreed_elapsed if self.world.parallel else self.prog.elapsed

    def fraction(self) -> float | None:
        return self.budget.fraction(self.prog.step, self.clock())

    def lr(self) -> float:
        lr = self.schedule.lr(self.prog.step, self.fraction(), self.prog.lr_scale)
        return lr if self.ramp is None else lr * self.ramp.lr_factor(self.windows.rows * self.world.size, STREAMS)

    @property
    def window_chars(self) -> int:
        """Characters a step reads over all ranks."""
        return self.windows.rows * self.world.size * self.cfg.seq_len

    def lap(self) -> float:
        """Wall seconds since the last lap. Training time is counted lap by lap, so whatever the host waits for
        (a GPU's queued steps at the sync, reporting) is counted too, and only evaluations count themselves."""
        now = time.perf_counter()
        seconds, self._lapped = now - self._lapped, now
        return seconds

    def _count(self, seconds: float) -> None:
        self.prog.elapsed += seconds
        self.timed_seconds += seconds

    def chars_per_s(self) -> float:
        return self.timed_chars / self.timed_seconds if self.timed_seconds > 0 else 0.0

    def stop_reason(self, stop: StopFlag) -> str:
        requested = self.agreed_stop if self.world.parallel else stop.requested
        return self.budget.stop_reason(self.prog.step, self.clock(), self.prog.bad_evals) or requested

    # -- one step ----------------------------------------------------------------------------

    def train_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """Forward from the carried state, backward, clip the global gradient norm, optimizer step; the loss (on device)."""
        for g in self.opt.param_groups:
            g["lr"] = lr
        with autocast(self.device, self.amp_dtype):
            nll, self.carried = self.fwd(x, self.carried, y)
        loss = nll.mean()
        self.opt.zero_grad(set_to_none=True)
        params = self.model.parameters()
        if self.scaler is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip)
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            parts = getattr(self.opt, "parts", [self.opt])  # optim.Combined: the scaler sees each optimiser
            for part in parts:
                self.scaler.unscale_(part)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(params, self.cfg.clip)
            for part in parts:
                self.scaler.step(part)
            self.scaler.update()
        if self.average is not None:
            self.average.update()
        self.carried = detach_state(self.carried)
        return loss.detach()

    def agree(self, stop: StopFlag) -> None:
        """The host sync of every SYNC_EVERY steps: the mean training loss over all ranks and, under torchrun,
        the slowest rank's clock and any rank's stop request, so that all ranks decide alike."""
        self._reduce_train_loss()
        if self.world.parallel:
            slowest, asked = dist_.all_max(self.world, [self.prog.elapsed, float(bool(stop.requested))], self.device)
            self.agreed_elapsed = slowest
            self.agreed_stop = stop.requested or ("interrupted" if asked else "")

    def _reduce_train_loss(self) -> None:
        """The mean loss of the steps since the last sync, over all ranks, into Progress (a host sync)."""
        total, count = dist_.all_sum(self.world, [float(self.loss_sum), self.loss_steps], self.device)
        self.prog.train_loss = total / count
        self.loss_sum.zero_()
        self.loss_steps = 0
        if not math.isfinite(self.prog.train_loss):  # every rank sees the same sum: all stop here
            raise CharrnnError(
                f"training diverged: the training loss is {self.prog.train_loss} at step {self.prog.step:,}; the "
                f"checkpoints in {self.run.out} are the last ones with a finite loss. Train again with a lower --lr "
                "or --clip, in --precision fp32, without --compile")

    # -- evaluation and checkpoints ------------------------------------------------------------

    def validation_loss(self, max_chars: int | None) -> Loss | None:
        """The loss on up to max_chars of the validation split (None without one), each rank scoring its shard."""
        val = self.run.corpus.val
        if len(val) < 2:
            return None
        mine = evaluate(self.model, val, self.device, max_chars=max_chars, shard=(self.world.rank, self.world.size),
                        scored_below=self.vocab.text_size)  # labels are given, not scored: nats per character
        return Loss(*dist_.all_sum(self.world, [mine.nll, mine.count], self.device))

    def whole_val_chars(self) -> int:
        """Validation characters a whole-split evaluation scores: all of them, up to --eval-chars."""
        val = len(self.run.corpus.val)
        return min(val - 1, self.cfg.eval_chars or val)

    def val_chars(self) -> int | None:
        """Validation characters an evaluation scores: --eval-chars, or under --time the fixed sample (schedule.Watching),
        sized once from the speed of a first, small one (the ranks' mean speed under torchrun)."""
        whole = self.whole_val_chars()
        if not self.watching.seconds or whole < 1:
            return self.cfg.eval_chars
        if not self.prog.val_sample:
            rates, overhead = [], read_overhead(len(self.run.corpus.val) - 1)
            for _ in range(2):  # the first also pays for warming up (allocations, kernel choice): the faster counts
                t0 = time.perf_counter()
                probe = self.validation_loss(Watching.PROBE_CHARS)
                rates.append((probe.count + overhead) / max(time.perf_counter() - t0, 1e-6))  # characters read
            rate = dist_.all_sum(self.world, [max(rates)], self.device)[0] / self.world.size
            self.prog.val_sample, self.prog.final_chars = self.watching.plan(rate, whole, overhead)
            if self.prog.final_chars > self.prog.val_sample:  # the end will score more: keep its time from training
                self.prog.final_reserve = (self.prog.final_chars + overhead) / rate
                self._keep_final_reserve()
        return self.prog.val_sample

    def _keep_final_reserve(self) -> None:
        """Shorten the time budget by the seconds the end's whole-split score was planned to take (Progress)."""
        if self.budget.seconds and self.prog.final_reserve:
            self.budget = replace(self.budget, seconds=self.cfg.time_budget - self.prog.final_reserve)

    def evaluate_and_save(self, final: bool = False) -> EvalRecord:
        """Score the validation split (or its fixed sample), record it, save last.pt (and best.pt when it improved),
        show a sample and draw loss.png (these two while the budget's share for watching allows, and at the end)."""
        t0 = time.perf_counter()
        p = self.prog
        chars = self.val_chars()
        record = EvalRecord.make(step=p.step, epoch=p.epoch, chars_seen=p.chars_seen, elapsed=p.elapsed,
                                 train_loss=p.train_loss, lr=self.lr(), chars_per_s=self.chars_per_s(),
                                 val=self.validation_loss(chars), ema_val=self._averaged_validation_loss(chars))
        best = record.best_val_loss
        improved = best is None or best < p.best_val  # without validation, the newest is best
        p.lr_scale = self.schedule.after_evaluation(improved, self.fraction(), p.lr_scale)
        if improved:
            p.best_val, p.best_step, p.bad_evals = (math.nan if best is None else best), p.step, 0
        else:
            p.bad_evals += 1
        self.metrics.append(record.to_dict())
        self.files.write_metrics(self.metrics, append=record)
        self._save_checkpoints(improved, record.ema_is_better)
        extras = final or self.watching.extras_due(p.watch_s, p.elapsed)
        if extras:
            self._draw()
        sample = self._sample() if extras and self.sample_length and self.world.main else ""
        self._watched(time.perf_counter() - t0)
        if self.rep.evaluation(record, sample) is False and not self.stop.requested:
            self.stop.requested = "stopped"  # the API's on_eval said so: stop as Ctrl-C stops
        return record

    def _draw(self) -> None:
        if self.plot:
            self.files.draw(self.metrics)
        self.drawn_at = self.prog.step

    def _watched(self, seconds: float) -> None:
        self.prog.elapsed += seconds
        self.prog.watch_s += seconds

    def _save_checkpoints(self, improved: bool, averaged_better: bool) -> None:
        """last.pt; best.pt too when the evaluation improved (the averaged weights when they scored better), whose
        weights are kept in memory under --time for the whole split's score at the end."""
        snapshot = self.payload()
        if improved and averaged_better:
            with self.average.swapped_in():  # best.pt holds the averaged weights; last.pt the trained ones
                best = dict(snapshot, model=self.model.state_dict(), averaged=True)
        else:
            best = snapshot
        if improved:
            self.files.save("best.pt", best)
            if self.watching.seconds:
                self.best_weights = {k: v.detach().clone() for k, v in best["model"].items()}
        self.files.save("last.pt", snapshot)

    def _averaged_validation_loss(self, chars: int | None) -> Loss | None:
        if self.average is None:
            return None
        with self.average.swapped_in():
            return self.validation_loss(chars)

    def _sample(self) -> str:
        from ..writing.sample import generate_text

        return generate_text(self.model, self.vocab, prime="", length=self.sample_length, temperature=0.8,
                             seed=self.cfg.seed, device=self.device)

    def payload(self) -> dict:
        """The checkpoint; a collective under torchrun (every rank's RNG and carried state go into it)."""
        rngs = dist_.gather(self.world, rng_state(self.gen))
        # Under autocast the carried state is half precision; checkpoints hold it in fp32, which any precision resumes.
        carried = None if self.carried is None else [s.detach().float().cpu() for s in self.model.cell.unpack(self.carried)]
        states = dist_.gather(self.world, carried)
        state = None if states[0] is None else [torch.cat(parts, dim=1) for parts in zip(*states, strict=True)]
        return dict(self.run.record, model=self.model.state_dict(), optimizer=self.opt.state_dict(),
                    progress=asdict(self.prog), metrics=self.metrics, rng=rngs[0], rng_ranks=rngs, world=self.world.size,
                    state=state, scaler=self.scaler.state_dict() if self.scaler is not None else None,
                    ema=self.average.state_dict() if self.average is not None else None)

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Announce the run and make its directory; nothing is written before every check has passed."""
        run, cfg = self.run, self.cfg
        self.rep.start({
            "device": str(self.device), "threads": torch.get_num_threads(),
            "precision": str(self.amp_dtype or torch.float32).removeprefix("torch."),
            "params": self.model.num_params(), "vocab_size": len(self.vocab), "train_chars": len(run.corpus.train),
            "val_chars": len(run.corpus.val), "config": cfg, "model_config": run.model_config,
            "steps_per_epoch": self.windows.steps_per_epoch, "horizon_steps": self.budget.steps,
            "resumed_at": self.prog.step if run.prev is not None else None, "out": str(run.out),
        })
        if self.world.main:
            make_run_dir(run.out)
            self.files.write_metrics(self.metrics)

    def fit(self) -> TrainResult:
        """Train until the budget is spent, patience runs out, or a signal asks to stop; then record the end."""
        self.start()
        p = self.prog
        last_eval = p.elapsed
        self.model.train()
        self.lap()
        with self.stop as stop:
            try:
                while True:
                    p.stopped = self.stop_reason(stop)
                    if p.stopped:
                        break
                    xy, restarted, grew = self.windows.next(p, self.gen,
                                                            self.ramp.streams(self.fraction()) if self.ramp else None)
                    if restarted:
                        self.carried = None  # the streams restart, so does their state
                    elif grew:
                        self.carried = grown_state(self.carried)
                    lr = self.lr()
                    self.loss_sum += self.train_step(xy[:, :-1], xy[:, 1:], lr)
                    self.loss_steps += 1
                    p.step, p.window, p.chars_seen = p.step + 1, p.window + 1, p.chars_seen + self.window_chars
                    self.timed_chars += self.window_chars
                    self._count(self.lap())  # the step as queued: all of it on a CPU
                    if self.loss_steps >= SYNC_EVERY or p.step % self.cadence.steps == 0:  # same steps on every rank
                        self.agree(stop)
                        self._count(self.lap())  # on a GPU, the queued steps' time is spent waiting here
                    self.rep.step(p, self.fraction(), p.train_loss, self.chars_per_s(), lr)
                    if self.cadence.due(p.step, self.clock(), last_eval):
                        self.evaluate_and_save()  # counts its own time
                        last_eval = self.clock()
                        self.lap()
            except KeyboardInterrupt:
                # A second Ctrl-C: leave at once. The step in flight may be half applied, so nothing
                # more is written; best.pt and last.pt on disk are the last complete ones.
                self.rep.close()
                raise
        return self.finish()

    def finish(self) -> TrainResult:
        """Evaluate and save the final state unless the last evaluation already did (or a signal stopped the
        run, when only last.pt is written), and report the end."""
        p = self.prog
        if self.loss_steps:
            self._reduce_train_loss()
        completed = p.step > 0 and p.stopped not in StopFlag.ASKED
        if not self.metrics or self.metrics[-1]["step"] != p.step:
            if completed:
                self.evaluate_and_save(final=True)
            else:
                self.files.save("last.pt", self.payload())
        if completed:
            self._score_whole_split()
        best_bpc = bits(p.best_val) if math.isfinite(p.best_val) else math.nan
        result = TrainResult(self.run.out, p, best_bpc, self.chars_per_s(), self.metrics)
        self.rep.end({"progress": p, "best_val_bpc": best_bpc, "chars_per_s": self.chars_per_s(), "out": str(self.run.out)})
        return result

    def _score_whole_split(self) -> None:
        """Under --time, where evaluations scored a sample: the best weights on the whole validation split (up to
        --eval-chars; where the watching share does not allow it, Progress.final_chars of it, spread evenly),
        Progress.final_val, written into best.pt and last.pt; loss.png drawn if the last one was not."""
        p, best_path = self.prog, self.run.out / "best.pt"
        if not p.val_sample or p.val_sample >= min(p.final_chars or math.inf, self.whole_val_chars()) \
                or not best_path.exists():
            return  # the evaluations scored all the end could (a budget too short to share)
        t0 = time.perf_counter()
        weights = self.best_weights or ckpt_io.load_checkpoint(best_path)["model"]  # a resumed run: from disk
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(weights)
        p.final_val = self.validation_loss(p.final_chars or self.cfg.eval_chars).nats
        if p.final_chars >= self.whole_val_chars():
            p.final_chars = 0  # the whole split (as records and messages say when it is 0)
        self.model.load_state_dict(current)
        if self.drawn_at != p.step:  # the last evaluation was over the share: the curve is drawn whole at the end
            self._draw()
        self._watched(time.perf_counter() - t0)  # before saving, so the checkpoints count it (not their own saving)
        t0 = time.perf_counter()
        if self.world.main:
            best = ckpt_io.load_checkpoint(best_path)
            best["progress"].update(final_val=p.final_val, final_chars=p.final_chars)
            ckpt_io.save_checkpoint(best, best_path)
        self.files.save("last.pt", self.payload())
        self._watched(time.perf_counter() - t0)

"""Generation for many clients at once (charrnn serve): one batch of streams that requests join and leave.

A request is a Job: a prime, a SampleConfig whose seed is fixed, and num_samples samples. Its prime is
read a piece at a time (writing/sample.reading: PRIME_PIECE characters), one piece between two steps of the
batch, in turn with the other work the engine has (other primes, texts being scored: Work), so a
100,000-character prime makes nobody else's stream wait longer than a piece; then its streams join the
running batch. Each step advances every stream with one
model.step and draws each request's characters with numbers from its own generator, so a seeded
request gives the same text alone, beside other requests, and from `charrnn sample` with the same
settings. Characters go to the job's buffer, which the HTTP side drains; a job whose client went
away is cancelled and leaves the batch at the next step. Requests that do not fit in max_batch
streams wait their turn, in order.

The engine runs as one asyncio task on the server's event loop, in slices of about `slice_s`
seconds, so HTTP reads and writes happen between slices and a client receives a slice's characters
in one write.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import torch

from ..model.network import CharRNN, cat_states, select_state
from ..pieces import Pieces
from ..text.data import EOS, Vocab
from ..writing.config import SampleConfig
from ..writing.constraint import Constraint, constraint_for
from ..writing.sample import StopScan, next_ids, reading, release, reported_probs, text_step

T = TypeVar("T")


@dataclass(frozen=True)
class Text:
    """New characters of sample i since the last drain; with Job.top, per character the probability the
    model gave it (reported_probs) and the top alternatives as (character or None for EOS, probability)."""

    i: int
    text: str
    probs: list[float] | None = None
    alternatives: list[list[tuple[str | None, float]]] | None = None


@dataclass(frozen=True)
class End:
    """Sample i is over: `ended` is eos, stop or length."""

    i: int
    ended: str


class Job:
    """One request's samples as the engine makes them; the HTTP side reads them with updates().

    cfg.seed must be set. top: how many alternatives to report per character (0: no probabilities).
    """

    def __init__(self, prime: str, cfg: SampleConfig, top: int = 0, timeout: float = math.inf):
        assert cfg.seed is not None, "the server resolves the seed before making a job"
        self.prime, self.cfg, self.top, self.n = prime, cfg, top, cfg.num_samples
        # The draw rule alone (no seed, length, stops or constraint): requests that share it are drawn as one group.
        self.rule = replace(cfg, seed=None, num_samples=1, length=1, stop=(), keep_stop=False, label=None, regex=None,
                            allow=None, ban=())
        self.constraint: Constraint | None = None  # made on the engine's device at admission (writing/constraint.py)
        self.scans: list[StopScan] | None = None
        self.texts: list[list[str]] = [[] for _ in range(self.n)]
        self.ended: dict[int, str] = {}
        self.logprobs: dict[int, float] = {}  # beam search's, per sample (complete())
        self.labels: list[str] | None = None  # each sample's label (a labelled model's), once started
        self.generator: torch.Generator | None = None  # made on the engine's device at admission
        self.cancelled, self.error = False, None
        self.started = time.perf_counter()
        self.deadline = self.started + timeout  # serve's --request-timeout: samples still running then end ("time")
        self.status = 500  # the HTTP status of `error` for an answer not yet begun
        self._new: dict[int, list] = {}
        self._ends: list[End] = []
        self._ready = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.cancelled or self.error is not None or len(self.ended) == self.n

    def cancel(self) -> None:
        """The client went away: the engine drops this job's streams at its next step."""
        self.cancelled = True
        self._ready.set()

    def fail(self, message: str, status: int = 500) -> None:
        self.error, self.status = message, status
        self._ready.set()

    def admitted(self, vocab: Vocab, device: torch.device) -> None:
        """Ready to join the batch on `device`: its generator, its constraint, its stop scans."""
        cfg = self.cfg
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.constraint = c = constraint_for(cfg, vocab, self.prime, device)
        if cfg.stop:
            self.scans = [StopScan(cfg.stop, cfg.keep_stop, c and c.accepts, c.start if c else 0) for _ in range(self.n)]

    def take(self, i: int, ch: str | None, info, last: str | None, state: int = 0, only_end: bool = False) -> bool:
        """Sample i's drawn character (None: EOS) with its (probability, alternatives) or None; `last`: why it must end
        after this character if it does not end by itself ("length", or "time" at the request's deadline); `state`,
        `only_end`: its constraint's state after it, and whether nothing but the end was allowed. Returns whether the
        sample goes on."""
        scan = self.scans[i] if self.scans else None
        out, reason = release(scan, ch, info, state, only_end)
        if reason is None and last:
            out, reason = out + (scan.flush() if scan else []), last
        if out:
            self.texts[i].extend(c for c, _ in out)
            self._new.setdefault(i, []).extend(out)
        if reason:
            self.ended[i] = reason
            self._ends.append(End(i, reason))
        self._ready.set()
        return reason is None

    def complete(self, found: list[tuple[str, str, float]]) -> None:
        """The whole answer at once, as beam search gives it: (text, why it ended, log-probability) per sample, the
        likeliest first; the job holds as many samples as were found."""
        self.n = len(found)
        self.texts = [list(text) for text, _, _ in found]
        self.logprobs = {i: logprob for i, (_, _, logprob) in enumerate(found)}
        for i, (text, ended, _) in enumerate(found):
            if text:
                self._new[i] = [(c, None) for c in text]
            self.ended[i] = ended
            self._ends.append(End(i, ended))
        self._ready.set()

    def drain(self) -> list[Text | End]:
        """What was made since the last drain: one Text per sample with new characters, then the Ends."""
        out: list[Text | End] = []
        for i, chars in sorted(self._new.items()):
            text = "".join(c for c, _ in chars)
            if self.top:
                out.append(Text(i, text, [info[0] for _, info in chars], [info[1] for _, info in chars]))
            else:
                out.append(Text(i, text))
        out += self._ends
        self._new, self._ends = {}, []
        return out

    async def updates(self):
        """Yield lists of Text/End events as they are made, until the job is finished."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            events = self.drain()
            if events:
                yield events
            if self.finished:
                return


class Engine:
    """The batch of streams that every request's samples join; run() is the task that advances it."""

    def __init__(self, model: CharRNN, vocab: Vocab, device: torch.device, max_batch: int = 256, slice_s: float = 0.02):
        self.model, self.vocab, self.device = model, vocab, torch.device(device)
        self.max_batch, self.slice_s = max_batch, slice_s
        self.queue: deque[Job] = deque()
        self.works: deque[Work] = deque()  # done a piece between two steps: primes being read, texts being scored
        self.reading: list[Job] = []  # jobs whose prime is being read (their rows count against max_batch)
        self.rows: list[tuple[Job, int]] = []  # (job, sample index) per stream; a job's streams are adjacent
        self.spans: list[tuple[Job, int, int]] = []  # (job, first row, end row)
        self.groups: dict[SampleConfig, list[tuple[Job, int, int]]] = {}  # the spans by draw rule (_respan)
        self.counts: list[int] = []  # characters drawn per stream
        self.logits: torch.Tensor | None = None  # (rows, V): each stream's next draw
        self.state = None
        self.constrained = Constrained()
        self.fresh = False  # some streams are at their first draw with no prime: EOS is not allowed
        self.made = 0
        self._work = asyncio.Event()

    def submit(self, job: Job) -> None:
        self.queue.append(job)
        self._work.set()

    def waiting(self) -> int:
        """Requests waiting for room in the batch (serve refuses new ones past --max-queue)."""
        return sum(not j.cancelled for j in self.queue)

    def piecewise(self, pieces: Pieces[T]) -> asyncio.Future[T]:
        """Run a piecewise computation (scoring texts, say) a piece between two steps of the streams; its result."""
        future = asyncio.get_running_loop().create_future()
        self.works.append(Work(pieces, lambda value: future.done() or future.set_result(value),
                               lambda e: future.done() or future.set_exception(e), future.cancelled))
        self._work.set()
        return future

    def load(self) -> dict:
        return {"active_samples": len(self.rows), "queued_requests": self.waiting(),
                "reading_requests": len(self.reading),
                "max_batch": self.max_batch, "characters_made": self.made}

    async def run(self) -> None:
        """Advance the batch while there is work, yielding to the event loop after each slice."""
        while True:
            if not self.busy:
                self._work.clear()
                await self._work.wait()
            deadline = time.perf_counter() + self.slice_s
            try:
                while self.busy and time.perf_counter() < deadline:
                    self.advance()
            except Exception as e:  # a failed step fails the requests in it, not the server
                self._fail_all(f"internal error: {type(e).__name__}: {e}")
            await asyncio.sleep(0)

    @property
    def busy(self) -> bool:
        return bool(self.rows or self.queue or self.works)

    def advance(self) -> None:
        """One step of every stream: admit waiting requests, do one piece of other work (a prime being read, texts
        being scored: so no stream waits longer than a piece for another request's long text), draw, hand the
        characters out, drop finished streams, and run the model on what was drawn."""
        with torch.inference_mode():
            self._admit()
            self._piece()
            if not self.rows:
                return
            ids = self._draw()
            info = self._report(ids)
            after = self.constrained.advance(self.spans, ids)
        keep = self._hand_out(ids.tolist(), info, after)
        with torch.inference_mode():
            self._keep(keep, ids)

    def _admit(self) -> None:
        """Start reading the primes of the waiting requests that fit in max_batch streams, in order."""
        now = time.perf_counter()
        while self.queue and (self.queue[0].cancelled or self.queue[0].deadline <= now
                              or self._rows_taken() + self.queue[0].n <= self.max_batch):
            job = self.queue.popleft()
            if job.cancelled:
                continue
            if job.deadline <= now:
                job.fail("the request waited its whole --request-timeout for room in the batch: the server is busy; "
                         "retry later", 503)
                continue
            try:
                job.admitted(self.vocab, self.device)
                pieces = reading(self.model, self.vocab, job.prime, job.n, self.device, job.cfg.label, job.generator,
                                 job.cfg.greedy)
            except Exception as e:  # this request fails, the others go on
                job.fail(f"internal error: {type(e).__name__}: {e}")
                continue
            self.reading.append(job)
            self.works.append(Work(pieces, lambda read, job=job: self._join(job, read),
                                   lambda e, job=job: self._drop(job, f"internal error: {type(e).__name__}: {e}"),
                                   lambda job=job: job.cancelled and self._drop(job)))

    def _rows_taken(self) -> int:
        return len(self.rows) + sum(job.n for job in self.reading)

    def _piece(self) -> None:
        """One piece of the next work in turn, round robin, so that a short one is not kept behind a long one."""
        while self.works and self.works[0].cancelled():
            self.works.popleft()
        if not self.works:
            return
        work = self.works.popleft()
        try:
            next(work.pieces)
        except StopIteration as done:
            work.done(done.value)
            return
        except Exception as e:  # out of memory, say: this work fails, the others go on
            work.failed(e)
            return
        self.works.append(work)

    def _drop(self, job: Job, error: str | None = None) -> bool:
        """A job whose prime was being read leaves (failed with `error`, or cancelled)."""
        if job in self.reading:
            self.reading.remove(job)
        if error:
            job.fail(error)
        return True

    def _join(self, job: Job, read: tuple) -> None:
        """A job whose prime is read joins the batch: its streams' scores, state and labels."""
        self.reading.remove(job)
        logits, state, job.labels = read
        self.fresh = self.fresh or not job.prime
        self.logits = logits if self.logits is None else torch.cat([self.logits, logits])
        self.state = state if self.state is None else cat_states([self.state, state])
        self.rows += [(job, i) for i in range(job.n)]
        self.counts += [0] * job.n
        self.constrained.join(job, self.device)
        self._respan()

    def _respan(self) -> None:
        spans, first = [], 0
        for pos in range(1, len(self.rows) + 1):
            if pos == len(self.rows) or self.rows[pos][0] is not self.rows[first][0]:
                spans.append((self.rows[first][0], first, pos))
                first = pos
        self.spans = spans
        self.groups = {}  # made once per change of the batch, not once a step
        for span in spans:
            self.groups.setdefault(span[0].rule, []).append(span)

    def _draw(self) -> torch.Tensor:
        """ids (rows,): each job's streams drawn by its rule with numbers from its own generator."""
        logits = self.logits
        if self.fresh:  # a sample is a document, and no corpus has empty ones: no EOS as a first draw
            logits = logits.clone()
            for job, a, b in self.spans:
                if not job.prime and self.counts[a] == 0:
                    logits[a:b, EOS] = -math.inf
        logits = self.constrained.mask(logits, self.spans, self.counts)
        groups = self.groups
        if len(groups) == 1:
            ((rule, spans),) = groups.items()
            return next_ids(logits, rule, None, self._uniforms(rule, spans))
        ids = torch.empty(len(self.rows), dtype=torch.long, device=self.device)
        for rule, spans in groups.items():
            index = torch.cat([torch.arange(a, b, device=self.device) for _, a, b in spans])
            ids[index] = next_ids(logits.index_select(0, index), rule, None, self._uniforms(rule, spans))
        return ids

    def _uniforms(self, rule: SampleConfig, spans: list[tuple[Job, int, int]]) -> torch.Tensor | None:
        if rule.greedy:
            return None
        return torch.cat([torch.rand(b - a, 1, generator=job.generator, device=self.device) for job, a, b in spans])

    def _report(self, ids: torch.Tensor) -> dict[int, tuple]:
        """Per row of the jobs that ask for it: (probability of the drawn character, alternatives)."""
        info = {}
        for job, a, b in self.spans:
            if not job.top:
                continue
            probs = reported_probs(self.logits[a:b], job.cfg)  # the model's, not the first draw's EOS mask
            top_p, top_i = probs.topk(k := min(job.top, probs.shape[1]), dim=-1)
            # One copy to the host (on a GPU, one wait) for all three; ids below 2**24 are exact as floats.
            rows = torch.cat([probs.gather(1, ids[a:b, None]), top_p, top_i.to(probs.dtype)], 1).tolist()
            chars = self.vocab.chars
            for row, values in enumerate(rows):
                p, ps, ix = values[0], values[1 : 1 + k], map(int, values[1 + k :])
                info[a + row] = (p, [(chars[t - 1] if t != EOS else None, q) for t, q in zip(ix, ps, strict=True)])
        return info

    def _hand_out(self, drawn: list[int], info: dict[int, tuple], after: dict[int, tuple[int, bool]]) -> list[int]:
        """Give each stream's character to its job (`after`: a constrained row's state after it, and whether nothing
        but the end was allowed); returns the rows that go on."""
        chars, keep, now = self.vocab.chars, [], time.perf_counter()
        for pos, ((job, i), t) in enumerate(zip(self.rows, drawn, strict=True)):
            if job.cancelled:
                continue
            self.counts[pos] += 1
            last = "length" if self.counts[pos] >= job.cfg.length else "time" if now >= job.deadline else None
            if job.take(i, chars[t - 1] if t != EOS else None, info.get(pos), last, *after.get(pos, ())):
                keep.append(pos)
        self.made += len(drawn)
        self.fresh = False
        return keep

    def _keep(self, keep: list[int], ids: torch.Tensor) -> None:
        if not keep:
            self.rows, self.counts, self.spans, self.logits, self.state = [], [], [], None, None
            self.constrained = Constrained()
            return
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, device=self.device)
            self.state, ids = select_state(self.state, index), ids.index_select(0, index)
            self.constrained.keep(index)
            self.rows, self.counts = [self.rows[p] for p in keep], [self.counts[p] for p in keep]
            self._respan()
        self.logits, self.state = text_step(self.model, self.vocab, ids, self.state)

    def close(self, message: str) -> None:
        """End every request, running or waiting, with `message` (the server is stopping)."""
        for job in [*self.queue, *self.reading]:
            job.fail(message)
        for work in self.works:
            work.failed(RuntimeError(message))
        self.queue.clear()
        self.reading, self.works = [], deque()
        self._fail_all(message)

    def _fail_all(self, message: str) -> None:
        for job, _, _ in self.spans:
            job.fail(message)
        self.rows, self.counts, self.spans, self.logits, self.state = [], [], [], None, None
        self.constrained = Constrained()


@dataclass
class Work:
    """What the engine does a piece at a time between steps: `pieces` (pieces.Pieces), then done(its result), or
    failed(the exception); cancelled() says it is no longer wanted."""

    pieces: Pieces
    done: Callable[[object], object]
    failed: Callable[[Exception], object]
    cancelled: Callable[[], bool]


class Constrained:
    """The constraint states (rows,) of the batch's streams (0 for a job without one) and what each constrained job's
    streams may draw: each job masks its own rows with its own tables (writing/constraint.py)."""

    def __init__(self):
        self.states: torch.Tensor | None = None
        self.any = False
        self.only_end: dict[int, torch.Tensor] = {}  # first row of a constrained span -> its rows that could only end

    def join(self, job: Job, device: torch.device) -> None:
        start = job.constraint.start if job.constraint else 0
        new = torch.full((job.n,), start, dtype=torch.long, device=device)
        self.states = new if self.states is None else torch.cat([self.states, new])
        self.any = self.any or job.constraint is not None

    def mask(self, logits: torch.Tensor, spans: list[tuple[Job, int, int]], counts: list[int]) -> torch.Tensor:
        """logits with what each constrained stream may not draw, in the length it has left, at -inf."""
        if not self.any:
            return logits
        logits, self.only_end = logits.clone(), {}
        for job, a, b in spans:
            if job.constraint is not None:
                mask = job.constraint.mask(self.states[a:b], job.cfg.length - counts[a])
                logits[a:b] += mask
                self.only_end[a] = job.constraint.only_end(mask)
        return logits

    def advance(self, spans: list[tuple[Job, int, int]], ids: torch.Tensor) -> dict[int, tuple[int, bool]]:
        """Each constrained stream's state after its drawn id, and (row -> (state, nothing but the end was allowed))
        for them: one copy to the host a step, and only while a constrained job is in the batch."""
        if not self.any:
            return {}
        ends = torch.zeros_like(self.states, dtype=torch.bool)
        for job, a, b in spans:
            if job.constraint is not None:
                self.states[a:b] = job.constraint.advance(self.states[a:b], ids[a:b])
                ends[a:b] = self.only_end[a]
        states, only_end = torch.stack([self.states, ends.long()]).tolist()
        return {pos: (states[pos], bool(only_end[pos])) for job, a, b in spans if job.constraint for pos in range(a, b)}

    def keep(self, index: torch.Tensor) -> None:
        if self.states is not None:
            self.states = self.states.index_select(0, index)

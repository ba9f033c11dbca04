"""Writing only what fits: a regular expression (--regex), allowed characters (--allow) and banned strings (--ban),
compiled once into tables over the model's vocabulary, so that each step of sampling is a gather and a mask.

The three make one deterministic automaton over the model's characters: interegular turns the expression into one
(Python's syntax; what needs memory, as backreferences and lookaround do, is refused), the banned strings are an
Aho-Corasick automaton (it reads the prime's end, so a banned string that would straddle it is caught), and --allow
keeps a class of characters. Their product, cut down to the states from which a match can still be completed, is
read as two tables:

    next  (S, V): the state after each character (DEAD where no match can follow); S x V for the vocabulary's ids
    left  (S,):   the fewest characters that complete a match from each state (0 where the text matches now)

With r characters of --length left, character c is allowed in state s if left[next[s, c]] <= r - 1, and the end of
the document (EOS) if s accepts. So every sample matches in full: when the length runs short the choice narrows to
the characters that still finish a match in time, and a pattern none of whose matches fits in --length is refused
before anything is drawn. Among the characters allowed, the draw is the model's, renormalised; temperature, top-k and
top-p act on what remains. That is not the model's distribution conditioned on the whole text matching (which would
weigh each character by how likely the model is to complete a match after it): docs/writing.md, "Write only what fits".
"""

from __future__ import annotations

import functools
import math
import re
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..text.data import Vocab

DEAD = 0  # the state of a text that can no longer match
NEVER = 1 << 40  # `left` of a state from which no match can be completed
# What one constraint may cost: an expression's automaton can have exponentially many states ((a|b)*a(a|b){30}), and
# a server must not spend a minute, or gigabytes, on one request's.
COMPILE_SECONDS = 1.0
MAX_TABLE = 20_000_000  # entries of the product's table before it is cut down: states x banned states x vocabulary
# What the expression may not use, by sre's opcode: an automaton reads each character once and remembers only its state.
UNSUPPORTED = {"GROUPREF": "backreferences (\\1, (?P=name))", "GROUPREF_EXISTS": "conditional groups ((?(1)...))",
               "ASSERT": "lookaround ((?=...), (?<=...))", "ASSERT_NOT": "lookaround ((?!...), (?<!...))",
               "AT": "anchors and word boundaries inside it (^, $, \\b, \\B, \\A, \\Z)"}


class ConstraintError(UsageError):
    """A constraint that cannot be met, naming the setting it comes from (`field`: regex, allow or ban)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def syntax_problems(regex: str | None, allow: str | None, ban: tuple[str, ...]) -> list[tuple[str, str]]:
    """(setting, what is wrong) for each constraint that is wrong whatever the model: an expression that does not
    compile or needs what an automaton cannot do, a class that is not one, an empty banned string."""
    found = []
    if regex is not None:
        problem = _regex_problem(_unanchored(regex))
        if problem:
            found.append(("regex", problem))
    if allow is not None:
        try:
            re.compile(_as_class(allow))
        except re.error as e:
            found.append(("allow", f"{allow!r} is not a class of characters ({e}); write one like a-z or '[a-z ]'"))
    if any(not b for b in ban):
        found.append(("ban", "must not be empty: give the text never to write"))
    return found


def _unanchored(regex: str) -> str:
    """The expression without a leading ^ or \\A and a trailing $ or \\Z: the whole text must match anyway."""
    for start in ("^", r"\A"):
        if regex.startswith(start):
            regex = regex[len(start):]
    for end in ("$", r"\Z"):
        if regex.endswith(end) and not regex.endswith("\\" + end):
            regex = regex[: -len(end)]
    return regex


def _regex_problem(regex: str) -> str | None:
    """Why the expression cannot be an automaton, or None."""
    import re._parser as sre

    try:
        parsed = sre.parse(regex)
    except re.error as e:
        return f"{regex!r} does not compile: {e}; check its brackets and escapes"
    for what, _ in _nodes(parsed):
        if what in UNSUPPORTED:
            return f"{regex!r} uses {UNSUPPORTED[what]}, which need more than an automaton; rewrite it without them"
    return None


def _nodes(parsed):
    """Every (opcode name, argument) of a parsed expression, nested ones included."""
    for op, arg in parsed:
        yield str(op), arg
        for part in arg if isinstance(arg, list | tuple) else [arg]:
            if hasattr(part, "data"):  # a nested expression (a group, a repeat's body)
                yield from _nodes(part)
            elif isinstance(part, list):  # a branch's alternatives
                for branch in part:
                    if hasattr(branch, "data"):
                        yield from _nodes(branch)


def _as_class(allow: str) -> str:
    """--allow's text as a character class: a-z is [a-z]; [a-z ] stays."""
    return allow if allow.startswith("[") and allow.endswith("]") and len(allow) > 2 else f"[{allow}]"


class Automaton:
    """A constraint compiled against one vocabulary: numpy tables, free of any device, shared by every request that asks
    for the same constraint. Ids are the vocabulary's; column EOS (0) of `next` is DEAD, the end of the text being
    allowed where `accepting` says. starts: the banned strings' automaton state after the prime -> the start state;
    ban_start reads a prime's end into that state."""

    def __init__(self, following: np.ndarray, left: np.ndarray, accepting: np.ndarray, starts: dict[int, int],
                 ban_start: Callable[[str], int]):
        self.next, self.left, self.accepting, self.starts, self.ban_start = following, left, accepting, starts, ban_start
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def start(self, prime: str) -> int:
        """The state new text starts in after `prime` (which only the banned strings read)."""
        return self.starts.get(self.ban_start(prime), DEAD)

    def tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """On `device`, made once per device: next (S, V); left after each character (S, V); accepting (S,); and the
        additive mask of a stream with length enough to finish anything (S, V) float32: 0 where a match can follow
        (EOS where the state accepts), -inf elsewhere."""
        import torch

        key = str(device)
        if key not in self._on:
            following = torch.from_numpy(self.next).to(device)
            after = torch.from_numpy(self.left).to(device)[following]
            accepting = torch.from_numpy(self.accepting).to(device)
            allowed = after < NEVER
            allowed[:, 0] = accepting
            roomy = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, -math.inf)
            self._on[key] = (following, after, accepting, roomy)
        return self._on[key]

    @property
    def reach(self) -> int:
        """The most characters any state needs to complete a match: with more left, the length constrains nothing."""
        return int(self.left[1:].max()) if len(self.left) > 1 else 0


@functools.lru_cache(maxsize=64)
def compile_automaton(regex: str | None, allow: str | None, ban: tuple[str, ...], chars: tuple[str, ...]) -> Automaton:
    """The automaton of a constraint over a vocabulary's characters (ids 1..len(chars); 0 is EOS). Raises
    ConstraintError where no text of these characters can match."""
    text_ids = len(chars) + 1
    regex_next, regex_accepts = _regex_tables(regex, chars, text_ids)
    ban_next, ban_start = _ban_tables(ban, chars, text_ids)
    allowed = _allow_mask(allow, chars, text_ids)
    automaton = _product(regex_next, regex_accepts, ban_next, allowed, ban_start)
    if not automaton.starts:
        raise _no_match(regex, allow, ban, chars)
    return automaton


def _regex_tables(regex: str | None, chars: tuple[str, ...], width: int) -> tuple[np.ndarray, np.ndarray]:
    """The expression's automaton over the characters: (next (R, width), -1 where it fails; accepting (R,)), state 0
    the initial one. Without an expression, one accepting state that takes every character."""
    import numpy as np

    if regex is None:
        return np.zeros((1, width), dtype=np.int64), np.ones(1, dtype=bool)
    import interegular

    try:
        fsm = _within(COMPILE_SECONDS, lambda: interegular.parse_pattern(_unanchored(regex)).to_fsm())
    except TooLong:
        raise ConstraintError(f"--regex {regex!r} makes an automaton too large to build in {COMPILE_SECONDS:g} s "
                              "(repeats of alternatives do that); simplify it", "regex") from None
    except Exception as e:  # what interegular cannot turn into an automaton (a construct sre accepts)
        raise ConstraintError(f"--regex {regex!r} cannot be made an automaton ({type(e).__name__}: {e}); rewrite it",
                              "regex") from None
    order = [fsm.initial, *sorted(s for s in fsm.states if s != fsm.initial)]
    number = {s: i for i, s in enumerate(order)}
    symbols = [fsm.alphabet[c] for c in chars]  # a character the expression never names is its anything_else
    table = np.full((len(order), width), -1, dtype=np.int64)
    for s in order:
        row = fsm.map.get(s, {})
        table[number[s], 1:] = [number[row[sym]] if sym in row else -1 for sym in symbols]
    return table, np.array([s in fsm.finals for s in order])


class TooLong(Exception):
    """Building an automaton took longer than it may."""


def _within(seconds: float, build: Callable[[], object]):
    """build(), stopped with TooLong once it has run `seconds` (checked at each Python call it makes, so pure Python
    such as interegular's is stopped; where this thread is profiled already, it runs unguarded)."""
    import sys
    import time

    if sys.getprofile() is not None:
        return build()
    deadline = time.perf_counter() + seconds

    def check(frame, event, arg):
        if event == "call" and time.perf_counter() > deadline:
            raise TooLong

    sys.setprofile(check)
    try:
        return build()
    finally:
        sys.setprofile(None)


def _ban_tables(ban: tuple[str, ...], chars: tuple[str, ...], width: int):
    """The banned strings as an Aho-Corasick automaton over the characters: (next (B, width), -1 where a banned
    string is complete; state 0 the empty match), and the function that reads a prime's end into its state (a banned
    string wholly inside the prime is the user's own text, and does not count)."""
    import numpy as np

    index = {c: i + 1 for i, c in enumerate(chars)}
    trie: list[dict[int, int]] = [{}]
    ends = [False]
    for word in ban:
        node = 0
        for c in word:
            if c not in index:
                break  # a character the model never writes: this banned string cannot be written
            if index[c] not in trie[node]:
                trie.append({})
                ends.append(False)
                trie[node][index[c]] = len(trie) - 1
            node = trie[node][index[c]]
        else:
            ends[node] = True
    table, fail = np.zeros((len(trie), width), dtype=np.int64), [0] * len(trie)
    for ch, child in trie[0].items():
        table[0, ch] = child
    queue = deque(trie[0].values())
    while queue:  # breadth first: a state's fallback row is complete before it is copied
        node = queue.popleft()
        ends[node] = ends[node] or ends[fail[node]]
        table[node] = table[fail[node]]
        for ch, child in trie[node].items():
            fail[child] = table[fail[node], ch] if node else 0
            table[node, ch] = child
            queue.append(child)
    complete = np.array(ends)
    dead = np.where(complete[table], -1, table)

    def start(prime: str) -> int:
        state = 0
        for c in prime[-max(map(len, ban), default=1):] if ban else "":
            state = int(table[state, index[c]]) if c in index else 0
        return state

    return dead, start


def _allow_mask(allow: str | None, chars: tuple[str, ...], width: int) -> np.ndarray:
    """(width,) bool: the characters --allow keeps (EOS, id 0, among them)."""
    import numpy as np

    if allow is None:
        return np.ones(width, dtype=bool)
    cls = re.compile(_as_class(allow))
    kept = np.array([True, *(cls.fullmatch(c) is not None for c in chars)])
    if not kept[1:].any():
        raise ConstraintError(f"--allow {allow!r} keeps none of the model's characters; widen it", "allow")
    return kept


def _product(regex_next, regex_accepts, ban_next, allowed, ban_start) -> Automaton:
    """The three automata as one: a state is a pair (expression's, banned strings'), kept where it can be reached from
    a start and a match can still be completed from it, numbered from 1 (0 is DEAD)."""
    import numpy as np

    regex_states, width = regex_next.shape
    ban_states = ban_next.shape[0]
    if regex_states * ban_states * width > MAX_TABLE:
        raise ConstraintError(f"the constraint needs {regex_states:,} x {ban_states:,} states over {width:,} characters, "
                              f"more than {MAX_TABLE:,} table entries; simplify --regex or ban fewer strings", "regex")
    # Every pair's successors at once: pair code r * B + b, -1 where either fails or the character is not allowed.
    codes = regex_next[:, None, :] * ban_states + ban_next[None, :, :]
    failed = (regex_next[:, None, :] < 0) | (ban_next[None, :, :] < 0) | ~allowed[None, None, :]
    successors = np.where(failed, -1, codes).reshape(regex_states * ban_states, width)
    successors[:, 0] = -1  # EOS ends the text: it leads nowhere
    accepting = np.repeat(regex_accepts, ban_states)
    starts = np.arange(ban_states)  # (initial expression state, any banned-strings state): the prime decides which
    left_of = _left(successors, accepting)
    live = _reachable(successors, starts) & (left_of < NEVER)
    keep = np.flatnonzero(live)
    number = np.zeros(len(live), dtype=np.int64)
    number[keep] = np.arange(1, len(keep) + 1)
    following = np.zeros((len(keep) + 1, width), dtype=np.int64)
    following[1:] = np.where(successors[keep] >= 0, number[np.maximum(successors[keep], 0)], DEAD)
    left = np.concatenate([[NEVER], left_of[keep]])
    return Automaton(following, left, np.concatenate([[False], accepting[keep]]),
                     {int(b): int(number[b]) for b in starts if live[b]}, ban_start)


def _reachable(successors: np.ndarray, starts: np.ndarray) -> np.ndarray:
    import numpy as np

    seen = np.zeros(len(successors), dtype=bool)
    frontier = np.unique(starts)
    while len(frontier):
        seen[frontier] = True
        following = np.unique(successors[frontier])
        frontier = following[(following >= 0) & ~seen[np.maximum(following, 0)]]
    return seen


def _left(successors: np.ndarray, accepting: np.ndarray) -> np.ndarray:
    """The fewest characters from each state to an accepting one (NEVER where none can be reached): relaxed a step at
    a time until nothing changes (at most once per state)."""
    import numpy as np

    left = np.where(accepting, 0, NEVER).astype(np.int64)
    while True:
        through = np.where(successors >= 0, left[np.maximum(successors, 0)] + 1, NEVER).min(axis=1)
        better = np.minimum(left, through)
        if (better == left).all():
            return left
        left = better


def _no_match(regex, allow, ban, chars) -> ConstraintError:
    """Why no text of the model's characters meets the constraint, naming the setting and, where the expression needs
    them, the characters the model never saw."""
    if regex is not None:
        missing = sorted(_literals(_unanchored(regex)) - set(chars))
        if missing:
            from ..text.data import describe_chars

            return ConstraintError(f"--regex {regex!r} needs characters the model never saw: {describe_chars(missing)}; "
                                   "it can write only its vocabulary (charrnn info lists it)", "regex")
        what = "with --allow and --ban" if allow is not None or ban else ""
        return ConstraintError(f"--regex {regex!r}: no text of the model's characters matches it {what}".strip()
                               + "; widen it", "regex")
    return ConstraintError(f"--{'allow' if allow is not None else 'ban'}: no text of the model's characters is left",
                           "allow" if allow is not None else "ban")


def _literals(regex: str) -> set[str]:
    """The characters an expression names one by one: its literals, in and out of classes (not a range's)."""
    import re._parser as sre

    found = set()
    for op, arg in _nodes(sre.parse(regex)):
        if op == "LITERAL":
            found.add(chr(arg))
        elif op == "IN":
            found |= {chr(a) for o, a in arg if str(o) == "LITERAL"}
    return found


class Constraint:
    """A compiled constraint at work on a device: the streams' states (B,) and what they may draw next."""

    def __init__(self, automaton: Automaton, prime: str, device: torch.device, chars: tuple[str, ...],
                 name: str = "the constraint"):
        self.automaton, self.ids, self.name = automaton, {c: i + 1 for i, c in enumerate(chars)}, name
        self.start, self.reach = automaton.start(prime), automaton.reach
        self.next, self.next_left, self.accepting, self.roomy = automaton.tables(device)

    def mask(self, states: torch.Tensor, remaining: int) -> torch.Tensor:
        """(B, V) float32, to add to the streams' scores: 0 for what each may draw with `remaining` characters of its
        length left (EOS where it matches), -inf for the rest. One gather a step while the length leaves room."""
        import torch

        if remaining - 1 >= self.reach:
            return self.roomy.index_select(0, states)
        allowed = self.next_left.index_select(0, states) <= remaining - 1
        allowed[:, 0] = self.accepting.index_select(0, states)
        return torch.zeros(allowed.shape, device=allowed.device).masked_fill_(~allowed, -math.inf)

    @staticmethod
    def only_end(mask: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the streams whose mask allows nothing but the end."""
        import torch

        return torch.isinf(mask[:, 1:]).all(1)

    def advance(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The states after each stream's drawn id."""
        return self.next[states, ids]

    def accepts(self, state: int) -> bool:
        return bool(self.automaton.accepting[state])

    def matches(self, text: str) -> bool:
        """Whether new text matches in full (read from the start state, a character at a time)."""
        state, ids = self.start, self.ids
        for c in text:
            state = int(self.automaton.next[state, ids[c]]) if c in ids else DEAD
        return self.accepts(state)

    def fits(self, length: int, prime: str) -> None:
        """Refuse a start from which no match fits in `length` characters (one at least where there is no prime)."""
        left = int(self.automaton.left[self.start])
        if left > length:
            raise ConstraintError(f"no match of {self.name} fits in --length {length}: the shortest is {left} "
                                  "characters; raise --length" if left < NEVER else
                                  "the prime's end already holds the start of a banned string that every match would "
                                  "complete; change the prime", "regex" if left < NEVER else "ban")
        first = self.automaton.left[self.automaton.next[self.start, 1:]]  # after each possible first character
        if not prime and not bool((first <= length - 1).any()):
            raise ConstraintError(f"the constraint matches no text of 1 to {length} characters, and without a prime a "
                                  "sample has at least one", "regex")


def constraint_for(cfg, vocab: Vocab, prime: str, device) -> Constraint | None:
    """The constraint a SampleConfig asks for, compiled for the model's vocabulary and started after `prime`, checked
    against cfg.length; None where it asks for none. Raises ConstraintError before anything is drawn."""
    if cfg.regex is None and cfg.allow is None and not cfg.ban:
        return None
    automaton = compile_automaton(cfg.regex, cfg.allow, tuple(cfg.ban), tuple(vocab.chars))
    name = f"--regex {cfg.regex!r}" if cfg.regex is not None else "--allow and --ban"
    constraint = Constraint(automaton, prime, device, tuple(vocab.chars), name)
    constraint.fits(cfg.length, prime)
    return constraint

"""The static arena: every intermediate tensor gets a fixed offset, planned from tensor lifetimes at generation time.

Tensors that hold the same bytes share one buffer: a reshape's output is its input, and an element-wise op whose
input dies at that op writes its output over it (in place). A convolution or pooling whose input dies there may
start its output below the input and overlap it, as far as the rows it still has to read allow (it writes row by
row). The model's input has a slot in the arena, as in tflite-micro (the caller may write it there, or invoke
copies it in); the output is written straight into the caller's buffer. Buffers are then placed at the lowest
offset free for their whole lifetime (greedy first fit over a few orders, largest first among them).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, List, Tuple

from .lower import Step

SHUFFLES = 200  # extra placement orders tried on small graphs
ALIGN = 4  # word alignment: the DSP path loads four int8 values at a time
INPUT, OUTPUT = "input", "output"  # the model input's slot (in the arena) and the caller's output buffer


@dataclass
class Buffer:
    size: int
    first: int  # step that writes it (-1: before the first step)
    last: int  # last step that reads it
    offset: int = 0
    kind: str = "arena"  # or OUTPUT (the caller's buffer)


@dataclass
class Plan:
    arena_bytes: int
    where: Dict[int, Tuple[str, int]]  # tensor -> (OUTPUT or "arena", offset)
    copies: List[Tuple[int, int]]  # (step index, tensor): aliases that must copy (caller's input -> caller's output)
    inplace_steps: int
    naive_bytes: int  # every intermediate in its own buffer, for comparison


class _Sets:
    def __init__(self):
        self.parent: Dict[int, int] = {}

    def find(self, t: int) -> int:
        self.parent.setdefault(t, t)
        while self.parent[t] != t:
            self.parent[t] = self.parent[self.parent[t]]
            t = self.parent[t]
        return t

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(b)] = self.find(a)


def plan_arena(steps: List[Step], sizes: Dict[int, int], graph_input: int, graph_output: int) -> Plan:
    sets = _Sets()
    end = len(steps)
    last_use: Dict[int, int] = {graph_output: end}
    for i, s in enumerate(steps):
        for t in s.inputs:
            last_use[t] = max(last_use.get(t, -1), i)
    kind = {graph_input: INPUT, graph_output: OUTPUT}

    def kind_of(t: int) -> str:
        root = sets.find(t)
        found = {kind[m] for m in list(sets.parent) if sets.find(m) == root and m in kind}
        found |= {kind[t]} if t in kind else set()
        return found.pop() if len(found) == 1 else ("arena" if not found else "both")

    def buffer_last(t: int) -> int:
        root = sets.find(t)
        return max([last_use.get(m, -1) for m in list(sets.parent) if sets.find(m) == root] + [last_use.get(t, -1)])

    copies = []
    inplace = 0
    for i, s in enumerate(steps):
        sets.find(s.output)
        if s.alias:
            both = {kind_of(s.inputs[0]), kind_of(s.output)}
            if {INPUT, OUTPUT} <= both:
                copies.append((i, s.output))
            else:
                sets.union(s.inputs[0], s.output)
            continue
        for pos in s.inplace:
            t = s.inputs[pos]
            if buffer_last(t) != i or sizes[t] != sizes[s.output]:
                continue
            if {kind_of(t), kind_of(s.output)} == {INPUT, OUTPUT}:
                continue
            sets.union(t, s.output)
            inplace += 1
            break
    members: Dict[int, List[int]] = {}
    for t in set(sizes):
        members.setdefault(sets.find(t), []).append(t)
    first_def = {graph_input: -1}
    for i, s in enumerate(steps):
        first_def.setdefault(s.output, i)
    buffers: Dict[int, Buffer] = {}
    naive = 0
    for root, ts in members.items():
        k = kind_of(root)
        firsts = [first_def[t] for t in ts if t in first_def]
        lasts = [last_use.get(t, -1) for t in ts]
        buffers[root] = Buffer(max(sizes[t] for t in ts), min(firsts) if firsts else -1, max(lasts + [min(firsts) if firsts else -1]),
                               kind=OUTPUT if k == OUTPUT else "arena")
        if buffers[root].kind == "arena":
            naive += _aligned(buffers[root].size)
    # Row-streaming ops whose input dies there: the output may start `delta` bytes below the input and overlap it.
    links: Dict[Tuple[int, int], int] = {}
    for i, s in enumerate(steps):
        if s.rows is None or s.alias:
            continue
        src, dst = buffers.get(sets.find(s.inputs[0])), buffers.get(sets.find(s.output))
        if src is None or dst is None or src is dst or src.kind != "arena" or dst.kind != "arena" or src.last != i or dst.first != i:
            continue
        delta = _aligned(stream_delta(*s.rows))
        if delta < dst.size:  # otherwise side by side costs no more
            links[(id(src), id(dst))] = delta
    arena_buffers = [b for b in buffers.values() if b.kind == "arena"]
    # Largest first packs well, latest first lets each overlapping output settle below its input; seeded shuffles
    # (as many as the graph's size affords) find what both miss when chains of overlaps meet a long-lived buffer.
    orders = [sorted(arena_buffers, key=lambda b: (-b.size, b.first)), sorted(arena_buffers, key=lambda b: (-b.first, -b.size))]
    rng = random.Random(0)
    for _ in range(max(0, min(SHUFFLES, 40000 // max(1, len(arena_buffers)) ** 2))):
        orders.append(rng.sample(arena_buffers, len(arena_buffers)))
    best = None
    for order in orders:
        placed: List[Buffer] = []
        for b in order:
            b.offset = _lowest_offset(b, [o for o in placed if o.first <= b.last and b.first <= o.last], links)
            placed.append(b)
        end = max([b.offset + b.size for b in placed] + [0])
        if best is None or end < best[0]:
            best = (end, {id(b): b.offset for b in placed})
    arena = best[0]
    for b in arena_buffers:
        b.offset = best[1][id(b)]
    where = {t: (buffers[sets.find(t)].kind, buffers[sets.find(t)].offset) for t in sizes}
    return Plan(_aligned(arena), where, copies, inplace, naive)


def stream_delta(out_rows: int, out_row: int, in_row: int, stride: int, pad: int) -> int:
    """How far below its input a row-streaming op's output must start: once output rows 0..y are written, every
    input row from max(0, y*stride - pad) on (what rows y.. still read) must be intact."""
    return max((y + 1) * out_row - max(0, y * stride - pad) * in_row for y in range(out_rows))


def _lowest_offset(b: Buffer, live: List[Buffer], links: Dict[Tuple[int, int], int]) -> int:
    """The lowest aligned offset where ``b`` clashes with no buffer live at the same time, except where a link lets
    an op's output overlap its dying input from ``delta`` bytes below it."""
    candidates = {0}
    for o in live:
        candidates.add(_aligned(o.offset + o.size))
        if (id(o), id(b)) in links:  # o is the input, b the output: b.offset <= o.offset - delta
            candidates.add(o.offset - links[(id(o), id(b))])
        if (id(b), id(o)) in links:  # b is the input: o.offset <= b.offset - delta
            candidates.add(o.offset + links[(id(b), id(o))])

    def fits(offset: int) -> bool:
        for o in live:
            if offset + b.size <= o.offset or o.offset + o.size <= offset:
                continue
            if (id(o), id(b)) in links and offset <= o.offset - links[(id(o), id(b))]:
                continue
            if (id(b), id(o)) in links and o.offset <= offset - links[(id(b), id(o))]:
                continue
            return False
        return True

    return next(c for c in sorted(c for c in candidates if c >= 0 and c % ALIGN == 0) if fits(c))


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN

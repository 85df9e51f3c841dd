"""The static arena: every intermediate tensor gets a fixed offset, planned from tensor lifetimes at generation time.

Tensors that hold the same bytes share one buffer: a reshape's output is its input, and an element-wise op whose
input dies at that op writes its output over it (in place). The model's input is read from the caller's buffer and
its output written straight into the caller's, so the arena holds intermediates only. Buffers are then placed
largest first at the lowest offset free for their whole lifetime (greedy first fit, as tflite-micro's planner does).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

from .lower import Step

ALIGN = 4  # word alignment: the DSP path loads four int8 values at a time
INPUT, OUTPUT = "input", "output"  # buffers that are the caller's, not the arena's


@dataclass
class Buffer:
    size: int
    first: int  # step that writes it (-1: before the first step)
    last: int  # last step that reads it
    offset: int = 0
    kind: str = "arena"  # or INPUT / OUTPUT


@dataclass
class Plan:
    arena_bytes: int
    where: Dict[int, Tuple[str, int]]  # tensor -> (INPUT/OUTPUT/"arena", offset)
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
            if kind_of(t) == INPUT or buffer_last(t) != i or sizes[t] != sizes[s.output]:
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
                               kind=k if k in (INPUT, OUTPUT) else "arena")
        if buffers[root].kind == "arena":
            naive += _aligned(buffers[root].size)
    placed: List[Buffer] = []
    for b in sorted((b for b in buffers.values() if b.kind == "arena"), key=lambda b: (-b.size, b.first)):
        offset = 0
        for other in sorted((o for o in placed if o.first <= b.last and b.first <= o.last), key=lambda o: o.offset):
            if offset + b.size <= other.offset:
                break
            offset = max(offset, _aligned(other.offset + other.size))
        b.offset = offset
        placed.append(b)
    arena = max([b.offset + b.size for b in placed] + [0])
    where = {t: (buffers[sets.find(t)].kind, buffers[sets.find(t)].offset) for t in sizes}
    return Plan(_aligned(arena), where, copies, inplace, naive)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN

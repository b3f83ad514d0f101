"""The text featurization (``hash="murmur3"``) as ONNX nodes, so that an exported text model takes raw strings.

What :meth:`TextPreprocessing.transform` computes, in ops that onnxruntime 1.18 runs (ai.onnx opset 20 and two
``com.microsoft`` contrib ops), node for node:

- ``StringNormalizer`` (``LOWER``, locale ``C.UTF-8``, built into glibc since 2.35 and shipped by Debian and Ubuntu
  before; ``en_US.UTF-8``, the op's default, fails to load where it is not installed) lower-cases one code point at
  a time by the Unicode simple mapping, which is what :func:`simple_lower` does in Python;
- ``Tokenizer`` (``com.microsoft``, ``tokenexp``) finds the words with RE2 in longest-match mode. :func:`re2_pattern`
  writes ``token_pattern`` again in RE2's syntax and refuses what RE2 cannot take or could match differently from
  Python's ``re`` (non-deterministic patterns, lazy repeats, capturing groups, look-arounds, anchors, ``\\b``,
  ``\\w``/``\\d``/``\\s``, flags, empty matches);
- ``Slice`` + ``StringConcat`` make the word n-grams, ``MurmurHash3`` (``com.microsoft``, seed 0, ``positive``)
  + ``Cast`` + ``Mod`` + ``Add`` their ids;
- each id's place in Python's order (words, then bigrams, then trigrams) is computed from the number of words ``L``
  of its document (the n-grams of ``n`` words start at ``(n - 1) L - (n - 1)(n - 2) / 2``), ids past ``max_tokens``
  and the tokenizer's padding are dropped, and ``ScatterElements`` (``reduction="add"`` onto zeros: every kept id has
  its own place, every dropped one adds 0 at place 0) writes them into int64 (N, max_tokens).

Nothing here imports torch; ``onnx`` is imported only when a graph is built.
"""

from __future__ import annotations

import re
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

import numpy as np

from ticketpack.core.errors import TicketpackError
from ticketpack.data.kinds.base import RawGraph

LOCALE = "C.UTF-8"
OPSET = 20  # StringConcat
RE2_MAX_REPEAT = 1000  # RE2 refuses larger counts in {m,n}

_ALLOWED_FLAGS = re.UNICODE | re.VERBOSE | re.ASCII  # VERBOSE only changes parsing; ASCII only \w \d \s \b (refused)


def simple_lower(text: str) -> str:
    """Lower-case ``text`` one code point at a time by the Unicode simple lowercase mapping (what
    ``StringNormalizer`` does): Python's ``str.lower`` except that U+0130 (İ) becomes ``i`` (not ``i`` + U+0307) and
    a capital sigma is always ``σ`` (no final-sigma rule). These are the only two places where they differ."""
    if text.isascii():
        return text.lower()
    if "\u0130" in text:
        text = text.replace("\u0130", "i")
    if "\u03a3" in text:
        text = text.replace("\u03a3", "\u03c3")
    return text.lower()


def _lit(code: int) -> str:
    ch = chr(code)
    return ch if ch.isascii() and ch.isalnum() else f"\\x{{{code:X}}}"


def _refuse(pattern: str, why: str) -> TicketpackError:
    return TicketpackError(f"`token_pattern` {pattern!r} cannot run in ONNX (RE2) exactly as in Python: {why}")


def _emit_class(items: list, pattern: str) -> str:
    out = []
    for op, arg in items:
        if op is sre.NEGATE:
            out.append("^")
        elif op is sre.LITERAL:
            out.append(_lit(arg))
        elif op is sre.RANGE:
            out.append(f"{_lit(arg[0])}-{_lit(arg[1])}")
        else:  # CATEGORY: \w \d \s are Unicode-wide in Python, ASCII in RE2
            raise _refuse(pattern, "\\w, \\d and \\s mean other characters in RE2; write the class out, as [0-9]")
    return "[" + "".join(out) + "]"


def _emit(items: Any, pattern: str) -> str:
    """The parsed ``items`` written in RE2 syntax; TicketpackError for what could match differently."""
    out = []
    for op, arg in items:
        if op is sre.LITERAL:
            out.append(_lit(arg))
        elif op is sre.NOT_LITERAL:
            out.append(f"[^{_lit(arg)}]")
        elif op is sre.ANY:
            out.append(".")
        elif op is sre.IN:
            out.append(_emit_class(arg, pattern))
        elif op is sre.BRANCH:
            out.append("(?:" + "|".join(_emit(alt, pattern) for alt in arg[1]) + ")")
        elif op is sre.SUBPATTERN:
            group, add_flags, del_flags, body = arg
            if group is not None:
                raise _refuse(pattern, "a capturing group makes re.findall return the group, not the match; "
                              "use (?:...)")
            if add_flags or del_flags:
                raise _refuse(pattern, "inline flags such as (?i:...) are not supported")
            out.append("(?:" + _emit(body, pattern) + ")")
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, body = arg
            if body.getwidth()[0] == 0:
                raise _refuse(pattern, "a repeated part that can match the empty string")
            if low > RE2_MAX_REPEAT or (high != sre.MAXREPEAT and high > RE2_MAX_REPEAT):
                raise _refuse(pattern, f"a repeat count above {RE2_MAX_REPEAT}")
            count = f"{{{low},}}" if high == sre.MAXREPEAT else f"{{{low},{high}}}"
            out.append("(?:" + _emit(body, pattern) + ")" + count + ("?" if op is sre.MIN_REPEAT else ""))
        else:  # AT (anchors, \b), GROUPREF, ASSERT(_NOT), ATOMIC_GROUP, POSSESSIVE_REPEAT, GROUPREF_EXISTS
            raise _refuse(pattern, f"{str(op).lower()} (anchors, \\b, look-arounds, back-references, atomic and "
                          "possessive parts) is not supported")
    return "".join(out)


def re2_pattern(pattern: str) -> str:
    """``pattern`` (Python ``re``) in RE2 syntax, matching the same non-empty tokens left to right as
    ``re.findall``; a :class:`TicketpackError` saying why where that cannot be promised.

    ONNX Runtime's ``Tokenizer`` runs RE2 with ``longest_match``: at each start it takes the longest match, where
    Python takes the first its backtracking finds. The two agree on a deterministic pattern (at every point the
    next character decides where in the pattern it goes: Brüggemann-Klein's one-unambiguous expressions, checked on
    the Glushkov positions) with greedy repeats only and no empty alternatives, so only such patterns are taken.
    The default ``[a-z0-9]+(?:'[a-z]+)?`` is one; ``[a-z]*[a-c]`` or a lazy ``+?`` is not."""
    try:
        tree = sre_parse.parse(pattern)
    except re.error as exc:
        raise TicketpackError(f"`token_pattern` {pattern!r} is no regular expression: {exc}") from None
    if tree.state.flags & ~_ALLOWED_FLAGS:
        raise _refuse(pattern, "flags such as (?i), (?m) or (?s) are not supported")
    if tree.getwidth()[0] == 0:
        raise _refuse(pattern, "it can match the empty string (re.findall returns empty words; RE2 skips them)")
    emitted = "(?:" + _emit(tree, pattern) + ")"  # never the bare "." that Tokenizer takes as "every character"
    _Glushkov(pattern).check(tree)
    return emitted


_ALL = [(0, 0x10FFFF)]


def _charset(op, arg) -> list[tuple[int, int]]:
    """The code points one position of the pattern matches, as sorted, merged ranges."""
    if op is sre.LITERAL:
        return [(arg, arg)]
    if op is sre.NOT_LITERAL:
        return _complement([(arg, arg)])
    if op is sre.ANY:
        return _complement([(10, 10)])
    ranges = sorted((a, a) if o is sre.LITERAL else a for o, a in arg if o in (sre.LITERAL, sre.RANGE))
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return _complement(merged) if arg and arg[0][0] is sre.NEGATE else merged


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, nxt = [], 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    return out + ([(nxt, 0x10FFFF)] if nxt <= 0x10FFFF else [])


def _overlap(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


class _Glushkov:
    """Positions (one per character class of the pattern, repeats counted out), their First/Last/Follow sets, and
    the check that no two positions a character could lead to overlap."""

    LIMIT = 4096

    def __init__(self, pattern: str) -> None:
        self.pattern, self.sets, self.follow = pattern, [], {}

    def check(self, tree) -> None:
        _, first, _ = self.walk(tree)
        for group in [first, *self.follow.values()]:
            group = sorted(group)
            for k, p in enumerate(group):
                if any(_overlap(self.sets[p], self.sets[q]) for q in group[k + 1:]):
                    raise _refuse(self.pattern, "after some character the pattern can go on in two ways (as in "
                                  "a?a or [a-z]*[a-c]); RE2 then takes the longest match and Python the first")

    def link(self, last: set[int], first: set[int]) -> None:
        for p in last:
            self.follow.setdefault(p, set()).update(first)

    def concat(self, parts) -> tuple[bool, set[int], set[int]]:
        """(nullable, first, last) of the parts (thunks that add their positions) one after the other."""
        nullable, first, last = True, set(), set()
        for part in parts:
            n, f, l = part()
            self.link(last, f)
            first |= f if nullable else set()
            last = (last | l) if n else l
            nullable = nullable and n
        return nullable, first, last

    def walk(self, items) -> tuple[bool, set[int], set[int]]:
        return self.concat([lambda op=op, arg=arg: self.item(op, arg) for op, arg in items])

    def item(self, op, arg) -> tuple[bool, set[int], set[int]]:
        if op is sre.SUBPATTERN:
            return self.walk(arg[3])
        if op is sre.BRANCH:
            parts = [self.walk(alt) for alt in arg[1]]  # Python's parser writes ab|a as a(?:b|): an empty last
            if any(n for n, _, _ in parts[:-1]):  # alternative is a greedy "?"; an empty one before others is lazy
                raise _refuse(self.pattern, "an empty alternative before others (a lazy choice: RE2 takes the longest)")
            return parts[-1][0], set().union(*(f for _, f, _ in parts)), set().union(*(l for _, _, l in parts))
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            return self.repeat(op, *arg)
        if len(self.sets) >= self.LIMIT:
            raise _refuse(self.pattern, f"more than {self.LIMIT} character positions to check")
        self.sets.append(_charset(op, arg))
        p = len(self.sets) - 1
        return False, {p}, {p}

    def repeat(self, op, low: int, high: int, body) -> tuple[bool, set[int], set[int]]:
        """body{low,high}: low copies, then body* (unbounded) or (body(body(...)?)?)? (nested, so that each copy is
        entered one way only)."""
        if op is sre.MIN_REPEAT and low != high:
            raise _refuse(self.pattern, "a lazy repeat (+?, *?, ??): RE2 takes the longest match here")
        parts = [lambda: self.walk(body)] * low
        if high == sre.MAXREPEAT:
            parts.append(lambda: self.star(body))
        elif high > low:
            parts.append(lambda: self.optional_chain(body, high - low))
        return self.concat(parts)

    def star(self, body) -> tuple[bool, set[int], set[int]]:
        _, f, l = self.walk(body)
        self.link(l, f)
        return True, f, l

    def optional_chain(self, body, k: int) -> tuple[bool, set[int], set[int]]:
        first, last = set(), set()  # the copies after this one, built from the innermost out
        for _ in range(k):
            _, f, l = self.walk(body)
            self.link(l, first)
            first, last = f, l | last
        return True, first, last


def raw_strings(raw: Any) -> np.ndarray:
    """A batch of texts as the graph's ``raw`` input: a numpy object array of str, shape (N,), N ≥ 1."""
    if isinstance(raw, str):
        raise TicketpackError("text inputs must be a list of strings, not one string")
    texts = list(raw)
    if not texts:
        raise TicketpackError("no texts: a self-contained text model takes a batch of at least one string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TicketpackError(f"text input {i} is {type(text).__name__}, expected a string")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise TicketpackError(f"text input {i} holds a lone surrogate: it has no UTF-8 form") from None
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


def text_raw_graph(prep: Any, output: str = "input") -> RawGraph:
    """:meth:`TextPreprocessing.raw_graph` of ``prep``, a ``TextPreprocessing`` (see the module's docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    if prep.hash != "murmur3":
        raise TicketpackError(f"text preprocessing with hash {prep.hash!r} has no ONNX form (ONNX Runtime has no "
                              "CRC-32): make the ticket again with `hash: murmur3` (the default)")
    tokenexp = re2_pattern(prep.token_pattern)
    node = helper.make_node
    i64 = lambda name, values: numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)
    inits = [i64("raw/zero", 0), i64("raw/one", 1), i64("raw/axis1", [1]), i64("raw/max_tokens", prep.max_tokens),
             i64("raw/buckets", prep.num_buckets - 1), i64("raw/width", [prep.max_tokens]),
             numpy_helper.from_array(np.array([""], dtype=object), "raw/empty")]
    if prep.ngrams > 1:
        inits.append(numpy_helper.from_array(np.array([prep.ngram_separator], dtype=object), "raw/sep"))
    nodes = []
    text = "raw"
    if prep.lowercase:
        nodes.append(node("StringNormalizer", ["raw"], ["raw/lower"], name="raw/lower", case_change_action="LOWER",
                          is_case_sensitive=1, locale=LOCALE))
        text = "raw/lower"
    nodes += [
        node("Tokenizer", [text], ["raw/words_all"], name="raw/tokenize", domain="com.microsoft", mark=0,
             mincharnum=1, pad_value="", tokenexp=tokenexp),
        # L: words per document (the tokenizer pads rows with "", and no word is empty)
        node("Equal", ["raw/words_all", "raw/empty"], ["raw/is_pad"], name="raw/is_pad"),
        node("Not", ["raw/is_pad"], ["raw/is_word"], name="raw/is_word"),
        node("Cast", ["raw/is_word"], ["raw/is_word64"], name="raw/is_word64", to=TensorProto.INT64),
        node("ReduceSum", ["raw/is_word64", "raw/axis1"], ["raw/L"], name="raw/L", keepdims=1),
        # words past max_tokens never reach the output: cut them before the n-grams are made
        node("Slice", ["raw/words_all", "raw/zero1", "raw/width", "raw/axis1"], ["raw/words"], name="raw/cut"),
        node("Shape", ["raw/words"], ["raw/T1"], name="raw/T1", start=1, end=2),
        node("Squeeze", ["raw/T1"], ["raw/T"], name="raw/T"),
        node("Range", ["raw/zero", "raw/T", "raw/one"], ["raw/col"], name="raw/col"),
    ]
    inits.append(i64("raw/zero1", [0]))
    blocks, positions, valid = ["raw/words"], ["raw/pos1"], ["raw/valid1"]
    nodes += [node("Less", ["raw/col", "raw/L"], ["raw/valid1"], name="raw/valid1"),
              node("Sub", ["raw/L", "raw/L"], ["raw/zeros1"], name="raw/zeros1"),  # (N, 1): words land at their column
              node("Add", ["raw/zeros1", "raw/col"], ["raw/pos1"], name="raw/pos1")]
    for n in range(2, prep.ngrams + 1):
        nodes += _ngram_nodes(n, inits, i64)
        blocks.append(f"raw/gram{n}")
        positions.append(f"raw/pos{n}")
        valid.append(f"raw/valid{n}")
    nodes += _scatter_nodes(blocks, positions, valid, output)
    raw_input = helper.make_tensor_value_info("raw", TensorProto.STRING, ["batch"])
    return RawGraph(input=raw_input, nodes=nodes, initializers=inits, output=output,
                    opsets={"": OPSET, "com.microsoft": 1})


def _ngram_nodes(n: int, inits: list, i64) -> list:
    """Block ``n``: the strings of every run of n words (``raw/gram{n}``, width T - n + 1), where each lands in
    Python's order (``raw/pos{n}``) and whether it is a real n-gram (``raw/valid{n}``)."""
    from onnx import helper

    node = helper.make_node
    prev = "raw/words" if n == 2 else f"raw/gram{n - 1}"
    inits += [i64(f"raw/end{n}", [-1]), i64(f"raw/start{n}", [n - 1]), i64(f"raw/big{n}", [2**62]),
              i64(f"raw/k{n}", n - 1), i64(f"raw/offset{n}", (n - 1) * (n - 2) // 2), i64(f"raw/neg{n}", [-(n - 1)])]
    return [
        # gram_n[:, i] = gram_{n-1}[:, i] + " " + words[:, i + n - 1]
        node("Slice", [prev, "raw/zero1", f"raw/end{n}", "raw/axis1"], [f"raw/head{n}"], name=f"raw/head{n}"),
        node("StringConcat", [f"raw/head{n}", "raw/sep"], [f"raw/headsep{n}"], name=f"raw/headsep{n}"),
        node("Slice", ["raw/words", f"raw/start{n}", f"raw/big{n}", "raw/axis1"], [f"raw/tail{n}"],
             name=f"raw/tail{n}"),
        node("StringConcat", [f"raw/headsep{n}", f"raw/tail{n}"], [f"raw/gram{n}"], name=f"raw/gram{n}"),
        # columns i = 0 .. T - n; real where i < L - (n - 1); placed at (n - 1) L - (n - 1)(n - 2) / 2 + i
        node("Slice", ["raw/col", "raw/zero1", f"raw/neg{n}"], [f"raw/col{n}"], name=f"raw/col{n}"),
        node("Sub", ["raw/L", f"raw/k{n}"], [f"raw/count{n}"], name=f"raw/count{n}"),
        node("Less", [f"raw/col{n}", f"raw/count{n}"], [f"raw/valid{n}"], name=f"raw/valid{n}"),
        node("Mul", ["raw/L", f"raw/k{n}"], [f"raw/kl{n}"], name=f"raw/kl{n}"),
        node("Sub", [f"raw/kl{n}", f"raw/offset{n}"], [f"raw/first{n}"], name=f"raw/first{n}"),
        node("Add", [f"raw/first{n}", f"raw/col{n}"], [f"raw/pos{n}"], name=f"raw/pos{n}"),
    ]


def _scatter_nodes(blocks: list[str], positions: list[str], valid: list[str], output: str) -> list:
    """Every block's ids, where they land and whether they are kept → int64 (N, max_tokens), right-padded with 0."""
    from onnx import TensorProto, helper

    node = helper.make_node
    nodes = []
    if len(blocks) > 1:
        nodes += [node("Concat", blocks, ["raw/tokens"], name="raw/tokens", axis=1),
                  node("Concat", positions, ["raw/pos"], name="raw/pos", axis=1),
                  node("Concat", valid, ["raw/valid"], name="raw/valid", axis=1)]
    else:
        nodes += [node("Identity", [blocks[0]], ["raw/tokens"], name="raw/tokens"),
                  node("Identity", [positions[0]], ["raw/pos"], name="raw/pos"),
                  node("Identity", [valid[0]], ["raw/valid"], name="raw/valid")]
    return nodes + [
        node("MurmurHash3", ["raw/tokens"], ["raw/hash"], name="raw/hash", domain="com.microsoft", seed=0,
             positive=1),
        node("Cast", ["raw/hash"], ["raw/hash64"], name="raw/hash64", to=TensorProto.INT64),
        node("Mod", ["raw/hash64", "raw/buckets"], ["raw/bucket"], name="raw/bucket"),
        node("Add", ["raw/bucket", "raw/one"], ["raw/id"], name="raw/id"),
        node("Less", ["raw/pos", "raw/max_tokens"], ["raw/fits"], name="raw/fits"),
        node("And", ["raw/valid", "raw/fits"], ["raw/keep"], name="raw/keep"),
        node("Where", ["raw/keep", "raw/id", "raw/zero"], ["raw/value"], name="raw/value"),
        node("Where", ["raw/keep", "raw/pos", "raw/zero"], ["raw/place"], name="raw/place"),
        node("Shape", ["raw"], ["raw/N"], name="raw/N"),
        node("Concat", ["raw/N", "raw/width"], ["raw/out_shape"], name="raw/out_shape", axis=0),
        node("ConstantOfShape", ["raw/out_shape"], ["raw/zeros"], name="raw/zeros",
             value=helper.make_tensor("raw/zero_value", TensorProto.INT64, [1], [0])),
        node("ScatterElements", ["raw/zeros", "raw/place", "raw/value"], [output], name="raw/scatter", axis=1,
             reduction="add"),
    ]

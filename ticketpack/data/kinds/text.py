"""Text: a regex tokenizer, word n-grams and feature hashing into int64 ids (no vocabulary: domain-independent)."""

from __future__ import annotations

import re
import warnings
import zlib
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from ticketpack.core.errors import TicketpackError
from ticketpack.data.files import csv_rows, jsonl_rows, label_text, read_text
from ticketpack.data.kinds.base import InputKind, RawGraph
from ticketpack.data.kinds.text_graph import raw_strings, simple_lower, text_raw_graph


def _mmh3():
    try:
        import mmh3
    except ImportError:
        raise TicketpackError("text preprocessing with hash murmur3 needs the mmh3 package: pip install mmh3") from None
    return mmh3


class TruncationWarning(UserWarning):
    """Some documents had more ids than ``max_tokens`` and lost their tail."""


BUCKET_RULE = "1 + crc32(utf8(token)) % (num_buckets - 1)"
FEATURIZATION = (
    "1. If lowercase, lower-case the text (Unicode full lower-case mapping, as Python's str.lower). "
    "2. words: every non-overlapping match of token_pattern, left to right (Python re.findall; the default pattern "
    "has no capturing group, so each word is the whole match). "
    "3. tokens: the words, then for n = 2 up to ngrams in turn, every run of n consecutive words, left to right, "
    "joined by ngram_separator. "
    "4. The id of a token is bucket_rule, where utf8(token) is its UTF-8 bytes and crc32 the CRC-32 of zlib, gzip "
    "and PNG (reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF) as an unsigned 32-bit "
    "integer; ids run 1 .. num_buckets - 1, and 0 is padding. "
    "5. Keep the first max_tokens ids and pad on the right with pad_id up to max_tokens: the model input is int64 "
    "(batch, max_tokens)."
)
MURMUR3_BUCKET_RULE = "1 + murmur3_32(utf8(token), seed=0) % (num_buckets - 1)"
MURMUR3_FEATURIZATION = (
    "1. If lowercase, lower-case the text one code point at a time by the Unicode simple lowercase mapping (Python's "
    "str.lower applied to each character alone, except that U+0130 becomes U+0069 i: no final-sigma rule and no "
    "multi-character mappings; ONNX StringNormalizer LOWER with locale C.UTF-8). "
    "2. words: every non-overlapping match of token_pattern, left to right (Python re.findall; an ONNX graph runs it "
    "with RE2 and takes only patterns on which the two agree: deterministic, with greedy repeats, and no capturing "
    "groups, anchors, look-arounds, \\w \\d \\s or empty matches). "
    "3. tokens: the words, then for n = 2 up to ngrams in turn, every run of n consecutive words, left to right, "
    "joined by ngram_separator. "
    "4. The id of a token is bucket_rule, where utf8(token) is its UTF-8 bytes and murmur3_32 is Austin Appleby's "
    "MurmurHash3_x86_32 with the given seed as an unsigned 32-bit integer (Python mmh3.hash(bytes, 0, signed=False); "
    "ONNX Runtime com.microsoft.MurmurHash3 with seed 0 and positive 1); ids run 1 .. num_buckets - 1, and 0 is "
    "padding. "
    "5. Keep the first max_tokens ids and pad on the right with pad_id up to max_tokens: the model input is int64 "
    "(batch, max_tokens)."
)
BUCKET_RULES = {"crc32": BUCKET_RULE, "murmur3": MURMUR3_BUCKET_RULE}
FEATURIZATIONS = {"crc32": FEATURIZATION, "murmur3": MURMUR3_FEATURIZATION}


class TextPreprocessing(InputKind):
    """Text → token ids by a regex tokenizer and feature hashing (no vocabulary: domain-independent).

    Words are regex matches; word n-grams up to ``ngrams`` (words joined by a space) follow the words. Token ``t``
    maps to ``1 + murmur3_32(utf8(t)) % (num_buckets - 1)`` (``hash="murmur3"``, the default, which
    :meth:`raw_graph` also writes as ONNX nodes) or, in files made before, ``1 + crc32(utf8(t)) % (num_buckets - 1)``
    (``hash="crc32"``, still read and featurized as then); id 0 is padding. A document keeps its first ``max_tokens``
    ids and is right-padded with 0, so the model sees int64 (N, max_tokens). The recipe is recorded in full
    (``featurization``, ``bucket_rule``, ``ngram_separator``), so a manifest or a model card says how to reproduce
    the ids without ticketpack. Nothing is cut silently: loading a dataset counts and reports every document with
    more than ``max_tokens`` ids (see :meth:`transform_counting` and ``ticketpack.data.text``); the default 8,192
    cuts one review of the 6,000 in the shared review data (``bench/text_lengths.py``).
    """

    kind: Literal["text"] = "text"
    tokenizer: Literal["regex"] = Field("regex", description="Tokenizer rule: tokens are regex matches.")
    token_pattern: str = Field(r"[a-z0-9]+(?:'[a-z]+)?", description="Python regex whose matches are tokens.")
    lowercase: bool = Field(True, description="Lower-case text before tokenizing.")
    ngrams: int = Field(
        3, ge=1, le=3,
        description="Also hash word n-grams up to this n (joined by a space). 3 by default: on the review data the "
        "default text model then matches TF-IDF + logistic regression (bench/text_quality.py); with 2 it does not.",
    )
    max_tokens: int = Field(
        8192, ge=1, le=100_000,
        description="Ids kept per document, n-grams included (truncate, then pad with 0); loading data reports how "
        "many documents were cut. The default 8,192 does not hold every review: in the shared review data (books, "
        "dvd, electronics; 6,000 reviews) one books review has 10,599 ids and loses its last 2,407 "
        "(bench/text_lengths.py).",
    )
    features: Literal["hashing"] = Field("hashing", description="How tokens become ids.")
    hash: Literal["crc32", "murmur3"] = Field(
        "murmur3", description="Hash function for feature hashing: murmur3 (MurmurHash3_x86_32, seed 0, unsigned; "
        "what an ONNX graph can compute, so a self-contained export takes raw strings) or crc32 (the CRC-32 of zlib, "
        "gzip and PNG; files made before murmur3 was the default, which keep loading and featurizing as then).",
    )
    num_buckets: int = Field(2**20, ge=2, le=2**24, description="Id space size, padding id 0 included.")
    pad_id: Literal[0] = 0
    ngram_separator: Literal[" "] = Field(" ", description="What the words of an n-gram are joined by.",
                                          json_schema_extra={"readOnly": True})
    bucket_rule: Literal[MURMUR3_BUCKET_RULE, BUCKET_RULE] = Field(
        MURMUR3_BUCKET_RULE, description="The id of a token (see featurization); follows hash.",
        json_schema_extra={"readOnly": True},
    )
    featurization: Literal[MURMUR3_FEATURIZATION, FEATURIZATION] = Field(
        MURMUR3_FEATURIZATION, description="Text to ids, step by step, in terms of the other fields: enough to "
        "reproduce the ids in another language; follows hash. Files written before it was recorded used the recipe "
        "of their hash.",
        json_schema_extra={"readOnly": True},
    )

    @model_validator(mode="before")
    @classmethod
    def _recipe_follows_hash(cls, data: Any) -> Any:
        """Unstated ``bucket_rule`` and ``featurization`` are those of ``hash``; a file with a recipe but no hash has
        the hash its recipe names."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "hash" not in data:
            stated = {name for name in BUCKET_RULES if data.get("bucket_rule") == BUCKET_RULES[name]
                      or data.get("featurization") == FEATURIZATIONS[name]}
            if len(stated) == 1:
                data["hash"] = stated.pop()
        name = data.get("hash", cls.model_fields["hash"].default)
        if name in BUCKET_RULES:
            data.setdefault("bucket_rule", BUCKET_RULES[name])
            data.setdefault("featurization", FEATURIZATIONS[name])
        return data

    @model_validator(mode="after")
    def _recipe_matches_hash(self) -> TextPreprocessing:
        if self.bucket_rule != BUCKET_RULES[self.hash] or self.featurization != FEATURIZATIONS[self.hash]:
            raise ValueError(f"hash is {self.hash!r} but bucket_rule or featurization states the recipe of another "
                             "hash: the file's recipe does not match its ids")
        return self

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.max_tokens,)

    @property
    def input_dtype(self) -> str:
        return "int64"

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(self.token_pattern)

    def tokens(self, text: str) -> list[str]:
        """Words, then their n-grams for n = 2..``ngrams`` (uncut)."""
        if self.lowercase:
            text = text.lower() if self.hash == "crc32" else simple_lower(text)
        words = self._regex.findall(text)
        out = list(words)
        sep = self.ngram_separator
        for n in range(2, self.ngrams + 1):
            out.extend(sep.join(words[i : i + n]) for i in range(len(words) - n + 1))
        return out

    def token_ids(self, tokens: list[str]) -> np.ndarray:
        """int64 ids of ``tokens``: 1 + hash(utf-8) mod (num_buckets - 1), so that 0 stays the padding id."""
        if self.hash == "crc32":
            crc32 = zlib.crc32
            hashes = np.fromiter((crc32(t.encode("utf-8")) for t in tokens), dtype=np.int64, count=len(tokens))
        else:
            murmur3 = _mmh3().hash
            hashes = np.fromiter((murmur3(t.encode("utf-8"), 0, False) for t in tokens), dtype=np.int64,
                                 count=len(tokens))
        return 1 + hashes % (self.num_buckets - 1)

    def token_id(self, token: str) -> int:
        return int(self.token_ids([token])[0])

    def transform_counting(self, raw: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
        """A batch of strings → (int64 ids (N, max_tokens), int64 number of ids of each document before the cut).

        A document was cut where its count exceeds ``max_tokens``."""
        if isinstance(raw, str):
            raise TicketpackError("text inputs must be a list of strings, not one string")
        texts = list(raw)
        out = np.zeros((len(texts), self.max_tokens), dtype=np.int64)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TicketpackError(f"text input {i} is {type(text).__name__}, expected a string")
            tokens = self.tokens(text)
            lengths[i] = len(tokens)
            kept = tokens[: self.max_tokens]
            out[i, : len(kept)] = self.token_ids(kept)
        return out, lengths

    def transform(self, raw: np.ndarray | list) -> np.ndarray:
        """A batch of strings → int64 ids (N, max_tokens)."""
        return self.transform_counting(raw)[0]

    def raw_graph(self, output: str = "input") -> RawGraph:
        """:meth:`transform` as ONNX nodes from raw strings (N,) to int64 ids (N, max_tokens): see
        ``ticketpack.data.kinds.text_graph``. Only for ``hash="murmur3"``."""
        return text_raw_graph(self, output)

    def raw_array(self, raw: Any) -> np.ndarray:
        """A batch of texts → a numpy object array of str, shape (N,), what :meth:`raw_graph`'s ``raw`` takes."""
        return raw_strings(raw)

    default_model: ClassVar[str] = "fasttext"
    noun: ClassVar[str] = "texts"
    takes_text: ClassVar[bool] = True
    file_types: ClassVar[tuple[str, ...]] = (".jsonl", ".csv", ".txt")

    def example(self, batch: int = 2) -> np.ndarray:
        """Token ids 1.. filling every position (no padding), so a trace sees every op a real batch runs."""
        ids = np.arange(1, batch * self.max_tokens + 1).reshape(batch, -1) % (self.num_buckets - 1) + 1
        return ids.astype(np.int64)

    def transform_all(self, raw: Any, where: str) -> tuple[np.ndarray, dict]:
        """Featurize a whole domain, warning (:class:`TruncationWarning`) with the count of documents cut."""
        x, lengths = self.transform_counting(raw)
        return x, {"max_tokens": self.max_tokens, "truncated": int((lengths > self.max_tokens).sum()),
                   "longest_ids": int(lengths.max(initial=0)), "documents": len(lengths)}

    def report(self, info: dict, where: str) -> None:
        if info.get("truncated"):
            warnings.warn(
                f"{where}: {info['truncated']} of {info['documents']} documents have more than max_tokens="
                f"{info['max_tokens']} ids (n-grams included; the longest has {info['longest_ids']}) and were cut; "
                "raise text.max_tokens to keep them whole", TruncationWarning, stacklevel=5)

    def factory_options(self) -> dict[str, Any]:
        return {"input_shape": tuple(self.input_shape), "vocab_size": self.num_buckets}

    def read_inputs(self, path: Path, labelled: bool = False) -> tuple[list[str], list[str] | None]:
        """``.jsonl`` (``{"text": ...}`` objects, or bare JSON strings), ``.csv`` (a ``text`` column) or ``.txt`` (one
        text per line; unlabelled only)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in self.file_types or (labelled and suffix == ".txt"):
            usable = ".jsonl, .csv (with a 'label' field)" if labelled else ".jsonl, .csv, .txt"
            raise TicketpackError(f"{path}: a text model {'is evaluated on' if labelled else 'reads'} {usable} files")
        inputs: list[str] = []
        labels: list[str] = []
        if suffix == ".txt":
            inputs = [line for line in read_text(path).splitlines() if line.strip()]
        elif suffix == ".jsonl":
            for lineno, obj in jsonl_rows(path):
                where = f"{path}:{lineno}"
                if isinstance(obj, dict) and "text" in obj:
                    value = obj["text"]
                elif isinstance(obj, str) and not labelled:
                    value = obj
                else:
                    raise TicketpackError(f"{where}: expected an object with 'text'" + (" and 'label'" if labelled else " or a JSON string"))
                if not isinstance(value, str):
                    raise TicketpackError(f"{where}: 'text' must be a string, got {type(value).__name__}")
                if labelled:
                    if not isinstance(obj, dict) or "label" not in obj:
                        raise TicketpackError(f"{where}: no 'label' field")
                    labels.append(label_text(obj["label"], where))
                inputs.append(value)
        else:
            fields, records = csv_rows(path)
            if labelled and "label" not in fields:
                raise TicketpackError(f"{path}: CSV needs a 'label' column")
            if "text" not in fields:
                raise TicketpackError(f"{path}: CSV needs a 'text' column")
            for lineno, rec in records:
                inputs.append(rec["text"] or "")
                if labelled:
                    labels.append(label_text((rec.get("label") or "").strip(), f"{path}:{lineno}"))
        if not inputs:
            raise TicketpackError(f"{path} has no rows")
        return inputs, (labels if labelled else None)

    def from_request(self, inputs: list) -> list[str]:
        for i, text in enumerate(inputs):
            if not isinstance(text, str):
                raise TicketpackError(f"input {i} is {type(text).__name__}: this model takes texts")
        return inputs

    def request_bytes(self, max_text_chars: int) -> int:
        return 6 * max_text_chars + 16  # worst case: every character as \\uXXXX

    def smoke_inputs(self) -> list[str]:
        return ["ticketpack smoke test: a short review", "another line of text"]

    def show(self, raw: Any, i: int) -> str | None:
        return raw[i]

    def describe(self) -> str:
        return (f"text: {self.ngrams}-gram ids hashed ({self.hash}) into {self.num_buckets:,} buckets, {self.max_tokens} "
                "per document")

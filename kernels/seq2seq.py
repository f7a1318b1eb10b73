"""A trained GRU encoder-decoder, with and without attention, on the toy translation task.

Part 1's bottleneck thesis, measured on our own data rather than copied from a figure:

* **No attention** (Cho et al. 2014, arXiv:1406.1078; Sutskever et al. 2014,
  arXiv:1409.3215): the encoder's final states are squeezed into one fixed vector
  ``c = tanh(V [h->_Tx; h<-_1])``, the same ``c`` for every decoder step. (Bahdanau et
  al., Appendix A.2.2: fixing ``c_i`` to ``h->_Tx`` gives Cho's RNN Encoder-Decoder; we
  keep both directions' final states so the encoder is the same as the attention
  model's.)
* **Attention** (Bahdanau, Cho & Bengio 2014, arXiv:1409.0473, Section 3 and
  Appendix A): a bidirectional GRU gives an annotation ``h_j = [h->_j; h<-_j]`` per
  source word; each decoder step ``i`` scores every annotation against the previous
  state, ``e_ij = a(s_{i-1}, h_j)``, normalises ``alpha_ij = softmax_j(e_ij)`` and reads
  ``c_i = sum_j alpha_ij h_j``. ``s_0 = tanh(W_s h<-_1)`` as in Appendix A.2.2.

The score ``a`` is one of (``SCORES``):

* ``additive`` (Bahdanau): ``e_ij = v_a^T tanh(W_a s_{i-1} + U_a h_j)``;
* ``dot`` and ``general`` (Luong, Pham & Manning 2015, arXiv:1508.04025, Section 3.1,
  Eq. 8): ``s^T h_j`` and ``s^T W_a h_j``. Luong's model scores its *current* state
  ``h_t`` after the recurrent step and feeds ``tanh(W_c [c_t; h_t])`` onward; here only
  the score function is swapped, the query stays Bahdanau's ``s_{i-1}``, so the three
  variants differ in one place.

Both models share everything else: embeddings, the bidirectional encoder, the decoder
``s_i = GRU([E y_{i-1}; c_i], s_{i-1})`` and a linear readout of ``[s_i; c_i; E y_{i-1}]``
(Appendix A.2.2 reads ``s_{i-1}, E y_{i-1}, c_i`` through one maxout layer instead).
The decoder state has width ``2n``, the annotations' width (the paper's is ``n``), so
that Luong's dot score is defined. The paper's sizes (A.2.3) are n = 1000, m = 620,
n' = 1000; ours are a few dozen.

Training is teacher-forced cross-entropy with Adam and gradient-norm clipping at 1
(Bahdanau Appendix B.2 clips at 1), seeded, on one CPU thread. The four published
models (default ``Config`` per kind) take minutes to train, so they are committed data:
``python -m kernels.seq2seq train [KIND ...]`` trains them and writes
``docs/data/seq2seq/<kind>.pt`` with a key hashing the training code, the config and the
grammar; ``trained(kind)`` loads them and refuses, in one line naming that command, when
the key no longer matches the code. Other configurations (the tests' small ones) train
on first use and are cached under ``build/cache/seq2seq/``. Evaluation is greedy
decoding on held-out sentences.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kernels import toy_translation as toy

__all__ = [
    "KINDS",
    "SCORES",
    "AlignmentTrace",
    "Config",
    "LengthCurve",
    "Seq2Seq",
    "StaleWeights",
    "Trained",
    "align",
    "alignment_agreement",
    "bottleneck",
    "by_length",
    "greedy",
    "held_out",
    "train",
    "trained",
    "training_pairs",
]

SCORES = ("additive", "dot", "general")
KINDS = (*SCORES, "none")  # "none": the fixed-vector encoder-decoder

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "build" / "cache" / "seq2seq"  # other configurations, trained on first use
PUBLISHED_DIR = ROOT / "docs" / "data" / "seq2seq"  # the four published models, committed
TRAIN_COMMAND = "python -m kernels.seq2seq train"
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
assert toy.SPECIALS[PAD_ID] == toy.PAD and toy.SPECIALS[BOS_ID] == toy.BOS and toy.SPECIALS[EOS_ID] == toy.EOS

# One thread: the matrices are tiny, and on a busy 2-core machine a second OpenMP thread
# waits more than it works (measured: 40 full-size updates took 3-4 s on one thread,
# 28 s on two, at load average 7). Results are reproducible for a fixed thread count.
NUM_THREADS = 1
GRAD_CLIP = 1.0  # max gradient norm, Bahdanau et al. Appendix B.2
BUCKET_WIDTH = 4  # source lengths per bucket of the by-length curves


@dataclass(frozen=True)
class Config:
    """Everything that determines a trained model (and so its cache key)."""

    kind: str = "additive"  # one of KINDS
    d_emb: int = 32  # m in the paper: word embedding width, source and target
    n: int = 64  # GRU units per encoder direction; h_j and s_i have 2n
    d_att: int = 64  # n' in the paper: width of W_a s + U_a h (additive score only)
    n_train: int = 20_000  # training pairs, drawn once from the toy grammar
    steps: int = 1_500  # Adam updates
    batch: int = 64  # pairs per update, of similar length (sorted) so padding is small
    lr: float = 3e-3  # Adam step size
    max_len: int = 30  # longest source sentence, train and test
    seed: int = 0  # data, initialisation and batch order

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("kind", "lr", "seed") and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{f.name} must be a positive int, got {value!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")

    @property
    def attention(self) -> bool:
        return self.kind != "none"


class Seq2Seq(nn.Module):
    """Bidirectional GRU encoder, GRU decoder; attention or one fixed context vector."""

    def __init__(self, config: Config, n_src: int, n_tgt: int):
        super().__init__()
        self.config = config
        m, n, two_n = config.d_emb, config.n, 2 * config.n  # the paper's m and n
        self.src_emb = nn.Embedding(n_src, m, padding_idx=PAD_ID)
        self.tgt_emb = nn.Embedding(n_tgt, m, padding_idx=PAD_ID)
        self.encoder = nn.GRU(m, n, batch_first=True, bidirectional=True)
        if config.attention:
            self.W_s = nn.Linear(n, two_n)  # s_0 = tanh(W_s h<-_1)
        else:
            self.V = nn.Linear(two_n, two_n)  # c = tanh(V [h->_Tx; h<-_1])
            self.W_s = nn.Linear(two_n, two_n)  # s_0 = tanh(W_s c)
        if config.kind == "additive":
            self.W_a = nn.Linear(two_n, config.d_att, bias=False)
            self.U_a = nn.Linear(two_n, config.d_att, bias=False)
            self.v_a = nn.Linear(config.d_att, 1, bias=False)
        elif config.kind == "general":
            self.W_a = nn.Linear(two_n, two_n, bias=False)
        self.cell = nn.GRUCell(m + two_n, two_n)  # input [E y_{i-1}; c_i]
        self.readout = nn.Linear(two_n + two_n + m, n_tgt)  # [s_i; c_i; E y_{i-1}]

    def encode(self, x: torch.Tensor, lengths: torch.Tensor):
        """Annotations h (B, T_x, 2n), zero past each length, and the first state s_0 (B, 2n).

        For the fixed-vector model also returns c (B, 2n); else c is None.
        """
        packed = pack_padded_sequence(self.src_emb(x), lengths, batch_first=True, enforce_sorted=False)
        out, h_n = self.encoder(packed)  # h_n (2, B, n): h->_Tx and h<-_1
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T_x, 2n)
        if self.config.attention:
            return h, torch.tanh(self.W_s(h_n[1])), None
        c = torch.tanh(self.V(torch.cat([h_n[0], h_n[1]], dim=-1)))  # (B, 2n)
        return h, torch.tanh(self.W_s(c)), c

    def keys(self, h: torch.Tensor) -> torch.Tensor | None:
        """The part of the score that depends on h_j only, computed once per sentence (A.1.2)."""
        if self.config.kind == "additive":
            return self.U_a(h)  # (B, T_x, d_att)
        if self.config.kind == "general":
            return self.W_a(h)  # (B, T_x, 2n)
        return h if self.config.kind == "dot" else None

    def scores(self, s_prev: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """e_ij for one decoder step: s_prev (B, 2n), keys (B, T_x, .) -> (B, T_x)."""
        if self.config.kind == "additive":
            return self.v_a(torch.tanh(self.W_a(s_prev)[:, None, :] + keys)).squeeze(-1)
        return torch.einsum("bd,btd->bt", s_prev, keys)  # dot, general

    def step(self, y_prev, s_prev, h, keys, src_mask, c_fixed):
        """One decoder step. Returns logits (B, V), s_i, and e_i, alpha_i (B, T_x), c_i (B, 2n).

        Padded source positions get e = -inf, so alpha = 0 there and each row sums to 1.
        e, alpha are None for the fixed-vector model.
        """
        if self.config.attention:
            e = self.scores(s_prev, keys).masked_fill(~src_mask, float("-inf"))
            alpha = torch.softmax(e, dim=-1)
            c = torch.einsum("bt,btd->bd", alpha, h)
        else:
            e = alpha = None
            c = c_fixed
        emb = self.tgt_emb(y_prev)
        s = self.cell(torch.cat([emb, c], dim=-1), s_prev)
        logits = self.readout(torch.cat([s, c, emb], dim=-1))
        return logits, s, e, alpha, c

    def forward(self, x, lengths, y_in):
        """Teacher-forced logits (B, T_y, V) for decoder inputs y_in = [BOS, y_1, ...]."""
        h, s, c_fixed = self.encode(x, lengths)
        keys = self.keys(h)
        src_mask = x != PAD_ID
        logits = []
        for i in range(y_in.shape[1]):
            out, s, *_ = self.step(y_in[:, i], s, h, keys, src_mask, c_fixed)
            logits.append(out)
        return torch.stack(logits, dim=1)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def training_pairs(config: Config) -> list[toy.Pair]:
    return toy.generate(config.n_train, seed=config.seed, max_len=config.max_len)


def held_out(config: Config, n: int = 1_400) -> list[toy.Pair]:
    """``n`` fresh pairs (seed ``seed + 1``) minus any whose source is in the training set.

    Short lengths have few distinct sentences (72 of length 3), so the training set
    covers them and the shortest bucket holds fewer held-out pairs than the others.
    """
    seen = {p.source for p in training_pairs(config)}
    fresh = toy.generate(n, seed=config.seed + 1, max_len=config.max_len)
    return [p for p in fresh if p.source not in seen]


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row)
    return out


def _source_batch(sources, vocab: toy.Vocab):
    ids = [vocab.encode(s) for s in sources]
    return _pad(ids), torch.tensor([len(r) for r in ids])


def _batches(pairs: list[toy.Pair], batch: int, rng: np.random.Generator):
    """Endless batches of similar source length: sort, cut, shuffle the order each epoch."""
    order = sorted(range(len(pairs)), key=lambda k: (len(pairs[k].source), k))
    chunks = [order[k:k + batch] for k in range(0, len(order), batch)]
    while True:
        for b in rng.permutation(len(chunks)):
            yield [pairs[k] for k in chunks[b]]


# --------------------------------------------------------------------------
# Training and the cache
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A trained model and how its training went."""

    config: Config  # what was trained
    model: Seq2Seq  # in eval mode
    loss: np.ndarray  # (steps,) mean cross-entropy per target token (nats), per update
    wall_s: float  # training wall time when it was trained (not when loaded from cache)
    n_params: int  # trainable parameters
    cache_path: Path | None  # where it is cached; None if not cached


def _new_model(config: Config) -> Seq2Seq:
    torch.manual_seed(config.seed)
    return Seq2Seq(config, len(toy.source_vocab()), len(toy.target_vocab()))


@contextmanager
def _torch_threads(n: int):
    """Run the block on ``n`` torch threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(config: Config) -> Trained:
    """Train from scratch: teacher forcing, Adam, clipped gradients; deterministic in config."""
    with _torch_threads(NUM_THREADS):
        return _train(config)


def _train(config: Config) -> Trained:
    src_vocab, tgt_vocab = toy.source_vocab(), toy.target_vocab()
    model = _new_model(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_ID)
    batches = _batches(training_pairs(config), config.batch, np.random.default_rng(config.seed))
    losses = np.empty(config.steps)
    start = time.perf_counter()
    model.train()
    for step in range(config.steps):
        pairs = next(batches)
        x, lengths = _source_batch([p.source for p in pairs], src_vocab)
        y = _pad([[BOS_ID, *tgt_vocab.encode(p.target), EOS_ID] for p in pairs])  # (B, T_y + 2)
        logits = model(x, lengths, y[:, :-1])  # (B, T_y + 1, V)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1))
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimiser.step()
        losses[step] = loss.item()
    wall_s = time.perf_counter() - start
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    return Trained(config, model, losses, wall_s, n_params, None)


class StaleWeights(RuntimeError):
    """The committed weights of a published model are missing or were trained by other code."""


# Everything that determines the trained weights, and nothing else: editing greedy
# decoding, evaluation or a docstring elsewhere keeps the weights valid. Bound here, so
# a test that replaces ``train`` in the module does not change the key.
_TRAINING_CODE = (toy, Config, Seq2Seq, _pad, _source_batch, _batches, training_pairs, _new_model, train, _train)


@lru_cache(maxsize=1)
def _training_source() -> str:
    parts = [inspect.getsource(obj) for obj in _TRAINING_CODE]
    parts.append(repr((PAD_ID, BOS_ID, EOS_ID, NUM_THREADS, GRAD_CLIP)))
    return "\n".join(parts)


def cache_key(config: Config) -> str:
    """Hash of the training code, the grammar and the config."""
    digest = hashlib.sha256(_training_source().encode())
    digest.update(repr(sorted(asdict(config).items())).encode())
    return f"{config.kind}-{digest.hexdigest()[:16]}"


def _save(result: Trained, path: Path, **about) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": result.model.state_dict(), "loss": torch.from_numpy(result.loss),
                "wall_s": result.wall_s, "n_params": result.n_params, "key": cache_key(result.config),
                **about}, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a half file under the real name


def _read(path: Path) -> dict | None:
    return torch.load(path, weights_only=True) if path.is_file() else None


def _model_from(config: Config, saved: dict, path: Path) -> Trained:
    model = _new_model(config)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return Trained(config, model, saved["loss"].numpy(), float(saved["wall_s"]), int(saved["n_params"]), path)


def published_path(kind: str) -> Path:
    return PUBLISHED_DIR / f"{kind}.pt"


def published_key(kind: str) -> str | None:
    """The key the committed weights of ``kind`` were trained under (None when absent)."""
    saved = _read(published_path(kind))
    return saved["key"] if saved else None


def published(kind: str = "additive") -> Trained:
    """A published model (default ``Config``), loaded from its committed weights.

    Never trains: training all four takes minutes, so a build that finds the weights
    missing or stale stops with one line naming the command that retrains them.
    """
    config = Config(kind=kind)
    path, key = published_path(kind), cache_key(config)
    saved = _read(path)
    if saved is None or saved["key"] != key:
        state = "missing" if saved is None else f"trained by other code (key {saved['key']}, the code's is {key})"
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        raise StaleWeights(f"{where}: the {kind} model's weights are {state}; "
                           f"retrain with: {TRAIN_COMMAND} {kind}")
    return _model_from(config, saved, path)


def trained(kind: str = "additive", *, cache_dir: Path | None = None, **overrides) -> Trained:
    """The model for ``Config(kind, **overrides)``.

    With no overrides and no ``cache_dir``: the published model (``published``). Else
    loaded from ``cache_dir`` (default ``build/cache/seq2seq``), or trained and cached there.
    """
    if cache_dir is None and not overrides:
        return published(kind)
    config = Config(kind=kind, **overrides)
    path = Path(cache_dir or CACHE_DIR) / f"{cache_key(config)}.pt"
    if path.exists():
        return _model_from(config, _read(path), path)
    result = train(config)
    _save(result, path)
    return replace(result, cache_path=path)


def train_published(kinds=KINDS, log=print) -> None:
    """Train the published models from scratch and write their weights for committing."""
    for kind in kinds:
        log(f"seq2seq: training {kind} ({Config().steps:,} steps on one thread) ...")
        result = train(Config(kind=kind))
        _save(result, published_path(kind), torch=str(torch.__version__), python=platform.python_version(),
              machine=platform.machine(), date=time.strftime("%Y-%m-%d"))
        log(f"seq2seq: {kind} trained in {result.wall_s:.0f} s, final loss {result.loss[-20:].mean():.4f} "
            f"-> {published_path(kind).relative_to(ROOT)}")


# --------------------------------------------------------------------------
# Greedy decoding and evaluation
# --------------------------------------------------------------------------


@torch.no_grad()
def greedy(model: Seq2Seq, sources, max_steps: int | None = None) -> list[tuple[str, ...]]:
    """Greedy translations, EOS removed; at most ``max_steps`` (default 2 T_x + 1) tokens each."""
    src_vocab, tgt_vocab = toy.source_vocab(), toy.target_vocab()
    x, lengths = _source_batch(sources, src_vocab)
    limit = max_steps or 2 * x.shape[1] + 1
    h, s, c_fixed = model.encode(x, lengths)
    keys, src_mask = model.keys(h), x != PAD_ID
    y = torch.full((len(sources),), BOS_ID, dtype=torch.long)
    out = []
    for _ in range(limit):
        logits, s, *_ = model.step(y, s, h, keys, src_mask, c_fixed)
        y = logits.argmax(dim=-1)
        out.append(y)
    ids = torch.stack(out, dim=1).tolist()
    return [tgt_vocab.decode(row[: row.index(EOS_ID)] if EOS_ID in row else row) for row in ids]


@dataclass(frozen=True)
class LengthCurve:
    """Held-out accuracy of one model by source-length bucket [lo, hi]."""

    kind: str  # which model
    lo: np.ndarray  # (K,) shortest source length in the bucket
    hi: np.ndarray  # (K,) longest
    count: np.ndarray  # (K,) held-out sentences in the bucket
    sentence_accuracy: np.ndarray  # (K,) fraction translated exactly (every word, and the length)
    token_accuracy: np.ndarray  # (K,) fraction of reference words matched at their position
    overall_sentence_accuracy: float  # over all held-out sentences
    overall_token_accuracy: float  # over all reference words


def _token_hits(hyp, ref) -> int:
    return sum(a == b for a, b in zip(hyp, ref))


def by_length(result: Trained, pairs: list[toy.Pair] | None = None, width: int = BUCKET_WIDTH,
              batch: int = 256) -> LengthCurve:
    """Greedy-decode ``pairs`` (default: ``held_out``) and score them per length bucket."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    pairs = held_out(result.config) if pairs is None else pairs
    hyps = []
    with _torch_threads(NUM_THREADS):
        for k in range(0, len(pairs), batch):
            hyps += greedy(result.model, [p.source for p in pairs[k:k + batch]])
    lengths = np.array([len(p.source) for p in pairs])
    exact = np.array([h == p.target for h, p in zip(hyps, pairs)])
    hits = np.array([_token_hits(h, p.target) for h, p in zip(hyps, pairs)])
    lo = np.arange(toy.MIN_LENGTH, result.config.max_len + 1, width)
    hi = np.minimum(lo + width - 1, result.config.max_len)
    count, sent, tok = [], [], []
    for a, b in zip(lo, hi):
        inside = (lengths >= a) & (lengths <= b)
        count.append(int(inside.sum()))
        sent.append(exact[inside].mean() if inside.any() else np.nan)
        tok.append(hits[inside].sum() / lengths[inside].sum() if inside.any() else np.nan)
    return LengthCurve(result.config.kind, lo, hi, np.array(count), np.array(sent), np.array(tok),
                       float(exact.mean()), float(hits.sum() / lengths.sum()))


def bottleneck(kinds=("additive", "none"), **overrides) -> dict[str, LengthCurve]:
    """Held-out accuracy by length for each model kind (trained or loaded from the cache)."""
    return {kind: by_length(trained(kind, **overrides)) for kind in kinds}


# --------------------------------------------------------------------------
# The alignment of one sentence, step by step
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignmentTrace:
    """Every quantity of every greedy decoder step for one source sentence.

    Row i is decoder step i (producing target token i; the last row produces EOS).
    Rows of ``alpha`` sum to 1 and ``c[i] == alpha[i] @ h``.
    """

    kind: str  # the score function
    source: tuple[str, ...]  # x_1 .. x_Tx
    output: tuple[str, ...]  # greedy y_1 .. y_Ty, then EOS (or the step limit)
    reference: tuple[str, ...]  # the grammar's translation, without EOS
    reference_alignment: tuple[int, ...]  # source position each reference word translates
    h: np.ndarray  # (T_x, 2n) annotations h_j
    s_prev: np.ndarray  # (T_y, 2n) query s_{i-1} of each step
    e: np.ndarray  # (T_y, T_x) scores e_ij
    alpha: np.ndarray  # (T_y, T_x) weights alpha_ij
    c: np.ndarray  # (T_y, 2n) context c_i
    p_output: np.ndarray  # (T_y,) the model's probability of the word it chose


@torch.no_grad()
def align(result: Trained, source, max_steps: int | None = None) -> AlignmentTrace:
    """Greedy-decode one sentence with an attention model, recording each step."""
    if not result.config.attention:
        raise ValueError("result: the fixed-vector model has no alignment")
    reference = toy.translate(source)
    model, tgt_vocab = result.model, toy.target_vocab()
    x, lengths = _source_batch([reference.source], toy.source_vocab())
    h, s, _ = model.encode(x, lengths)
    keys, src_mask = model.keys(h), x != PAD_ID
    y = torch.tensor([BOS_ID])
    rows = {"s_prev": [], "e": [], "alpha": [], "c": [], "p": [], "y": []}
    for _ in range(max_steps or 2 * len(reference.source) + 1):
        rows["s_prev"].append(s[0])
        logits, s, e, alpha, c = model.step(y, s, h, keys, src_mask, None)
        p = torch.softmax(logits[0], dim=-1)
        y = logits.argmax(dim=-1)
        for name, value in (("e", e[0]), ("alpha", alpha[0]), ("c", c[0]), ("p", p[y[0]]), ("y", y[0])):
            rows[name].append(value)
        if y.item() == EOS_ID:
            break
    as_np = {k: torch.stack(v).double().numpy() for k, v in rows.items() if k != "y"}
    return AlignmentTrace(
        kind=result.config.kind, source=reference.source,
        output=tgt_vocab.decode(int(t) for t in rows["y"]),
        reference=reference.target, reference_alignment=reference.alignment,
        h=h[0].double().numpy(), s_prev=as_np["s_prev"], e=as_np["e"], alpha=as_np["alpha"],
        c=as_np["c"], p_output=as_np["p"],
    )


def alignment_agreement(trace: AlignmentTrace, *, content_only: bool = False) -> float:
    """Fraction of reference words whose step puts its largest alpha on the word it translates.

    ``content_only`` skips articles: their form depends on the noun's gender, so a model
    may rightly look at the noun (or at a neighbour whose annotation carries it).
    Defined when the model's output starts with the reference (else the rows do not
    correspond); the EOS row is not counted.
    """
    n = len(trace.reference)
    if trace.output[:n] != trace.reference:
        raise ValueError("trace: output differs from the reference, rows do not correspond")
    truth = np.array(trace.reference_alignment)
    hits = trace.alpha[:n].argmax(axis=1) == truth
    if content_only:
        hits = hits[[trace.source[j] not in toy.DETERMINERS for j in truth]]
    return float(hits.mean())


# --------------------------------------------------------------------------
# Command line: python -m kernels.seq2seq train [KIND ...]
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.seq2seq",
                                     description="Train Part 1's published models into docs/data/seq2seq/.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="train the named kinds (all when none named, stale when --stale)")
    train_cmd.add_argument("kinds", nargs="*", metavar="KIND", help=f"one of {', '.join(KINDS)}")
    train_cmd.add_argument("--stale", action="store_true", help="only those whose committed key is out of date")
    commands.add_parser("status", help="say which committed models match the code")
    args = parser.parse_args(argv)
    kinds = getattr(args, "kinds", None) or list(KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind {', '.join(unknown)} (one of {', '.join(KINDS)})")
    stale = [k for k in kinds if published_key(k) != cache_key(Config(kind=k))]
    if args.command == "status":
        for kind in kinds:
            print(f"{kind:9} {'stale' if kind in stale else 'fresh'}  {published_path(kind).relative_to(ROOT)}")
        return 0
    train_published(stale if args.stale else kinds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
